"""The ``dataset.synthetic`` job: a reproducible GBM OHLCV series written in chunks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.auth import Identity
from hub.datasets.timeframes import timeframe_ns
from hub.jobs.registry import JobType
from hub.times import EARLIEST, LATEST, ns_of

if TYPE_CHECKING:
    from hub.datasets.service import DatasetService
    from hub.domains import Resources
    from hub.jobs.context import JobContext

CHUNK_BARS = 100_000
MAX_BARS = 20_000_000


class SyntheticDatasetPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9/_.:-]+$")
    timeframe: str = "1h"
    bars: int = Field(ge=1, le=MAX_BARS)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC)
    initial_price: float = Field(default=100.0, gt=0)
    drift: float = Field(default=0.05, ge=-5, le=5, description="annualised drift")
    volatility: float = Field(default=0.6, gt=0, le=10, description="annualised volatility")

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        timeframe_ns(value)
        return value

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if not EARLIEST <= value < LATEST:
            raise ValueError(f"start must be between {EARLIEST.date()} and {LATEST.date()}")
        return value

    @model_validator(mode="after")
    def _ends_in_range(self) -> SyntheticDatasetPayload:
        end = ns_of(self.start) + self.bars * timeframe_ns(self.timeframe)
        if end >= ns_of(LATEST):
            raise ValueError(
                f"{self.bars:,} bars of {self.timeframe} from {self.start.date()} end after "
                f"{LATEST.date()}, the last time the hub can hold"
            )
        return self

    def total_units(self) -> int:
        return self.bars


async def generate_synthetic(ctx: JobContext, payload: SyntheticDatasetPayload) -> dict[str, Any]:
    from engine.synthetic import GbmState, gbm_ohlcv_chunk, gbm_rng

    datasets: DatasetService = ctx.service("datasets")
    step = timeframe_ns(payload.timeframe)
    start_ns = ns_of(payload.start)
    end_ns = start_ns + payload.bars * step
    dataset = await datasets.prepare_series(
        payload.symbol,
        payload.timeframe,
        start_ns,
        end_ns,
        source="synthetic",
        created_by=await ctx.jobs.owner(ctx.job_id),
        metadata={"generator": "gbm", "seed": payload.seed},
    )
    await ctx.log("generating", bars=payload.bars, measurement=dataset["ohlcv_measurement"])
    rng = gbm_rng(payload.seed)
    state = GbmState(0, payload.initial_price)
    written = 0
    try:
        while written < payload.bars:
            n = min(CHUNK_BARS, payload.bars - written)
            bars, state = await asyncio.to_thread(
                gbm_ohlcv_chunk,
                rng,
                state,
                n,
                start_ns=start_ns,
                step_ns=step,
                drift=payload.drift,
                volatility=payload.volatility,
            )
            await datasets.append_bars(dataset, bars)
            written += n
            await ctx.progress(written, payload.bars)
    except BaseException:
        await asyncio.shield(datasets.discard(dataset, start_ns, end_ns))
        raise
    dataset = await datasets.refresh_stats(dataset)
    await ctx.log("done", bars=written)
    return {
        "dataset_id": str(dataset["dataset_id"]),
        "dataset_slug": dataset["dataset_slug"],
        "measurement": dataset["ohlcv_measurement"],
        "bars": written,
        "first_ts": dataset["ohlcv_first_ts"],
        "last_ts": dataset["ohlcv_last_ts"],
    }


async def check_synthetic(
    resources: Resources, identity: Identity, payload: SyntheticDatasetPayload
) -> None:
    datasets: DatasetService = resources.service("datasets")
    await datasets.check_overwrite(identity, payload.symbol, payload.timeframe)


SYNTHETIC = JobType(
    name="dataset.synthetic",
    payload=SyntheticDatasetPayload,
    handler="hub.datasets.jobs:generate_synthetic",
    check=check_synthetic,
    description="Generate a reproducible OHLCV series (geometric Brownian motion from a seed)",
    max_tries=3,
)
