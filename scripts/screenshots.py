"""Regenerate ``docs/screenshots/*.png`` from a real window fed by the portal simulator.

    python scripts/screenshots.py [--out docs/screenshots]

Runs offscreen (no display needed): starts the simulator with seeded deals, the real Monitor
and the main window, plays a short scenario (a deal moving through the production pipeline,
a stranger's request with a wrong token, a deal the production database refuses), and grabs
the main window (deals and events tabs), the deal detail, the stage filter and the settings
dialog in Russian and English (``*_ru.png``, ``*_en.png``).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
_TMP = Path(tempfile.mkdtemp(prefix="deal-monitor-shots-"))
for _name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
    os.environ[_name] = str(_TMP / _name.lower())
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from deal_monitor import config  # noqa: E402
from deal_monitor.credentials import MemoryStore  # noqa: E402
from deal_monitor.gui.app import make_application  # noqa: E402
from deal_monitor.gui.controller import AppController  # noqa: E402
from deal_monitor.gui.i18n import Translations  # noqa: E402
from deal_monitor.gui.mainwindow import MainWindow  # noqa: E402
from deal_monitor.gui.settingsdialog import SettingsDialog  # noqa: E402
from deal_monitor.gui.stagefilter import StageFilterDialog  # noqa: E402
from deal_monitor.simulator import PortalSimulator  # noqa: E402
from deal_monitor.simulator.activity import seed  # noqa: E402

WINDOW_SIZE = (1360, 820)
SHOWCASE_TITLE = "Изготовление стеллажей для склада — ООО «ТехноСтрой»"
LONG_TITLE = ("Поставка металлопроката и комплектующих для линии окраски, третий этап, "
              "с доставкой до склада клиента и разгрузкой — АО «Энергомаш»")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(app: QApplication, condition, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what or condition}")
        app.processEvents()
        time.sleep(0.02)


def settle(app: QApplication, seconds: float = 0.4) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


class Scene:
    """The simulator, the controller and the window, with the scenario's deals in place."""

    def __init__(self, app: QApplication) -> None:
        self.app = app
        self.sim = PortalSimulator(plan="standard", rate_limit=True)
        self.sim.start("127.0.0.1", 0)
        seed(self.sim.portal, 26, random.Random(20260314))
        self.target = _TMP / "production.db"
        settings = config.from_mapping(
            {
                "storage": {"data_dir": str(_TMP / "data")},
                "listener": {"port": free_port()},
                "sync": {"debounce_seconds": 0.1, "reconcile_minutes": 0.0, "max_attempts": 1},
                "target": {"url": f"sqlite:///{self.target.as_posix()}"},
            },
            env={},
        )
        secrets = MemoryStore({"webhook_url": self.sim.webhook_url,
                               "application_token": self.sim.application_token})
        self.controller = AppController(settings, secrets, config_path=_TMP / "settings.toml",
                                        secrets_persistent=True)
        self.failures = []
        self.controller.bridge.sync_failed.connect(self.failures.append)
        self.controller.start()
        wait_until(app, lambda: self.controller.running and not self.controller.loading,
                   what="the core to start")
        self.sim.add_outgoing_webhook(self.controller.monitor.status().listen_url)
        self.window = MainWindow(self.controller, tray_available=False)
        self.controller.notified.connect(self.window.show_notice)
        self.window.resize(*WINDOW_SIZE)
        self.window.show()
        wait_until(app, lambda: self.controller.catalog.loaded, what="pipelines")
        wait_until(app, lambda: self.controller.deals_model.rowCount() >= 26, what="seeded deals")

    def synced(self, deal_id: int, stage: str) -> bool:
        deal = self.controller.deal(deal_id)
        return deal is not None and deal.stage_id == stage

    def showcase(self) -> int:
        """A deal that goes from the start stage into production, with edits on the way."""
        portal = self.sim.portal
        deal_id = portal.add_deal({
            "TITLE": SHOWCASE_TITLE, "CATEGORY_ID": 1, "STAGE_ID": "C1:NEW",
            "OPPORTUNITY": 275000, "CURRENCY_ID": "RUB", "IS_MANUAL_OPPORTUNITY": "Y",
            "CLOSEDATE": "2026-12-18", "COMMENTS": "Стеллажи 12 секций, покраска RAL 5005",
        })
        wait_until(self.app, lambda: self.synced(deal_id, "C1:NEW"), what="the new deal")
        steps = [
            {"STAGE_ID": "C1:PREPARATION"},
            {"OPPORTUNITY": 298500, "CLOSEDATE": "2026-12-25",
             "COMMENTS": "Стеллажи 14 секций, покраска RAL 5005"},
            {"STAGE_ID": "C1:EXECUTING"},
        ]
        for step in steps:
            portal.update_deal(deal_id, step)
            settle(self.app, 0.3)
            wait_until(self.app, lambda: self.controller.monitor.status().inbox_depth == 0,
                       what="the queue to empty")
        wait_until(self.app, lambda: self.synced(deal_id, "C1:EXECUTING"), what="the showcase")
        for _ in range(4):  # some ordinary life on the portal
            other = random.Random(_).choice(portal.deal_ids()[:20])
            deal = portal.get_deal(other)
            if deal and deal["CLOSED"] == "N":
                portal.update_deal(other, {"OPPORTUNITY": 100000 + 7500 * other})
        settle(self.app, 1.0)
        return deal_id

    def troubles(self) -> None:
        """A stranger's request and a deal the production database refuses."""
        import requests

        requests.post(self.controller.monitor.status().listen_url, timeout=5, data={
            "event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "7",
            "auth[application_token]": "0f3c9e1b7a2d4c58",
        }).close()
        with sqlite3.connect(self.target) as db:
            db.execute(
                "CREATE TRIGGER title_length BEFORE INSERT ON deal WHEN length(NEW.title) > 120 "
                "BEGIN SELECT RAISE(ABORT, 'значение не умещается в столбец \"title\" "
                "(не более 120 символов)'); END")
        deal_id = self.sim.portal.add_deal({"TITLE": LONG_TITLE, "CATEGORY_ID": 1,
                                            "STAGE_ID": "C1:EXECUTING", "OPPORTUNITY": 1240000})
        wait_until(self.app, lambda: self.controller.status.failed_count >= 1,
                   what="the failure to show")
        settle(self.app, 2.0)
        self.window.notice_bar.dismiss()
        return deal_id

    def stop(self) -> None:
        self.window.close()
        self.controller.shutdown()
        self.sim.stop()


WAREHOUSE_TABLE = ("CREATE TABLE IF NOT EXISTS warehouse_order (id INTEGER PRIMARY KEY, "
                   "name VARCHAR(120) NOT NULL, date DATE, amount DECIMAL(12,2), comment TEXT, "
                   "accounting INTEGER, manager VARCHAR(80), stage VARCHAR(60), "
                   "workshop INTEGER NOT NULL)")


ORDER_LINES = ("CREATE TABLE IF NOT EXISTS order_line (row_id BIGINT PRIMARY KEY, "
               "deal_id BIGINT NOT NULL, item VARCHAR(80), qty DECIMAL(12,3), "
               "unit_price DECIMAL(12,2), line_no INTEGER NOT NULL)")


def shoot_mapping(scene: Scene, save, showcase: int) -> list[Path]:
    """The settings' mapping page on the warehouse's own table, and a dry run of it."""
    app, window = scene.app, scene.window
    with sqlite3.connect(scene.target) as db:
        db.execute(WAREHOUSE_TABLE)
    settings = SettingsDialog(scene.controller, window)
    settings.resize(1060, 720)
    settings.show()
    settings.target_table.setText("warehouse_order")
    settings.tabs.setCurrentWidget(settings.mapping_page)
    page = settings.mapping_page
    page.preset.setCurrentIndex(page.preset.findData("seed"))
    wait_until(app, lambda: page.table_read, what="the table's columns")
    wait_until(app, lambda: page.columns.fields[0][1], what="the deal fields")
    settle(app, 0.3)
    rows = {page.columns.item(r, 0).text(): r for r in range(page.columns.rowCount())}
    kinds = page.columns.cellWidget(rows["manager"], 2)
    kinds.setCurrentIndex(kinds.findData("lookup"))
    page.columns.cellWidget(rows["manager"], 3).setCurrentIndex(2)  # the responsible person
    kinds = page.columns.cellWidget(rows["stage"], 2)
    kinds.setCurrentIndex(kinds.findData("lookup"))
    settle(app, 0.3)
    save(settings, "mapping")  # "workshop" is required and not mapped yet: shown as an error

    kinds = page.columns.cellWidget(rows["workshop"], 2)
    kinds.setCurrentIndex(kinds.findData("const"))
    page.columns.cellWidget(rows["workshop"], 3).setText("2")
    settle(app, 0.3)
    settings.open_dry_run()
    dialog = settings._dry_run
    dialog.resize(1100, 560)
    dialog.ids.setText(str(showcase))
    dialog.run()
    wait_until(app, lambda: dialog.results, what="the dry run")
    save(dialog, "dry_run")
    dialog.close()

    with sqlite3.connect(scene.target) as db:
        db.execute(ORDER_LINES)
    page.product_table.setText("order_line")
    page.products.setChecked(True)
    page.product_table.editingFinished.emit()
    wait_until(app, lambda: page.product_columns.shapes is not None, what="the product table")
    page.tables.setCurrentIndex(1)
    lines = page.product_columns
    row_of = lines.row_of()
    for column, field, convert in (("item", "PRODUCT_NAME", "text"), ("qty", "QUANTITY", "decimal"),
                                   ("unit_price", "PRICE", "decimal")):
        kinds = lines.cellWidget(row_of[column], 2)
        kinds.setCurrentIndex(kinds.findData("field"))
        editor = lines.cellWidget(row_of[column], 3)
        editor.setCurrentIndex(editor.findData(field))
        converts = lines.cellWidget(row_of[column], 4)
        converts.setCurrentIndex(converts.findData(convert))
    settle(app, 0.3)
    save(settings, "mapping_products")  # line_no is required and not mapped yet
    settings.close()
    return []


def shoot(scene: Scene, out: Path, lang: str, translations: Translations, phase: str,
          showcase: int) -> list[Path]:
    app = scene.app
    translations.install(lang)
    window = scene.window
    window.retranslate()
    window.notice_bar.dismiss()
    written: list[Path] = []

    def save(widget, name: str) -> None:
        path = out / f"{name}_{lang}.png"
        for view in (window.deals_view, window.events_view, window.detail.timeline):
            view.viewport().update()  # every cell painted afresh, not reused from before
        settle(app, 0.3)
        widget.grab().save(str(path))
        written.append(path)

    if phase == "calm":
        window.tabs.setCurrentIndex(0)
        window.deals_filter.clear()
        window.select_deal(showcase)
        window.deals_view.scrollToTop()
        window.deals_splitter.setSizes([470, 240])
        save(window, "main_deals")

        window.deals_splitter.setSizes([330, 380])
        window.select_deal(showcase)
        save(window.detail, "deal_detail")
        window.deals_splitter.setSizes([470, 240])

        dialog = StageFilterDialog(scene.controller, window)
        dialog.resize(540, 560)
        dialog.show()
        wait_until(app, lambda: dialog.stage_item("C1:NEW") is not None, what="stage list")
        save(dialog, "stage_filter")
        dialog.close()

        settings = SettingsDialog(scene.controller, window)
        settings.resize(720, 800)
        settings.show()
        settings.webhook_test.click()
        wait_until(app, lambda: settings.webhook_msg.ok, what="webhook test")
        settings.listen_test.click()
        # as the planner's admin would have it: the production server, not a scratch file
        settings.target_url.setText("postgresql+psycopg://deal_monitor@erp-db.factory.local/production")
        settings.target_url.setCursorPosition(0)
        save(settings, "settings")
        settings.close()

        written.extend(shoot_mapping(scene, save, showcase))
    else:
        window.tabs.setCurrentIndex(1)
        window.events_view.scrollToTop()
        scene.controller.on_sync_failed(scene.failures[-1])  # the notice, in this language
        wait_until(app, window.notice_bar.isVisible, what="the failure notice")
        save(window, "main_events")
    return written


def start(doc: str, argv: list[str] | None) -> tuple[argparse.Namespace, QApplication, Translations]:
    """Parse ``--out`` and make the offscreen application with its own settings and translations."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    app = make_application([sys.argv[0]])
    QCoreApplication.setOrganizationName("DealMonitorScreenshots")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(_TMP / "qs"))
    return args, app, Translations(cache=_TMP / "qm")


def main(argv: list[str] | None = None) -> int:
    args, app, translations = start(__doc__, argv)
    translations.install("ru")
    scene = Scene(app)
    written: list[Path] = []
    try:
        showcase = scene.showcase()
        for lang in ("ru", "en"):
            written += shoot(scene, args.out, lang, translations, "calm", showcase)
        scene.troubles()
        for lang in ("ru", "en"):
            written += shoot(scene, args.out, lang, translations, "troubles", showcase)
    finally:
        scene.stop()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
