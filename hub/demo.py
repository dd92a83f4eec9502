"""``tradehub up --demo``: seed a synthetic BTC/USD 1h dataset through the normal job path, then
trade it live: a paper account for the admin, a live ``sma_crossover`` run on it, and a replay
of the dataset fast enough (ten hours of market time a second) that the run trades within
seconds of the dataset being ready."""

from __future__ import annotations

import asyncio
import logging

from hub.auth import Identity, Role
from hub.domains import open_resources
from hub.executions.model import LiveRequest
from hub.settings import Settings
from hub.users import service as users

log = logging.getLogger("tradehub.demo")

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
DEMO_ACCOUNT = "demo"
DEMO_RUN = {"strategy": "sma_crossover", "params": {"fast": 10, "slow": 30}}
REPLAY_SPEED = 36_000.0  # an hour bar every 0.1 s
WAIT_SECONDS = 600.0


async def _admin(resources: object) -> Identity:
    async with resources.pool.acquire() as conn:  # type: ignore[attr-defined]
        identity: Identity = await users.ensure_user(conn, "admin", role=Role.ADMIN)
    return identity


async def seed_demo(settings: Settings, database_url: str, redis_url: str) -> str:
    settings = settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
    async with open_resources(settings, "cli") as resources:
        admin = await _admin(resources)
        row = await resources.jobs.create(admin, "dataset.synthetic", DEMO_JOB)
        return str(row["job_id"])


async def trade_demo(settings: Settings, database_url: str, redis_url: str, job_id: str) -> str:
    """Once the dataset job completed: the admin's demo account, a live run on it, and the
    replay that feeds it. Returns a line describing what runs."""
    settings = settings.model_copy(update={"database_url": database_url, "redis_url": redis_url})
    async with open_resources(settings, "cli") as resources:
        admin = await _admin(resources)
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                job = await resources.jobs.get(admin, job_id)
                if job["status"] == "COMPLETED":
                    break
                if job["status"] in ("FAILED", "CANCELLED"):
                    return f"the demo dataset job {job_id} ended {job['status']}: no live demo"
                await asyncio.sleep(0.5)
        broker = resources.service("broker")
        executions = resources.service("executions")
        account = await broker.runner_account(admin, DEMO_ACCOUNT, None)
        run = await executions.start_live(
            admin,
            LiveRequest(
                strategy=DEMO_RUN["strategy"],  # type: ignore[arg-type]
                params=DEMO_RUN["params"],  # type: ignore[arg-type]
                symbol=DEMO_JOB["symbol"],  # type: ignore[arg-type]
                timeframe=DEMO_JOB["timeframe"],  # type: ignore[arg-type]
                account_id=account["account_id"],
            ),
        )
        async with asyncio.timeout(WAIT_SECONDS):  # the worker's host takes it within a beat
            while (await executions.get(admin, run["execution_id"]))["status"] == "created":
                await asyncio.sleep(0.2)
        dataset = await resources.service("datasets").find(DEMO_JOB["symbol"], "1h")
        await resources.service("marketdata").start_replay(
            admin, {"dataset_id": str(dataset["dataset_id"]), "speed": REPLAY_SPEED}
        )
        return (
            f"live run {run['execution_id']} ({DEMO_RUN['strategy']}) trading BTC/USD on paper "
            f"account {account['account_id']}, fed by a replay at {REPLAY_SPEED:,.0f}x"
        )
