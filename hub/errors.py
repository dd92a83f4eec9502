"""Domain errors raised by services; each interface renders them in its own format."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class HubError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        if field is not None:
            self.details.setdefault("field", field)


class BadRequest(HubError):
    status_code = 400
    code = "INVALID_PARAMETER"


class Unauthorized(HubError):
    status_code = 401
    code = "UNAUTHORIZED"


class Forbidden(HubError):
    status_code = 403
    code = "FORBIDDEN"


class NotFound(HubError):
    status_code = 404
    code = "NOT_FOUND"


class MethodNotAllowed(HubError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"


class Conflict(HubError):
    status_code = 409
    code = "CONFLICT"


class RateLimited(HubError):
    status_code = 429
    code = "RATE_LIMITED"


class LimitReached(HubError):
    """A cap on what one user may have at once (jobs, bars), not a rate: 429 without Retry-After."""

    status_code = 429
    code = "LIMIT_REACHED"


class PayloadTooLarge(HubError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"


class ServerError(HubError):
    status_code = 500
    code = "INTERNAL_ERROR"


class NotImplementedYet(HubError):
    status_code = 501
    code = "NOT_IMPLEMENTED"


def from_status(status_code: int, message: str, headers: dict[str, str] | None = None) -> HubError:
    """A domain error for an HTTP status the framework raised (404, 405...)."""
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        NotImplementedYet,
    ):
        if kind.status_code == status_code:
            return kind(message, headers=headers)
    error = HubError(message, headers=headers)
    error.status_code = status_code
    error.code = "SERVER_ERROR" if status_code >= 500 else "BAD_REQUEST"
    return error


@contextlib.contextmanager
def fields_named(names: dict[str, str]) -> Iterator[None]:
    """Rename the field a domain error names to an interface's own word for it (``initial_capital``
    becomes Cracktrader's ``initial_cash``, GraphQL's ``initialCapital``)."""
    try:
        yield
    except HubError as exc:
        if exc.field is not None and exc.field in names:
            exc.field = names[exc.field]
            exc.details["field"] = exc.field
        raise
