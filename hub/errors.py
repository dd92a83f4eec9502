"""Domain errors raised by services; each interface renders them in its own format."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    status_code = 400
    code = "BAD_REQUEST"

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = dict(details or {})
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


class Conflict(HubError):
    status_code = 409
    code = "CONFLICT"


class RateLimited(HubError):
    status_code = 429
    code = "RATE_LIMITED"


class NotImplementedYet(HubError):
    status_code = 501
    code = "NOT_IMPLEMENTED"
