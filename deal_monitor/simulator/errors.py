"""REST errors as the portal reports them: ``{"error": CODE, "error_description": TEXT}`` + status.

Bodies and statuses come from ``fixtures/errors_examples.json`` and the rest-module source;
many CRM errors carry an empty ``error`` code and are told apart by the description only.
"""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """A method or transport failure with the HTTP status the portal would send."""

    def __init__(self, status: int, code: str, description: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def query_limit_exceeded() -> RestError:
    return RestError(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")


def operation_time_limit() -> RestError:
    return RestError(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit.")


def no_auth_found() -> RestError:
    return RestError(401, "NO_AUTH_FOUND", "Wrong authorization data")


def expired_token() -> RestError:
    return RestError(401, "expired_token", "The access token provided has expired.")


def invalid_token() -> RestError:
    return RestError(401, "invalid_token", "Unable to get application by token")


def wrong_auth_type() -> RestError:
    return RestError(403, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method")


def method_not_found() -> RestError:
    return RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def not_found() -> RestError:
    return RestError(400, "", "Not found")


def bad_id() -> RestError:
    return RestError(400, "", "ID is not defined or invalid.")


def argument_null(name: str) -> RestError:
    return RestError(400, "ERROR_ARGUMENT", f"Argument '{name}' is null or empty")


def argument(message: str, name: str) -> RestError:
    return RestError(400, "ERROR_ARGUMENT", f"{message} (parameter '{name}')")


# Bodies used when a fault is injected with only a status code.
DEFAULT_FAULT_BODIES: dict[int, dict[str, str]] = {
    400: {"error": "", "error_description": "Not found"},
    401: {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
    403: {"error": "ACCESS_DENIED", "error_description": "Access denied!"},
    404: {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
    429: {"error": "OPERATION_TIME_LIMIT",
          "error_description": "Method is blocked due to operation time limit."},
    500: {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"},
    503: {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
}

HTTP_REASONS: dict[int, str] = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out",
}


def status_line(status: int) -> str:
    return f"{status} {HTTP_REASONS.get(status, 'Error')}"


def html_error_page(status: int) -> bytes:
    """The kind of page a front proxy serves when the PHP backend is overloaded."""
    line = status_line(status)
    return (
        f"<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n"
        f"<center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode("ascii")
