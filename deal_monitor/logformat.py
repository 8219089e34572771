"""JSON log lines for servers: one object per line, for journald, Docker and log shippers.

Fields: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``thread``, ``message``, ``deal_id``
when the record names a deal (``extra={"deal_id": ...}`` or a message like "deal 42: ..."),
and ``exception`` with the traceback text. The redacting filter (logs.py) runs before the
formatter, so the message and the traceback are already masked.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

FORMATS = ("text", "json")
_DEAL = re.compile(r"\bdeal(?:_id)?[ =#:]*(\d+)\b", re.IGNORECASE)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": message,
        }
        deal_id = getattr(record, "deal_id", None)
        if deal_id is None and (match := _DEAL.search(message)):
            deal_id = match.group(1)
        if deal_id is not None:
            try:
                entry["deal_id"] = int(deal_id)
            except (TypeError, ValueError):
                entry["deal_id"] = str(deal_id)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(kind: str, text_format: str) -> logging.Formatter:
    """The formatter for ``--log-format`` (``text`` uses ``text_format``)."""
    return JsonFormatter() if kind == "json" else logging.Formatter(text_format)
