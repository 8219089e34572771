"""Reference data of the simulated portal: pipelines, stages, users, dictionaries, deal fields.

Stage rows of the default pipeline are copied from the docs example of ``crm.status.list``
(``fixtures/crm_status_list_deal_stage_docs.json``); pipeline 1 ("Производство") follows the
``C<N>:`` naming of real portals. Field descriptors follow the docs example of
``crm.deal.fields`` (titles, ``statusType``, ``settings``, ``isDeprecated``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SEMANTIC_CODE = {"process": "P", "success": "S", "failure": "F", "apology": "F"}


@dataclass(frozen=True)
class Category:
    """A deal pipeline (``crm.category.list`` row)."""

    id: int
    name: str
    sort: int
    is_default: bool


@dataclass(frozen=True)
class Stage:
    """A deal stage (``crm.status.list`` row of ``DEAL_STAGE`` / ``DEAL_STAGE_<N>``)."""

    row_id: int
    status_id: str
    name: str
    name_init: str
    sort: int
    system: bool
    category_id: int
    color: str
    extra_semantics: str  # process | success | failure | apology

    @property
    def semantic_id(self) -> str:
        """``STAGE_SEMANTIC_ID`` of a deal in this stage: P, S or F."""
        return SEMANTIC_CODE[self.extra_semantics]

    @property
    def entity_id(self) -> str:
        return "DEAL_STAGE" if self.category_id == 0 else f"DEAL_STAGE_{self.category_id}"

    def as_status_row(self) -> dict[str, Any]:
        semantics = {"process": None, "success": "S"}.get(self.extra_semantics, "F")
        return {
            "ID": str(self.row_id),
            "ENTITY_ID": self.entity_id,
            "STATUS_ID": self.status_id,
            "NAME": self.name,
            "NAME_INIT": self.name_init,
            "SORT": str(self.sort),
            "SYSTEM": "Y" if self.system else "N",
            "CATEGORY_ID": None if self.category_id == 0 else str(self.category_id),
            "COLOR": self.color,
            "SEMANTICS": semantics,
            "EXTRA": {"SEMANTICS": self.extra_semantics, "COLOR": self.color},
        }


CATEGORIES: tuple[Category, ...] = (
    Category(0, "Общая", 300, True),
    Category(1, "Производство", 400, False),
)

_STAGE_ROWS: tuple[tuple[Any, ...], ...] = (
    # row_id, status_id, name, name_init, sort, system, category, color, semantics
    (101, "NEW", "Новая", "Новая", 10, True, 0, "#39A8EF", "process"),
    (103, "PREPARATION", "Подготовка документов", "", 20, False, 0, "#2FC6F6", "process"),
    (105, "PREPAYMENT_INVOICE", "Cчет на предоплату", "", 30, False, 0, "#55D0E0", "process"),
    (107, "EXECUTING", "В работе", "", 40, False, 0, "#47E4C2", "process"),
    (109, "FINAL_INVOICE", "Финальный счет", "", 50, False, 0, "#FFA900", "process"),
    (111, "WON", "Сделка успешна", "Сделка успешна", 60, True, 0, "#7BD500", "success"),
    (113, "LOSE", "Сделка провалена", "Сделка провалена", 70, True, 0, "#FF5752", "failure"),
    (115, "APOLOGY", "Анализ причины провала", "", 80, False, 0, "#FF5752", "apology"),
    (201, "C1:NEW", "Заявка получена", "Новая", 10, True, 1, "#39A8EF", "process"),
    (203, "C1:PREPARATION", "Согласование ТЗ", "", 20, False, 1, "#2FC6F6", "process"),
    (205, "C1:EXECUTING", "В производстве", "", 30, False, 1, "#47E4C2", "process"),
    (207, "C1:FINAL_INVOICE", "Отгрузка", "", 40, False, 1, "#FFA900", "process"),
    (209, "C1:WON", "Выполнено", "Сделка успешна", 50, True, 1, "#7BD500", "success"),
    (211, "C1:LOSE", "Отменено", "Сделка провалена", 60, True, 1, "#FF5752", "failure"),
    (213, "C1:APOLOGY", "Анализ причины отмены", "", 70, False, 1, "#FF5752", "apology"),
)

STAGES: dict[str, Stage] = {row[1]: Stage(*row) for row in _STAGE_ROWS}


def stages_of(category_id: int) -> list[Stage]:
    """Stages of one pipeline in display order."""
    return sorted((s for s in STAGES.values() if s.category_id == category_id), key=lambda s: s.sort)


def first_stage(category_id: int) -> Stage:
    return stages_of(category_id)[0]


def category_ids() -> list[int]:
    return [c.id for c in CATEGORIES]


# Other crm.status dictionaries a deal refers to (ENTITY_ID -> [(STATUS_ID, NAME)]).
DICTIONARIES: dict[str, list[tuple[str, str]]] = {
    "DEAL_TYPE": [
        ("SALE", "Продажа"),
        ("COMPLEX", "Комплексная продажа"),
        ("GOODS", "Продажа товара"),
        ("SERVICES", "Продажа услуги"),
        ("SERVICE", "Сервисное обслуживание"),
    ],
    "SOURCE": [
        ("CALL", "Звонок"),
        ("EMAIL", "Электронная почта"),
        ("WEB", "Веб-сайт"),
        ("ADVERTISING", "Реклама"),
        ("PARTNER", "Существующий клиент"),
        ("RECOMMENDATION", "По рекомендации"),
        ("TRADE_SHOW", "Выставка"),
        ("CALLBACK", "Обратный звонок"),
        ("OTHER", "Другое"),
    ],
}

CURRENCIES = ("RUB", "USD", "EUR", "KZT", "BYN")
BASE_CURRENCY = "RUB"

USERS: tuple[dict[str, Any], ...] = (
    {"ID": "1", "NAME": "Анна", "LAST_NAME": "Кузнецова", "SECOND_NAME": "Сергеевна",
     "EMAIL": "a.kuznetsova@example.ru", "WORK_POSITION": "Руководитель отдела продаж",
     "PERSONAL_GENDER": "F", "UF_DEPARTMENT": [1]},
    {"ID": "6", "NAME": "Игорь", "LAST_NAME": "Смирнов", "SECOND_NAME": "Петрович",
     "EMAIL": "i.smirnov@example.ru", "WORK_POSITION": "Менеджер",
     "PERSONAL_GENDER": "M", "UF_DEPARTMENT": [3]},
    {"ID": "9", "NAME": "Ольга", "LAST_NAME": "Волкова", "SECOND_NAME": "",
     "EMAIL": "o.volkova@example.ru", "WORK_POSITION": "Менеджер",
     "PERSONAL_GENDER": "F", "UF_DEPARTMENT": [3]},
    {"ID": "12", "NAME": "Дмитрий", "LAST_NAME": "Орлов", "SECOND_NAME": "Андреевич",
     "EMAIL": "d.orlov@example.ru", "WORK_POSITION": "Начальник производства",
     "PERSONAL_GENDER": "M", "UF_DEPARTMENT": [5]},
)
USER_IDS = tuple(int(u["ID"]) for u in USERS)


def _field(ftype: str, title: str, *, ro: bool = False, immutable: bool = False,
           multiple: bool = False, **extra: Any) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "type": ftype,
        "isRequired": False,
        "isReadOnly": ro,
        "isImmutable": immutable,
        "isMultiple": multiple,
        "isDynamic": False,
    }
    if "statusType" in extra:
        desc["statusType"] = extra.pop("statusType")
    if "isDeprecated" in extra:
        desc["isDeprecated"] = extra.pop("isDeprecated")
    desc["title"] = title
    desc.update(extra)
    return desc


# Standard deal fields, in the order crm.deal.fields lists them.
FIELDS: dict[str, dict[str, Any]] = {
    "ID": _field("integer", "ID", ro=True),
    "TITLE": _field("string", "Название"),
    "TYPE_ID": _field("crm_status", "Тип", statusType="DEAL_TYPE"),
    "CATEGORY_ID": _field("crm_category", "Воронка", immutable=True),
    "STAGE_ID": _field("crm_status", "Стадия сделки", statusType="DEAL_STAGE"),
    "STAGE_SEMANTIC_ID": _field("string", "Группа стадии", ro=True),
    "IS_NEW": _field("char", "Новая сделка", ro=True),
    "IS_RECURRING": _field("char", "Регулярная сделка"),
    "IS_RETURN_CUSTOMER": _field("char", "Повторная сделка"),
    "IS_REPEATED_APPROACH": _field("char", "Повторное обращение"),
    "PROBABILITY": _field("integer", "Вероятность"),
    "CURRENCY_ID": _field("crm_currency", "Валюта"),
    "OPPORTUNITY": _field("double", "Сумма"),
    "IS_MANUAL_OPPORTUNITY": _field("char", "IS_MANUAL_OPPORTUNITY"),
    "TAX_VALUE": _field("double", "Ставка налога"),
    "COMPANY_ID": _field("crm_company", "Компания", settings={"parentEntityTypeId": 4}),
    "CONTACT_ID": _field("crm_contact", "Контакт", isDeprecated=True),
    "CONTACT_IDS": _field("crm_contact", "Контакты", multiple=True),
    "QUOTE_ID": _field("crm_quote", "Предложение", ro=True, settings={"parentEntityTypeId": 7}),
    "BEGINDATE": _field("date", "Дата начала"),
    "CLOSEDATE": _field("date", "Дата завершения"),
    "OPENED": _field("char", "Доступна для всех"),
    "CLOSED": _field("char", "Закрыта"),
    "COMMENTS": _field("string", "Комментарий"),
    "ASSIGNED_BY_ID": _field("user", "Ответственный"),
    "CREATED_BY_ID": _field("user", "Кем создана", ro=True),
    "MODIFY_BY_ID": _field("user", "Кем изменена", ro=True),
    "MOVED_BY_ID": _field("user", "MOVED_BY_ID", ro=True),
    "DATE_CREATE": _field("datetime", "Дата создания", ro=True),
    "DATE_MODIFY": _field("datetime", "Дата изменения", ro=True),
    "MOVED_TIME": _field("datetime", "MOVED_TIME", ro=True),
    "SOURCE_ID": _field("crm_status", "Источник", statusType="SOURCE"),
    "SOURCE_DESCRIPTION": _field("string", "Дополнительно об источнике"),
    "LEAD_ID": _field("crm_lead", "Лид", ro=True, settings={"parentEntityTypeId": 1}),
    "ADDITIONAL_INFO": _field("string", "Дополнительная информация"),
    "LOCATION_ID": _field("location", "Местоположение"),
    "ORIGINATOR_ID": _field("string", "Внешний источник"),
    "ORIGIN_ID": _field("string", "Идентификатор элемента во внешнем источнике"),
    "UTM_SOURCE": _field("string", "Рекламная система"),
    "UTM_MEDIUM": _field("string", "Тип трафика"),
    "UTM_CAMPAIGN": _field("string", "Обозначение рекламной кампании"),
    "UTM_CONTENT": _field("string", "Содержание кампании"),
    "UTM_TERM": _field("string", "Условие поиска кампании"),
    "LAST_ACTIVITY_TIME": _field("datetime", "LAST_ACTIVITY_TIME", ro=True),
    "LAST_ACTIVITY_BY": _field("user", "LAST_ACTIVITY_BY", ro=True),
}


def _user_field(ftype: str, label: str, settings: dict[str, Any]) -> dict[str, Any]:
    desc = _field(ftype, label)
    desc["isDynamic"] = True
    desc["listLabel"] = label
    desc["formLabel"] = label
    desc["filterLabel"] = label
    desc["settings"] = settings
    return desc


USER_FIELDS: dict[str, dict[str, Any]] = {
    "UF_CRM_1721244482250": _user_field(
        "string", "Комментарий для склада",
        {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
    ),
    "UF_CRM_1721244507931": _user_field(
        "string", "Номер заказа в 1С",
        {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
    ),
}

# Order of keys in a crm.deal.get result (as in the docs example; CONTACT_IDS is never returned).
GET_ORDER: tuple[str, ...] = (
    "ID", "TITLE", "TYPE_ID", "STAGE_ID", "PROBABILITY", "CURRENCY_ID", "OPPORTUNITY",
    "IS_MANUAL_OPPORTUNITY", "TAX_VALUE", "LEAD_ID", "COMPANY_ID", "CONTACT_ID", "QUOTE_ID",
    "BEGINDATE", "CLOSEDATE", "ASSIGNED_BY_ID", "CREATED_BY_ID", "MODIFY_BY_ID", "DATE_CREATE",
    "DATE_MODIFY", "OPENED", "CLOSED", "COMMENTS", "ADDITIONAL_INFO", "LOCATION_ID",
    "CATEGORY_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "IS_RECURRING", "IS_RETURN_CUSTOMER",
    "IS_REPEATED_APPROACH", "SOURCE_ID", "SOURCE_DESCRIPTION", "ORIGINATOR_ID", "ORIGIN_ID",
    "MOVED_BY_ID", "MOVED_TIME", "LAST_ACTIVITY_TIME", "UTM_SOURCE", "UTM_MEDIUM",
    "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM", "LAST_ACTIVITY_BY",
    *USER_FIELDS.keys(),
)

ALL_FIELDS: dict[str, dict[str, Any]] = {**FIELDS, **USER_FIELDS}

NUMERIC_TYPES = frozenset(
    {"integer", "double", "user", "crm_category", "crm_company", "crm_contact", "crm_lead",
     "crm_quote", "location"}
)
DATE_TYPES = frozenset({"date", "datetime"})
NO_LIKE_TYPES = frozenset({"crm_status", "crm_contact", "crm_company", "crm_category"})


def field_type(name: str) -> str | None:
    desc = ALL_FIELDS.get(name)
    return desc["type"] if desc else None
