"""Dependency checks behind /readyz and /api/health."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from hub import db

CHECK_TIMEOUT = 2.0


@dataclass(frozen=True)
class HealthReport:
    postgres: bool
    redis: bool

    @property
    def status(self) -> str:
        # Postgres is the truth: without it nothing works. Without Redis, reads still do.
        if not self.postgres:
            return "unhealthy"
        return "healthy" if self.redis else "degraded"

    @property
    def checks(self) -> dict[str, str]:
        return {
            "postgres": "healthy" if self.postgres else "unhealthy",
            "redis": "healthy" if self.redis else "unhealthy",
        }


async def _postgres_ok(pool: asyncpg.Pool) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return await db.ping(pool)
    except (OSError, asyncpg.PostgresError, TimeoutError, asyncpg.InterfaceError):
        return False


async def _redis_ok(redis: Redis) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            return bool(await redis.ping())
    except Exception:  # noqa: BLE001 - any failure to answer means "not ready"
        return False


async def check(pool: asyncpg.Pool, redis: Redis) -> HealthReport:
    postgres, redis_ok = await asyncio.gather(_postgres_ok(pool), _redis_ok(redis))
    return HealthReport(postgres=postgres, redis=redis_ok)
