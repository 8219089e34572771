"""Amounts, dates and durations in the format of the UI locale (``QLocale()``, set at start).

Times from the core are timezone-aware; they are shown in the computer's local time.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from PySide6.QtCore import QCoreApplication, QDate, QDateTime, QLocale, QTime

CURRENCY_SYMBOLS = {
    "RUB": "₽",
    "USD": "$",
    "EUR": "€",
    "KZT": "₸",
    "UAH": "₴",
    "BYN": "Br",
    "CNY": "¥",
    "GBP": "£",
}


def currency_symbol(code: str) -> str:
    return CURRENCY_SYMBOLS.get(code.upper(), code.upper())


def amount_text(amount: Decimal, currency: str) -> str:
    """``1 234 567,00 ₽`` in Russian, ``₽1,234,567.00`` in English."""
    return QLocale().toCurrencyString(float(amount), currency_symbol(currency or ""), 2)


def _qdatetime(moment: datetime) -> QDateTime:
    local = moment.astimezone() if moment.tzinfo else moment
    return QDateTime(
        QDate(local.year, local.month, local.day),
        QTime(local.hour, local.minute, local.second),
    )


def datetime_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return QLocale().toString(_qdatetime(moment), QLocale.FormatType.ShortFormat)


def date_text(day: date | None) -> str:
    if day is None:
        return ""
    return QLocale().toString(QDate(day.year, day.month, day.day), QLocale.FormatType.ShortFormat)


def _time_format_with_seconds() -> str:
    fmt = QLocale().timeFormat(QLocale.FormatType.ShortFormat)
    return fmt if "ss" in fmt else fmt.replace("mm", "mm:ss", 1)


def time_text(moment: datetime | None, today: date | None = None) -> str:
    """Time with seconds for today, date and time for older moments (the events table)."""
    if moment is None:
        return ""
    local = _qdatetime(moment)
    today = today or datetime.now().astimezone().date()
    locale = QLocale()
    clock = locale.toString(local.time(), _time_format_with_seconds())
    if local.date() == QDate(today.year, today.month, today.day):
        return clock
    return f"{locale.toString(local.date(), QLocale.FormatType.ShortFormat)} {clock}"


def duration_text(seconds: float | None) -> str:
    """A rough, friendly duration for ETAs: ``45 s``, ``3 min``, ``1 h 20 min``."""
    if seconds is None:
        return ""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return QCoreApplication.translate("Formatting", "%1 s").replace("%1", str(seconds))
    minutes = round(seconds / 60)
    if minutes < 60:
        return QCoreApplication.translate("Formatting", "%1 min").replace("%1", str(minutes))
    hours, minutes = divmod(minutes, 60)
    return (
        QCoreApplication.translate("Formatting", "%1 h %2 min")
        .replace("%1", str(hours))
        .replace("%2", str(minutes))
    )


def number_text(value: int) -> str:
    return QLocale().toString(int(value))


def parse_iso(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


__all__ = [
    "amount_text",
    "currency_symbol",
    "date_text",
    "datetime_text",
    "duration_text",
    "number_text",
    "parse_iso",
    "time_text",
]
