"""Demo life on the portal: realistic deals appear and move through both pipelines.

Used by ``--demo`` and ``PortalSimulator.start_activity()``. Each tick one of: a new deal
(Russian company names, amounts, an assignee), a stage move forward (sometimes a loss), or
an edit of amount/comment; changes go through the portal's Python API, so they fire events
exactly as a user's edits in the UI would.
"""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

from . import catalog
from .portal import Portal

_WORKS = (
    "Поставка металлопроката", "Изготовление стеллажей", "Монтаж вентиляции",
    "Поставка упаковки", "Ремонт станка ЧПУ", "Изготовление металлоконструкций",
    "Поставка кабельной продукции", "Порошковая покраска деталей", "Сборка электрощитов",
    "Лазерная резка листа", "Поставка крепежа", "Изготовление пресс-форм",
)
_CLIENTS = (
    "ООО «Вектор»", "АО «Северсталь-Сервис»", "ИП Соколов А. В.", "ООО «ТехноСтрой»",
    "ООО «Уралмаш-Комплект»", "ЗАО «Прогресс»", "ООО «Балтийская логистика»",
    "ООО «Сибирские окна»", "АО «Энергомаш»", "ООО «Волга-Трейд»", "ООО «Агрокомплекс»",
)
_COMMENTS = (
    "Клиент просит [B]ускорить[/B] отгрузку.", "Согласовать ТЗ с технологом.",
    "Счёт отправлен, ждём оплату.", "Нужна доставка до склада клиента.",
    "Предоплата 50%, остаток по факту.", "[I]Повторный заказ[/I], условия прежние.",
)


def random_deal_fields(rng: random.Random, portal: Portal) -> dict[str, Any]:
    """Fields of a plausible new deal."""
    category = rng.choice(catalog.category_ids())
    amount = rng.choice((15000, 48500, 120000, 275000, 990000, 1850000)) + rng.randint(0, 99) * 100
    begin = portal.now().date() - timedelta(days=rng.randint(0, 20))
    return {
        "TITLE": f"{rng.choice(_WORKS)} — {rng.choice(_CLIENTS)}",
        "CATEGORY_ID": category,
        "STAGE_ID": catalog.first_stage(category).status_id,
        "OPPORTUNITY": amount,
        "CURRENCY_ID": "RUB",
        "IS_MANUAL_OPPORTUNITY": "Y",
        "TYPE_ID": rng.choice(("SALE", "COMPLEX", "GOODS", "SERVICES")),
        "SOURCE_ID": rng.choice(("CALL", "EMAIL", "WEB", "PARTNER", "RECOMMENDATION")),
        "ASSIGNED_BY_ID": rng.choice(catalog.USER_IDS),
        "BEGINDATE": begin.isoformat(),
        "CLOSEDATE": (begin + timedelta(days=rng.randint(7, 45))).isoformat(),
        "COMMENTS": rng.choice(_COMMENTS),
        "UF_CRM_1721244507931": f"ЗК-{rng.randint(10000, 99999)}",
    }


def seed(portal: Portal, count: int, rng: random.Random) -> list[int]:
    """Create ``count`` varied deals (some already moved along) through the Python API."""
    ids = []
    for _ in range(count):
        deal_id = portal.add_deal(random_deal_fields(rng, portal), user_id=rng.choice(catalog.USER_IDS))
        for _step in range(rng.randint(0, 3)):
            if not _advance(portal, deal_id, rng):
                break
        ids.append(deal_id)
    return ids


def _advance(portal: Portal, deal_id: int, rng: random.Random) -> bool:
    deal = portal.get_deal(deal_id)
    if deal is None or deal["CLOSED"] == "Y":
        return False
    stages = catalog.stages_of(int(deal["CATEGORY_ID"]))
    ids = [s.status_id for s in stages]
    here = ids.index(deal["STAGE_ID"])
    lose = [s.status_id for s in stages if s.extra_semantics == "failure"]
    target = lose[0] if rng.random() < 0.1 and lose else ids[here + 1]
    portal.update_deal(deal_id, {"STAGE_ID": target}, user_id=rng.choice(catalog.USER_IDS))
    return True


class Activity:
    """Background thread that keeps the demo portal busy."""

    def __init__(self, portal: Portal, interval: float = 3.0, seed_value: int | None = None) -> None:
        self.portal = portal
        self.interval = interval
        self.rng = random.Random(seed_value)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="b24sim-activity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tick(self) -> None:
        """One random change."""
        open_ids = [i for i in self.portal.deal_ids()[-300:]
                    if (d := self.portal.get_deal(i)) is not None and d["CLOSED"] == "N"]
        roll = self.rng.random()
        if roll < 0.35 or not open_ids:
            self.portal.add_deal(random_deal_fields(self.rng, self.portal),
                                 user_id=self.rng.choice(catalog.USER_IDS))
        elif roll < 0.85:
            _advance(self.portal, self.rng.choice(open_ids), self.rng)
        else:
            deal_id = self.rng.choice(open_ids)
            self.portal.update_deal(deal_id, {
                "OPPORTUNITY": self.rng.randint(10, 2000) * 1000,
                "COMMENTS": self.rng.choice(_COMMENTS),
            }, user_id=self.rng.choice(catalog.USER_IDS))

    def _run(self) -> None:
        while not self._stop.wait(self.interval * self.rng.uniform(0.5, 1.5)):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - demo thread must survive a bad tick
                continue
