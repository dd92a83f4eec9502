"""Job types used by the tests: a domain of job types only, loaded through TRADEHUB_DOMAINS as a
user's own would be."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel

from hub.domains import Domain
from hub.jobs.context import JobContext, TransientJobError
from hub.jobs.registry import JobType


class FlakyPayload(BaseModel):
    fail_times: int


async def flaky(ctx: JobContext, payload: FlakyPayload) -> dict[str, Any]:
    """Fails transiently on its first ``fail_times`` attempts."""
    if ctx.attempt <= payload.fail_times:
        raise TransientJobError(f"attempt {ctx.attempt} hit a transient fault")
    return {"succeeded_on_attempt": ctx.attempt}


class StepsPayload(BaseModel):
    steps: int
    pause: float = 0.05


async def steps(ctx: JobContext, payload: StepsPayload) -> dict[str, Any]:
    """Counts to ``steps`` with a progress point (and a log line) at each."""
    for done in range(1, payload.steps + 1):
        await asyncio.sleep(payload.pause)
        await ctx.log(f"step {done}", step=done)
        await ctx.progress(done, payload.steps)
    return {"steps": payload.steps, "attempt": ctx.attempt}


class BrokenPayload(BaseModel):
    message: str


async def broken(ctx: JobContext, payload: BrokenPayload) -> dict[str, Any]:
    raise RuntimeError(payload.message)


domain = Domain(
    name="testjobs",
    jobs=(
        JobType("test.flaky", FlakyPayload, "tests.jobtypes:flaky", max_tries=3),
        JobType("test.steps", StepsPayload, "tests.jobtypes:steps", max_tries=3),
        JobType("test.broken", BrokenPayload, "tests.jobtypes:broken", max_tries=3),
    ),
)
