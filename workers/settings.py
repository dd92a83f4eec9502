"""arq worker settings: the job runner, the reaper, and the resources they share."""

from __future__ import annotations

import logging
from typing import Any

from arq import cron
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, func
from redis.asyncio import Redis

from hub import db
from hub.bus import Bus
from hub.jobs.registry import load_modules
from hub.jobs.runner import run_job
from hub.jobs.service import JobService
from hub.keys import Keys
from hub.settings import Settings
from hub.topics import TopicRegistry

log = logging.getLogger("tradehub.worker")

JOB_TIMEOUT_SECONDS = 6 * 3600
# A RUNNING job whose heartbeat is older than this lost its worker.
LEASE_SECONDS = 60.0
# A PENDING job untouched for this long is enqueued again (its enqueue may have been lost).
PENDING_RESCUE_SECONDS = 120.0


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    assert settings.database_url and settings.redis_url
    load_modules(settings.job_modules)
    keys = Keys(settings.redis_prefix)
    pool = await db.create_pool(
        settings.database_url, min_size=1, max_size=max(4, settings.db_pool_max // 2)
    )
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    arq_pool: ArqRedis = ctx["redis"]
    # Workers only publish: no reader, no subscribers.
    bus = Bus(redis, settings.redis_url, keys, TopicRegistry())
    from hub.executions.jobs import BarsCache

    ctx.update(
        pool=pool,
        app_redis=redis,
        bus=bus,
        jobs=JobService(pool, bus, arq_pool, keys),
        keys=keys,
        bars_cache=BarsCache(),
    )
    warm = ctx.get("warm_up")
    if warm is not None:
        await warm(ctx)
    log.info("worker ready", extra={"queue": keys.queue})


async def warm_engine(ctx: dict[str, Any]) -> None:
    """Load (or compile, on a fresh machine) every backtest kernel now, not on the first job."""
    import asyncio

    from engine.backtest import warm_up

    seconds = await asyncio.to_thread(warm_up)
    log.info("engine kernels ready", extra={"seconds": round(seconds, 2)})


async def shutdown(ctx: dict[str, Any]) -> None:
    if "app_redis" in ctx:
        await ctx["app_redis"].aclose()
    if "pool" in ctx:
        await ctx["pool"].close()


async def run_job_task(ctx: dict[str, Any], job_id: str) -> str:
    extras = {
        "settings": ctx["settings"],
        "bus": ctx["bus"],
        "redis": ctx["app_redis"],
        "bars_cache": ctx["bars_cache"],
    }
    return await run_job(
        ctx["jobs"], job_id, attempt=ctx["job_try"], lease_seconds=LEASE_SECONDS, extras=extras
    )


async def reap_jobs(ctx: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = await ctx["jobs"].reap(LEASE_SECONDS, PENDING_RESCUE_SECONDS)
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
        func(run_job_task, name="run_job", max_tries=10, timeout=JOB_TIMEOUT_SECONDS, keep_result=0)
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
        ctx={"settings": settings, "warm_up": warm_engine, **overrides.pop("ctx", {})},
        burst=burst,
        poll_delay=poll_delay,
        handle_signals=handle_signals,
        keep_result=0,
        max_jobs=8,
        job_timeout=JOB_TIMEOUT_SECONDS,
        **overrides,
    )


def run_worker(settings: Settings) -> None:
    build_worker(settings).run()
