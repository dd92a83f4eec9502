"""``tradehub up --demo``: seed a synthetic BTC/USD 1h dataset through the normal job path."""

from __future__ import annotations

from hub.auth import Role
from hub.domains import open_resources
from hub.settings import Settings
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
    settings = settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
    async with open_resources(settings, "cli") as resources:
        async with resources.pool.acquire() as conn:
            admin = await users.ensure_user(conn, "admin", role=Role.ADMIN)
        row = await resources.jobs.create(admin, "dataset.synthetic", DEMO_JOB)
        return str(row["job_id"])
