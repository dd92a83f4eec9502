"""``tradehub up --demo``: seed a synthetic BTC/USD 1h dataset through the normal job path."""

from __future__ import annotations

from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis

from hub import db
from hub.auth import Role
from hub.bus import Bus
from hub.jobs.service import JobService
from hub.keys import Keys
from hub.settings import Settings
from hub.topics import TopicRegistry
from hub.users import service as users

DEMO_JOB = {
    "symbol": "BTC/USD",
    "timeframe": "1h",
    "bars": 50_000,
    "seed": 42,
    "start": "2020-01-01T00:00:00Z",
    "initial_price": 7200.0,
    "drift": 0.3,
    "volatility": 0.7,
}


async def seed_demo(settings: Settings, database_url: str, redis_url: str) -> str:
    keys = Keys(settings.redis_prefix)
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(redis_url)
    arq = ArqRedis(
        connection_pool=ConnectionPool.from_url(redis_url), default_queue_name=keys.queue
    )
    try:
        async with pool.acquire() as conn:
            admin = await users.ensure_user(conn, "admin", role=Role.ADMIN)
        service = JobService(pool, Bus(redis, redis_url, keys, TopicRegistry()), arq, keys)
        row = await service.create(admin, "dataset.synthetic", DEMO_JOB)
        return str(row["job_id"])
    finally:
        await arq.aclose()
        await redis.aclose()
        await pool.close()
