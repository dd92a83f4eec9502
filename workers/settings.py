"""arq worker settings: the job runner, the reaper, and the resources they share.

Job types and their entry points are declared by the domains (``hub/<domain>/jobs.py``); this
module is what runs them: one arq function (``run_job``) claims a job row and calls its type's
handler through :func:`workers.runner.run_job`, and a cron job reaps jobs whose worker vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq import cron
from arq.connections import RedisSettings
from arq.worker import Worker, func

from hub.domains import Resources, load_domains, open_resources
from hub.keys import Keys
from hub.settings import Settings
from workers.runner import run_job

log = logging.getLogger("tradehub.worker")

JOB_TIMEOUT_SECONDS = 6 * 3600
# A RUNNING job whose heartbeat is older than this lost its worker.
LEASE_SECONDS = 60.0
# A PENDING job untouched for this long is enqueued again (its enqueue may have been lost).
PENDING_RESCUE_SECONDS = 120.0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    stack = contextlib.AsyncExitStack()
    ctx["exit_stack"] = stack
    resources: Resources = await stack.enter_async_context(open_resources(settings, "worker"))
    ctx["resources"] = resources
    log.info("worker ready", extra={"queue": resources.keys.queue})


async def shutdown(ctx: dict[str, Any]) -> None:
    stack: contextlib.AsyncExitStack | None = ctx.get("exit_stack")
    if stack is not None:
        await stack.aclose()


async def run_job_task(ctx: dict[str, Any], job_id: str) -> str:
    return await run_job(ctx["resources"], job_id, lease_seconds=LEASE_SECONDS)


async def reap_jobs(ctx: dict[str, Any]) -> dict[str, int]:
    resources: Resources = ctx["resources"]
    counts: dict[str, int] = await resources.jobs.reap(LEASE_SECONDS, PENDING_RESCUE_SECONDS)
    if any(counts.values()):
        log.warning("reaped jobs", extra=counts)
    return counts


def build_worker(
    settings: Settings,
    *,
    burst: bool = False,
    poll_delay: float = 0.05,
    handle_signals: bool = True,
    **overrides: Any,
) -> Worker:
    assert settings.redis_url is not None
    keys = Keys(settings.redis_prefix)
    functions = [
        func(
            run_job_task, name="run_job", max_tries=10, timeout=JOB_TIMEOUT_SECONDS, keep_result=0
        ),
        *(t for d in load_domains(settings.domains) if d.tasks for t in d.tasks(settings)),
    ]
    cron_jobs = [
        cron(reap_jobs, second={0, 15, 30, 45}, run_at_startup=True, keep_result=0, unique=True)
    ]
    return Worker(
        functions=functions,
        cron_jobs=cron_jobs,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=keys.queue,
        health_check_key=keys.worker_health,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"settings": settings, **overrides.pop("ctx", {})},
        burst=burst,
        poll_delay=poll_delay,
        handle_signals=handle_signals,
        keep_result=0,
        max_jobs=8,
        job_timeout=JOB_TIMEOUT_SECONDS,
        **overrides,
    )


def run_worker(settings: Settings) -> None:
    """Run a worker on uvloop when it is installed (``uvicorn[standard]`` brings it), as the
    hub runs: a worker's live runs spend a third of their time in the event loop's own code."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - stdlib asyncio works, only slower
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    build_worker(settings).run()
