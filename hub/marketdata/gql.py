"""GraphQL for market data: the ``ticks`` subscription."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.gql.context import Context
from hub.gql.streams import stream_topic
from hub.marketdata.service import tick_topic
from hub.subscription import Event
from hub.times import datetime_of_ns


@strawberry.type(description="One market data tick; `epoch` changes when Redis lost the history.")
class Tick:
    sequence: int
    epoch: str
    symbol: str
    ts: datetime | None
    price: float | None
    size: float | None
    data: JSON


async def ticks(
    info: Info[Context, None],
    symbol: str,
    since_sequence: int | None = None,
    epoch: str | None = None,
) -> AsyncGenerator[Tick, None]:
    """Live ticks of ``symbol`` (from ``sinceSequence`` while Redis still holds them)."""
    async for event in stream_topic(info, tick_topic(symbol), since_sequence, epoch):
        yield event.memo(("ticks", symbol), partial(_tick, event, symbol))


def _tick(event: Event, symbol: str) -> Tick:
    data = event.data()
    ts = data.get("ts") if isinstance(data, dict) else None
    tick = Tick(
        sequence=event.seq,
        epoch=event.epoch,
        symbol=symbol,
        ts=datetime_of_ns(int(ts)) if isinstance(ts, int | float) else None,
        price=data.get("price") if isinstance(data, dict) else None,
        size=data.get("size") if isinstance(data, dict) else None,
        data=data,
    )
    return event.keyed(tick)


@strawberry.type
class Subscription:
    ticks: Tick = strawberry.subscription(resolver=ticks)  # type: ignore[assignment]
