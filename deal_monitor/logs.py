"""Logging set-up with a filter that keeps secrets out of every log record.

The webhook URL carries its secret in the path, events carry ``auth[application_token]``,
OAuth carries access and refresh tokens. Every secret the app learns is registered here, and
one filter on the handlers replaces registered values and secret-shaped patterns with a marker,
whatever the code that logged them forgot.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import threading
from pathlib import Path

from . import logformat

MARK = "***"

_PATTERNS = [
    # /rest/<user>/<secret>/ in webhook URLs
    re.compile(r"(/rest/\d+/)[^/\s\"']+"),
    # auth[...token]=value in form bodies, raw or percent-encoded brackets
    re.compile(r"((?:auth(?:\[|%5B)[a-z_]*token(?:\]|%5D))=)[^&\s\"']+", re.IGNORECASE),
    # JSON / dict style "access_token": "value"
    re.compile(
        r"((?:access_token|refresh_token|application_token|client_secret)[\"']?\s*[:=]\s*[\"']?)"
        r"[^\"'&\s,}]+",
        re.IGNORECASE,
    ),
]


class SecretRegistry:
    """The set of secret values to mask; thread-safe, values shorter than 6 chars are ignored."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value and len(value) >= 6:
                    self._values.add(value)

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MARK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MARK, text)
        return text


secrets = SecretRegistry()


class RedactingFilter(logging.Filter):
    """Renders the record's message once, masks secrets in it and in the traceback text."""

    def __init__(self, registry: SecretRegistry = secrets) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = self.registry.redact(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = self.registry.redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True


FORMAT = "%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s"


def setup(log_dir: Path | None, level: int = logging.INFO, console: bool = True,
          fmt: str = "text") -> None:
    """Configure the root logger: console and/or a rotating file, both behind the redactor
    (``log_dir`` None: no file; ``fmt`` "json": one JSON object per line, see logformat.py)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_deal_monitor", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    handlers: list[logging.Handler] = []
    if console:
        handlers.append(logging.StreamHandler())
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / "deal-monitor.log", maxBytes=5_000_000, backupCount=3, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(logformat.formatter(fmt, FORMAT))
        handler.addFilter(RedactingFilter())
        handler._deal_monitor = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    # waitress logs request errors with the peer; keep its noise at warning level
    logging.getLogger("waitress").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
