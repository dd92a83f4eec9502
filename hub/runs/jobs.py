"""The ``runs.simulate`` job: a simulation of a walk-forward run, run by a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from hub.jobs.registry import JobType

if TYPE_CHECKING:
    import asyncpg

    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.runs.service import RunService


class SimulatePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    simulation_id: str


async def run_simulation(ctx: JobContext, payload: SimulatePayload) -> dict[str, Any]:
    runs: RunService = ctx.service("runs")
    return await runs.simulate(ctx, payload.simulation_id)


async def simulation_ended(resources: Resources, job_row: asyncpg.Record) -> None:
    runs: RunService = resources.service("runs")
    await runs.job_ended(job_row)


SIMULATE = JobType(
    name="runs.simulate",
    payload=SimulatePayload,
    handler="hub.runs.jobs:run_simulation",
    description="Simulate a walk-forward run: the threshold strategy on its bars and predictions",
    max_tries=3,
    on_ended=simulation_ended,
)
