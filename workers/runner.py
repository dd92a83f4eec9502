"""Running one job in a worker: claim, heartbeat, progress, cancel, retry, finish.

The claim is a single conditional UPDATE, so however many workers are offered a job, one runs
it. While the handler runs, a heartbeat keeps the row fresh; a job whose heartbeat stops (the
worker was killed) is re-run or failed by :meth:`JobService.reap` once the lease passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from arq.worker import Retry

from hub.domains import Resources
from hub.jobs.context import (
    TRANSIENT,
    ClaimLost,
    JobCancelled,
    JobContext,
    TransientJobError,
)
from hub.jobs.service import JobService

log = logging.getLogger("tradehub.worker")

HEARTBEAT_SECONDS = 5.0


@contextlib.asynccontextmanager
async def _heartbeat(service: JobService, job_id: str, attempt: int) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            with contextlib.suppress(*TRANSIENT):
                await service.heartbeat(job_id, attempt)

    task = asyncio.create_task(beat(), name=f"heartbeat-{job_id}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _interrupted(service: JobService, job_id: str, attempts: int, max_tries: int) -> None:
    if attempts < max_tries:
        await service.back_to_pending(
            job_id, f"attempt {attempts} interrupted (worker stopped); re-running", attempts
        )
        await service.enqueue(job_id, attempt=attempts + 1)
    else:
        await service.finish(
            job_id,
            "FAILED",
            error=f"interrupted on its last attempt ({attempts})",
            attempt=attempts,
        )


def _backoff(attempt: int) -> float:
    return float(min(2 ** (attempt - 1), 30))


async def run_job(resources: Resources, job_id: str, *, lease_seconds: float) -> str:
    """Run ``job_id`` if this worker wins the claim; returns what happened, for arq's log."""
    service = resources.jobs
    row = await service.claim(job_id, lease_seconds)
    if row is None:
        return "not claimed (already taken, finished or cancelled)"
    spec = resources.job_types.get(row["job_type"])
    if spec is None:
        await service.finish(job_id, "FAILED", error=f"unknown job type {row['job_type']!r}")
        return "failed: unknown job type"
    claim = int(row["attempts"])  # every write below holds this attempt's claim
    ctx = JobContext(job_id=job_id, attempt=claim, resources=resources)
    try:
        handler = spec.load_handler()
        payload = spec.payload.model_validate(row["payload"])
        async with _heartbeat(service, job_id, claim):
            result = await handler(ctx, payload)
    except ClaimLost:
        log.warning("job claimed by a newer attempt; this one stops", extra={"job_id": job_id})
        return "claim lost to a newer attempt"
    except JobCancelled:
        await asyncio.shield(
            service.finish(job_id, "CANCELLED", error="cancelled by request", attempt=claim)
        )
        return "cancelled"
    except (TransientJobError, *TRANSIENT) as exc:
        message = f"{type(exc).__name__}: {exc}"
        if row["attempts"] < spec.max_tries:
            await asyncio.shield(
                service.back_to_pending(
                    job_id, f"attempt {row['attempts']} failed, retrying: {message}", claim
                )
            )
            log.warning(
                "job failed transiently; retrying", extra={"job_id": job_id, "error": message}
            )
            raise Retry(defer=_backoff(row["attempts"])) from exc
        await asyncio.shield(
            service.finish(
                job_id,
                "FAILED",
                error=f"gave up after {row['attempts']} attempts: {message}",
                attempt=claim,
            )
        )
        return "failed"
    except asyncio.CancelledError:
        # A worker shutdown or arq's job timeout: hand the job back so another worker re-runs
        # it (the claim makes that safe), or fail it after its last try.
        await asyncio.shield(_interrupted(service, job_id, row["attempts"], spec.max_tries))
        raise
    except Exception as exc:
        log.exception("job failed", extra={"job_id": job_id})
        await asyncio.shield(
            service.finish(job_id, "FAILED", error=f"{type(exc).__name__}: {exc}", attempt=claim)
        )
        return "failed"
    await asyncio.shield(service.finish(job_id, "COMPLETED", result=result, attempt=claim))
    return "completed"
