"""The ``execution.backtest`` job type: its payload, its entry point, and its end hook."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hub.jobs.registry import JobType

if TYPE_CHECKING:
    import asyncpg

    from hub.domains import Resources
    from hub.executions.service import ExecutionService
    from hub.jobs.context import JobContext


class BacktestPayload(BaseModel):
    task_id: int
    execution_id: int | None = None


async def run_backtest_job(ctx: JobContext, payload: BacktestPayload) -> dict[str, Any]:
    if payload.execution_id is None:
        raise ValueError("the job's payload names no execution")
    executions: ExecutionService = ctx.service("executions")
    return await executions.run_backtest(ctx, payload.execution_id)


async def execution_job_ended(resources: Resources, job_row: asyncpg.Record) -> None:
    executions: ExecutionService = resources.service("executions")
    await executions.job_ended(job_row)


BACKTEST = JobType(
    name="execution.backtest",
    payload=BacktestPayload,
    handler="hub.executions.jobs:run_backtest_job",
    description="Run a backtest execution: the engine in chunks, persisted and streamed",
    max_tries=3,
    on_ended=execution_job_ended,
)
