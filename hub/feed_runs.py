"""Cracktrader's channel names on ``/ws``: ``orders``, ``trades``, ``equity`` and ``status`` of the
caller's current run (seed 004).

Each names a topic of the run resolved when the caller subscribes: ``orders`` is the run's
paper account's ``account:{id}:orders`` (only the run's own orders), the others its
``execution:{id}:trades|equity|status``. Frames carry the short name as their channel and our
``seq`` for resume. An ``orders`` frame's ``data`` has exactly seed 004's fields: ``order_id``,
``status``, ``symbol``, ``side`` (lowercase), ``amount``, ``price`` (the fill's price, else the
order's average or limit price) and ``timestamp`` (epoch milliseconds: the fill's market time,
else when the order last changed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from hub.executions.topics import status_topic, stream_topic

if TYPE_CHECKING:
    from hub.auth import Identity
    from hub.subscription import Event

RUNNER_CHANNELS = frozenset({"orders", "trades", "equity", "status"})

Frame = Callable[["Event"], "bytes | None"]


class NoCurrentRun(Exception):
    pass


async def runner_channel(state: Any, identity: Identity, channel: str) -> tuple[str, Frame]:
    """The topic behind a Cracktrader channel name, and how its frames are written."""
    row = await state.executions.current_run(identity)
    if row is None:
        raise NoCurrentRun(
            f"there is no current run for channel {channel!r}; start one with POST /api/v1/run/live"
        )
    execution_id = row["execution_id"]
    if channel == "orders":
        if row["account_id"] is None:
            raise NoCurrentRun("the current run is a backtest: it places no orders")
        prefix = f"L{execution_id}-"
        return f"account:{row['account_id']}:orders", lambda e: _order_frame(e, prefix)
    topic = (
        status_topic(execution_id) if channel == "status" else stream_topic(execution_id, channel)
    )
    return topic, lambda e: _frame(channel, e.seq, e.data_json)


def _frame(channel: str, seq: int, data_json: bytes) -> bytes:
    return b'{"channel":"%s","seq":%d,"data":%s}' % (channel.encode(), seq, data_json)


def _order_frame(event: Event, prefix: str) -> bytes | None:
    data = event.data()
    order = data.get("order") or {}
    if not str(order.get("client_order_id", "")).startswith(prefix):
        return None
    fill = data.get("fill")
    if fill is not None:
        price, millis = fill.get("price"), int(fill.get("ts") or 0) // 1_000_000
    else:
        price = order.get("average_price") or order.get("price")
        changed = order.get("updated_at")
        millis = int(datetime.fromisoformat(changed).timestamp() * 1000) if changed else 0
    body = {
        "order_id": order.get("order_id"),
        "status": order.get("status"),
        "symbol": order.get("symbol"),
        "side": str(order.get("side", "")).lower(),
        "amount": order.get("quantity"),
        "price": price,
        "timestamp": millis,
    }
    return _frame("orders", event.seq, orjson.dumps(body))
