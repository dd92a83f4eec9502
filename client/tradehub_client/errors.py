"""Every error the client raises, under one base class: catch ``TradehubError`` for all of them."""

from __future__ import annotations

from typing import Any


class TradehubError(Exception):
    """Base class of the client's errors."""


class ApiError(TradehubError):
    """A REST call answered 4xx or 5xx. ``message`` is read from the family's own error format
    (``{"error": "..."}``, ``{"error": {"code", "message"}}`` or ``{"detail", "status_code"}``)."""

    def __init__(
        self, status: int, message: str, body: Any = None, code: str | None = None
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body
        self.code = code


class AuthenticationError(ApiError):
    """The credentials were refused (401), and the client has nothing else to try."""


class GraphQLError(TradehubError):
    """A GraphQL operation answered ``errors``; ``errors`` is that list as the hub sent it."""

    def __init__(self, operation: str, errors: list[dict[str, Any]]) -> None:
        first = errors[0].get("message", "error") if errors else "error"
        super().__init__(f"{operation}: {first}")
        self.operation = operation
        self.errors = errors

    @property
    def field(self) -> str | None:
        """The input field the first error names, when the hub named one."""
        extensions = (self.errors[0].get("extensions") or {}) if self.errors else {}
        field = extensions.get("field")
        return str(field) if field is not None else None


class FeedError(TradehubError):
    """An ``{"op": "error"}`` frame from ``/ws``: ``code`` is the hub's code for it."""

    def __init__(self, code: str, message: str, frame: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.frame = frame or {}


class SubscriptionRefused(FeedError):
    """The hub will not serve the channel (unknown, not found, forbidden, a bad ``since``...):
    retrying cannot help."""

    def __init__(self, channel: str, code: str, message: str, frame: dict[str, Any]) -> None:
        super().__init__(code, message, frame)
        self.channel = channel


class HistoryGone(TradehubError):
    """The hub no longer holds the events after ``since`` (``recovered: false``): a recent topic
    whose history Redis lost or trimmed. ``missed`` is the first and last sequence gone (the last
    is None when unknown); subscribe again without ``since`` to follow from now."""

    def __init__(
        self,
        channel: str,
        since: int | None,
        missed: tuple[int, int | None] | None,
        epoch: str | None,
        *,
        reason: str = "",
    ) -> None:
        span = ""
        if missed is not None:
            span = f" {missed[0]}..{missed[1] if missed[1] is not None else '?'}"
        super().__init__(
            f"events{span} of {channel} are no longer in the hub's history"
            f"{f' ({reason})' if reason else ''}; subscribe again without since to follow from now"
        )
        self.channel = channel
        self.since = since
        self.missed = missed
        self.epoch = epoch


class OrderError(FeedError):
    """An order op on ``/ws`` was refused. ``client_order_id`` is the op's ``id``."""

    @property
    def client_order_id(self) -> str | None:
        given = self.frame.get("id")
        return None if given is None else str(given)

    @property
    def order_id(self) -> str | None:
        found = self.frame.get("order_id")
        return None if found is None else str(found)


class BadOrder(OrderError):
    """The order's shape, an unknown account or symbol (``field`` names the culprit)."""

    @property
    def field(self) -> str | None:
        found = self.frame.get("field")
        return None if found is None else str(found)


class OrderRejected(OrderError):
    """The broker's risk or cash check refused the order; it is stored as rejected."""

    @property
    def reason(self) -> str:
        return str(self.frame.get("reason", self.message))


class OrderConflict(OrderError):
    """Cancelling an order that already finished; ``status`` says how it ended."""

    @property
    def status(self) -> str | None:
        found = self.frame.get("status")
        return None if found is None else str(found)


class OrderRateLimited(OrderError):
    """Over the account's orders a second; ``retry_after`` is in seconds."""

    @property
    def retry_after(self) -> float:
        return float(self.frame.get("retry_after") or 1)


ORDER_ERRORS: dict[str, type[OrderError]] = {
    "bad_order": BadOrder,
    "order_rejected": OrderRejected,
    "conflict": OrderConflict,
    "rate_limited": OrderRateLimited,
}
