"""GraphQL for datasets: ``datasets``, ``dataset``, ``candles`` and ``generateSyntheticDataset``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest
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


@strawberry.type(
    description="A dataset (Stage1's dataset object), its row counts and first and last times "
    "(epoch microseconds) counted from the measurements it names. Shared by every user."
)
class Dataset:
    dataset_id: strawberry.ID
    dataset_slug: str
    symbol: str
    granularity: str
    source: str
    ohlcv_measurement: str | None
    indicator_measurement: str | None
    # Float: counts and microsecond times exceed GraphQL's 32-bit Int (exact below 2**53).
    ohlcv_row_count: float
    indicator_row_count: float
    ohlcv_first_ts: float | None
    ohlcv_last_ts: float | None
    indicator_first_ts: float | None
    indicator_last_ts: float | None
    metadata: JSON

    @classmethod
    def from_row(cls, row: Any) -> Dataset:
        return cls(
            dataset_id=strawberry.ID(str(row["dataset_id"])),
            **{name: row[name] for name in DATASET_FIELDS},
        )


DATASET_FIELDS = (
    "dataset_slug",
    "symbol",
    "granularity",
    "source",
    "ohlcv_measurement",
    "indicator_measurement",
    "ohlcv_row_count",
    "indicator_row_count",
    "ohlcv_first_ts",
    "ohlcv_last_ts",
    "indicator_first_ts",
    "indicator_last_ts",
    "metadata",
)
MAX_DATASETS = 500


async def resolve_datasets(
    info: Info[Context, None], limit: int = 50, offset: int = 0
) -> list[Dataset]:
    info.context.require_identity()
    if not 1 <= limit <= MAX_DATASETS:
        raise BadRequest(f"limit must be between 1 and {MAX_DATASETS}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")
    rows = await info.context.state.datasets.catalogue(limit, offset)
    return [Dataset.from_row(row) for row in rows]


async def resolve_dataset(info: Info[Context, None], id: strawberry.ID) -> Dataset:
    info.context.require_identity()
    return Dataset.from_row(await info.context.state.datasets.describe(str(id)))


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
    datasets: list[Dataset] = strawberry.field(
        resolver=resolve_datasets,
        description="Datasets, newest first, with their measurements' stats.",
        metadata=rows("limit", 50),
    )
    dataset: Dataset = strawberry.field(resolver=resolve_dataset, description="One dataset.")
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
