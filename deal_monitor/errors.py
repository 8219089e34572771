"""The app's exceptions, each with a plain-words hint for the user."""

from __future__ import annotations


class DealMonitorError(Exception):
    """Base class; ``hint`` says what the user can do about it."""

    hint = ""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ListenerError(DealMonitorError):
    hint = "Another program may use this port: choose another port or stop that program."


class TargetError(DealMonitorError):
    """Writing to the target database failed; ``transient`` says whether a retry may help."""

    hint = "Check that the target database is running and the URL in the settings is right."

    def __init__(self, message: str, transient: bool = True, hint: str = "") -> None:
        super().__init__(message, hint)
        self.transient = transient


class BitrixError(DealMonitorError):
    """An error answer (or no usable answer) from the portal."""

    TRANSIENT_CODES = frozenset(
        {"QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "INTERNAL_SERVER_ERROR", "OVERLOAD_LIMIT"}
    )
    AUTH_CODES = frozenset(
        {"expired_token", "invalid_token", "NO_AUTH_FOUND", "invalid_grant", "ERROR_OAUTH",
         "NOT_INSTALLED", "PAYMENT_REQUIRED", "invalid_client"}
    )

    def __init__(self, code: str, description: str = "", http_status: int | None = None) -> None:
        text = f"{code or 'error'}: {description}" if description else (code or "error")
        super().__init__(text)
        self.code = code
        self.description = description
        self.http_status = http_status

    @property
    def transient(self) -> bool:
        """A retry later may succeed: limits, server errors, network trouble."""
        if self.code in self.TRANSIENT_CODES:
            return True
        return self.http_status is None or self.http_status >= 500

    @property
    def is_auth(self) -> bool:
        return self.code in self.AUTH_CODES

    @property
    def not_found(self) -> bool:
        return self.description.strip().rstrip(".") == "Not found"

    @property
    def hint(self) -> str:  # type: ignore[override]
        if self.code == "NO_AUTH_FOUND":
            return "The webhook URL is wrong or was revoked: create a new inbound webhook."
        if self.code in ("expired_token", "invalid_token", "invalid_grant"):
            return "Authorize the app again in the settings."
        if self.code in ("QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT"):
            return "The portal asked to slow down; the app waits and retries by itself."
        if self.code == "OVERLOAD_LIMIT":
            return "The portal blocked REST calls; contact Bitrix24 support."
        if self.code in ("insufficient_scope", "ACCESS_DENIED", "INVALID_CREDENTIALS"):
            return "The webhook or app lacks the CRM permission."
        if self.http_status is None:
            return "The portal did not answer: check the network connection."
        return ""
