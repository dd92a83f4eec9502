"""Order entry on the ``/ws`` bot feed: a ``place_order`` or ``cancel_order`` frame in, the frame
that answers it out, through the same broker service as GraphQL and ORCA. The feed decides when
an op runs (in order, beside the socket's reads); this module decides what it says.
"""

from __future__ import annotations

import logging
from typing import Any

from hub.auth import Identity
from hub.broker.model import OrderRequest, OrderStatus
from hub.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    RateLimited,
    fields_named,
)

log = logging.getLogger("tradehub.feed")

PLACE_FIELDS = frozenset(
    {"op", "id", "account", "symbol", "side", "type", "quantity", "price", "stop_price", "tif"}
)
CANCEL_FIELDS = frozenset({"op", "order_id", "id"})
# The broker's words for an order's fields, as /ws spells them.
WIRE_FIELDS = {"account_id": "account", "time_in_force": "tif", "client_order_id": "id"}


async def order_reply(broker: Any, identity: Identity, frame: dict[str, Any]) -> dict[str, Any]:
    """The reply to one ``place_order`` or ``cancel_order``: its ack or its error frame, which
    carries the frame's ``id`` either way."""
    op = frame["op"]
    given = frame.get("id")
    echo = {"id": given} if isinstance(given, str | int) and not isinstance(given, bool) else {}
    try:
        _known_fields(frame, PLACE_FIELDS if op == "place_order" else CANCEL_FIELDS)
        with fields_named(WIRE_FIELDS):
            if op == "place_order":
                return await _place(broker, identity, frame, echo)
            return await _cancel(broker, identity, frame, echo)
    except HubError as exc:
        return _error(op, exc, echo)
    except Exception:
        log.warning("feed order op failed", exc_info=True, extra={"op": op})
        return {
            "op": "error",
            "code": "unavailable",
            "message": f"{op} failed on the hub's side; resend it (a resent place_order with"
            " the same id never makes a second order)",
            **echo,
        }


async def _place(
    broker: Any, identity: Identity, frame: dict[str, Any], echo: dict[str, Any]
) -> dict[str, Any]:
    if frame.get("id") is None:
        raise BadRequest(
            "place_order needs an id: your client order id, 1-64 printable ASCII characters",
            field="client_order_id",
        )
    if frame.get("account") is None:
        raise BadRequest("place_order needs the account to trade in", field="account_id")
    request = OrderRequest.parse(
        account_id=frame["account"],
        symbol=frame.get("symbol"),
        side=frame.get("side"),
        type=frame.get("type"),
        quantity=frame.get("quantity"),
        price=frame.get("price"),
        stop_price=frame.get("stop_price"),
        time_in_force=frame.get("tif"),
        client_order_id=frame["id"],
    )
    row, _ = await broker.place(identity, request)
    order_id = str(row["order_id"])
    if row["status"] == OrderStatus.REJECTED:
        return {
            "op": "error",
            "code": "order_rejected",
            "message": f"order {order_id} was rejected: {row['reject_reason']}",
            **echo,
            "order_id": order_id,
            "reason": row["reject_reason"],
        }
    return {"op": "order_accepted", **echo, "order_id": order_id, "status": row["status"]}


async def _cancel(
    broker: Any, identity: Identity, frame: dict[str, Any], echo: dict[str, Any]
) -> dict[str, Any]:
    if frame.get("order_id") is None:
        raise BadRequest("cancel_order needs the order_id to cancel", field="order_id")
    try:
        row = await broker.cancel(identity, frame["order_id"])
    except Conflict as exc:  # finished: say how, so the bot need not ask
        row = await broker.order(identity, frame["order_id"])
        return {
            "op": "error",
            "code": "conflict",
            "message": exc.message,
            **echo,
            "order_id": str(row["order_id"]),
            "status": row["status"],
        }
    return {
        "op": "order_cancelled",
        **echo,
        "order_id": str(row["order_id"]),
        "status": row["status"],
    }


def _known_fields(frame: dict[str, Any], known: frozenset[str]) -> None:
    """Refuse a field the op does not know: an order quietly missing its ``tif`` (sent as
    ``time_in_force``) would trade differently from what the bot meant."""
    unknown = sorted(str(name)[:40] for name in frame if name not in known)
    if unknown:
        raise BadRequest(
            f"{frame['op']} has no field {unknown[0]!r}; expected {', '.join(sorted(known))}",
            field=unknown[0],
        )


def _error(op: str, exc: HubError, echo: dict[str, Any]) -> dict[str, Any]:
    if isinstance(exc, RateLimited):
        code = "rate_limited"
    elif isinstance(exc, Forbidden):
        code = "forbidden"
    elif isinstance(exc, Conflict):
        code = "conflict"
    elif isinstance(exc, NotFound) and op == "cancel_order":
        code = "not_found"
    elif exc.status_code < 500:  # BadRequest, an unknown account or symbol
        code = "bad_order"
    else:
        code = "unavailable"
    body: dict[str, Any] = {"op": "error", "code": code, "message": exc.message, **echo}
    if exc.field is not None:
        body["field"] = exc.field
    retry_after = exc.headers.get("Retry-After")
    if retry_after is not None and retry_after.isdigit():
        body["retry_after"] = int(retry_after)
    return body
