"""The ``dataset.synthetic`` job: a reproducible GBM OHLCV series written in chunks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.datasets import repository as repo
from hub.datasets.service import ensure_ohlcv_dataset
from hub.datasets.timeframes import timeframe_ns
from hub.jobs import repository as jobs_repo
from hub.jobs.registry import JobType, register

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
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def total_units(self) -> int:
        return self.bars


async def generate_synthetic(ctx: Any, payload: SyntheticDatasetPayload) -> dict[str, Any]:
    from engine.synthetic import GbmState, gbm_ohlcv_chunk, gbm_rng

    step = timeframe_ns(payload.timeframe)
    start_ns = int(payload.start.timestamp() * 1_000_000) * 1000
    end_ns = start_ns + payload.bars * step
    pool = ctx.pool
    async with pool.acquire() as conn, conn.transaction():
        dataset = await ensure_ohlcv_dataset(
            conn,
            payload.symbol,
            payload.timeframe,
            source="synthetic",
            created_by=await jobs_repo.owner(conn, ctx.job_id),
            metadata={"generator": "gbm", "seed": payload.seed},
        )
        measurement = dataset["ohlcv_measurement"]
        # A re-run (after a lost worker) starts clean instead of colliding with its own rows.
        await repo.delete_range(conn, measurement, start_ns, end_ns)
    await ctx.log("generating", bars=payload.bars, measurement=measurement)
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
            async with pool.acquire() as conn, conn.transaction():
                await repo.copy_bars(conn, measurement, bars)
            written += n
            await ctx.progress(written, payload.bars)
    except BaseException:
        # Cancelled or failed: take back what this run wrote, so no half series remains.
        async with pool.acquire() as conn:
            await repo.delete_range(conn, measurement, start_ns, end_ns)
            await repo.refresh_stats(conn, dataset["dataset_id"], measurement)
        raise
    async with pool.acquire() as conn:
        dataset = await repo.refresh_stats(conn, dataset["dataset_id"], measurement)
    await ctx.log("done", bars=written)
    return {
        "dataset_id": str(dataset["dataset_id"]),
        "dataset_slug": dataset["dataset_slug"],
        "measurement": measurement,
        "bars": written,
        "first_ts": dataset["ohlcv_first_ts"],
        "last_ts": dataset["ohlcv_last_ts"],
    }


async def check_synthetic(pool: Any, identity: Any, payload: SyntheticDatasetPayload) -> None:
    from hub.datasets.service import check_overwrite

    await check_overwrite(pool, identity, payload.symbol, payload.timeframe)


register(
    JobType(
        name="dataset.synthetic",
        payload=SyntheticDatasetPayload,
        handler="hub.datasets.jobs:generate_synthetic",
        check="hub.datasets.jobs:check_synthetic",
        description="Generate a reproducible OHLCV series (geometric Brownian motion from a seed)",
        max_tries=3,
    )
)
