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


SHORT = 6  # secrets shorter than this are masked only where they stand alone


class SecretRegistry:
    """The set of secret values to mask; thread-safe.

    A long secret is masked wherever it appears. A short one (an operator's test token,
    "1234") is masked only as a whole word — not inside other words, which masking every
    "1234" in a log line would garble.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._short: re.Pattern[str] | None = None

    def add(self, *values: str | None) -> None:
        with self._lock:
            for value in values:
                if value and value.strip():
                    self._values.add(value)
            short = sorted((v for v in self._values if len(v) < SHORT), key=len, reverse=True)
            self._short = (
                re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, short)) + r")(?![A-Za-z0-9])")
                if short else None
            )

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted((v for v in self._values if len(v) >= SHORT), key=len, reverse=True)
            short = self._short
        for value in values:
            if value in text:
                text = text.replace(value, MARK)
        if short is not None:
            text = short.sub(MARK, text)
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
    install_excepthooks()
    # waitress logs request errors with the peer; keep its noise at warning level
    logging.getLogger("waitress").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def install_excepthooks() -> None:
    """Uncaught exceptions (main thread and any other) go through the redacting handlers.

    Python prints them to stderr by default, past the log file and its redaction filter: a
    traceback can hold a webhook URL or a token in a local variable's repr or a message.
    """
    import sys

    log = logging.getLogger("deal_monitor.uncaught")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        log.critical("uncaught exception in thread %s", name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def main_hook(exc_type, exc_value, exc_traceback) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc_value, exc_traceback)
            return
        log.critical("uncaught exception", exc_info=(exc_type, exc_value, exc_traceback))

    threading.excepthook = thread_hook
    sys.excepthook = main_hook
