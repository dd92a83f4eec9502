"""GraphQL for market data: the ``ticks`` and ``bars`` subscriptions and the ``startReplay``
mutation."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import fields_named
from hub.gql.context import Context
from hub.gql.streams import stream_topic
from hub.jobs.gql import Job
from hub.marketdata.barstate import bars_topic
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


@strawberry.type(
    description="One OHLCV bar built from live ticks: the period from `ts` (its start, aligned "
    "to the epoch) for one timeframe. `closed: false` is the bar still forming (it changes "
    "until it closes); `closed: true` is final and stored in ts.live_bars."
)
class Bar:
    sequence: int
    symbol: str
    timeframe: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    ticks: int
    closed: bool


async def bars(info: Info[Context, None], symbol: str, timeframe: str) -> AsyncGenerator[Bar, None]:
    """``symbol``'s ``timeframe`` bars (1s..9999w, like ``1m``, ``4h``, ``1d``): the forming bar,
    or the last closed one, first; then the forming bar as it changes (at most four times a
    second) and each bar as it closes."""
    topic = bars_topic(symbol, timeframe)
    async for event in stream_topic(info, topic, None):
        yield event.memo("bars", partial(_bar, event))


def _bar(event: Event) -> Bar:
    data = event.data()
    return event.keyed(
        Bar(
            sequence=event.seq,
            symbol=data["symbol"],
            timeframe=data["timeframe"],
            ts=datetime_of_ns(int(data["ts"])),
            open=data["open"],
            high=data["high"],
            low=data["low"],
            close=data["close"],
            volume=data["volume"],
            ticks=data["ticks"],
            closed=data["closed"],
        )
    )


@strawberry.input(
    description="A replay: a dataset's bars (four ticks each) or a symbol's stored ticks, "
    "from start (inclusive) to end (exclusive)."
)
class StartReplayInput:
    dataset_id: strawberry.ID | None = None
    symbol: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    speed: float | None = strawberry.field(
        default=None,
        description="null or 0: as fast as possible; else a multiple of real time (60: an hour "
        "of market time a minute)",
    )


async def start_replay(info: Info[Context, None], input: StartReplayInput) -> Job:
    ctx = info.context
    payload = {
        "dataset_id": None if input.dataset_id is None else str(input.dataset_id),
        "symbol": input.symbol,
        "start": None if input.start is None else input.start.isoformat(),
        "end": None if input.end is None else input.end.isoformat(),
        "speed": input.speed,
    }
    with fields_named({"dataset_id": "datasetId"}):
        row = await ctx.state.marketdata.start_replay(ctx.require_identity(), payload)
    return Job.from_row(row)


@strawberry.type
class Mutation:
    start_replay: Job = strawberry.mutation(
        resolver=start_replay,
        description="Start a marketdata.replay job publishing onto ticks:{symbol} (an admin, or "
        "an API key with the marketdata:write scope).",
    )


@strawberry.type
class Subscription:
    ticks: Tick = strawberry.subscription(resolver=ticks)  # type: ignore[assignment]
    bars: Bar = strawberry.subscription(resolver=bars)  # type: ignore[assignment]
