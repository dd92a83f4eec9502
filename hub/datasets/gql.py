"""GraphQL for datasets: ``candles`` and ``generateSyntheticDataset``."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.paced import paced_slices
from hub.jobs.gql import Job
from hub.times import checked_ns, datetime_of_ns

CANDLE_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@strawberry.type
class Candle:
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@strawberry.input
class GenerateSyntheticDatasetInput:
    symbol: str
    timeframe: str = "1h"
    bars: int = 1000
    seed: int = 0
    start: datetime | None = None
    initial_price: float = 100.0
    drift: float = 0.05
    volatility: float = 0.6


async def resolve_candles(
    info: Info[Context, None],
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> list[Candle]:
    ctx = info.context
    ctx.require_identity()
    bars = await ctx.state.datasets.candles(
        symbol,
        timeframe,
        start_ns=checked_ns(start, "start"),
        end_ns=checked_ns(end, "end"),
        limit=limit,
    )

    def build(start: int, stop: int) -> list[Candle]:
        ts, o, h, lo, c, v = (bars[k][start:stop].tolist() for k in CANDLE_COLUMNS)
        return [
            Candle(ts=datetime_of_ns(t), open=o[i], high=h[i], low=lo[i], close=c[i], volume=v[i])
            for i, t in enumerate(ts)
        ]

    return paced_slices(len(bars["ts"]), build)


async def generate_synthetic_dataset(
    info: Info[Context, None], input: GenerateSyntheticDatasetInput
) -> Job:
    ctx = info.context
    payload = {
        "symbol": input.symbol,
        "timeframe": input.timeframe,
        "bars": input.bars,
        "seed": input.seed,
        "initial_price": input.initial_price,
        "drift": input.drift,
        "volatility": input.volatility,
    }
    if input.start is not None:
        payload["start"] = input.start.isoformat()
    row = await ctx.state.jobs.create(ctx.require_identity(), "dataset.synthetic", payload)
    return Job.from_row(row)


@strawberry.type
class Query:
    candles: list[Candle] = strawberry.field(
        resolver=resolve_candles,
        description="Bars of a dataset, oldest first.",
        metadata=rows("limit", 1000),
    )


@strawberry.type
class Mutation:
    generate_synthetic_dataset: Job = strawberry.mutation(
        resolver=generate_synthetic_dataset,
        description="Start a dataset.synthetic job: a reproducible GBM OHLCV series.",
    )
