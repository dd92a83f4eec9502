"""The research job types: training a version, a walk-forward backtest, a chunk of a sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from hub.jobs.registry import JobType

if TYPE_CHECKING:
    import asyncpg

    from hub.domains import Resources
    from hub.jobs.context import JobContext


class TrainPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_id: str = Field(max_length=64)


class BacktestPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backtest_id: str = Field(max_length=64)


class SweepChunkPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: str = Field(max_length=64)
    first: int = Field(ge=0)
    last: int = Field(ge=0)


async def run_train(ctx: JobContext, payload: TrainPayload) -> dict[str, Any]:
    from hub.research import runner

    return await runner.train(ctx.service("research"), ctx, payload.version_id)


async def run_backtest(ctx: JobContext, payload: BacktestPayload) -> dict[str, Any]:
    from hub.research import runner

    return await runner.backtest(ctx.service("research"), ctx, payload.backtest_id)


async def run_sweep_chunk(ctx: JobContext, payload: SweepChunkPayload) -> dict[str, Any]:
    from hub.research import runner

    return await runner.sweep_chunk(
        ctx.service("research"), ctx, payload.sweep_id, payload.first, payload.last
    )


async def ended(resources: Resources, job_row: asyncpg.Record) -> None:
    from hub.research import runner

    await runner.job_ended(resources.service("research"), job_row)


TRAIN = JobType(
    name="research.train",
    payload=TrainPayload,
    handler="hub.research.jobs:run_train",
    description="Train a research model's new version (LightGBM) on a feature matrix",
    max_tries=2,
    on_ended=ended,
)
BACKTEST = JobType(
    name="research.backtest",
    payload=BacktestPayload,
    handler="hub.research.jobs:run_backtest",
    description="Walk-forward backtest of a research model: out-of-sample predictions, traded",
    max_tries=2,
    on_ended=ended,
)
SWEEP = JobType(
    name="research.sweep",
    payload=SweepChunkPayload,
    handler="hub.research.jobs:run_sweep_chunk",
    description="A chunk of a research sweep's configs, through the engine's sweep kernels",
    max_tries=3,
    on_ended=ended,
)
