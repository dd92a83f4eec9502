"""A hub and a worker as separate processes on a database of their own, for the benchmarks that
measure the hub from outside: created, migrated and seeded with users before, dropped after."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hub.auth import Role
from hub.db import connect, migrate
from hub.users import service as users


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningHub:
    port: int
    database_url: str
    admin_token: str
    tokens: list[str] = field(default_factory=list)  # one API key per plain user

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def running_hub(
    users_count: int = 0, admin: bool = True, env: Mapping[str, str] | None = None
) -> AsyncIterator[RunningHub]:
    """``tradehub serve`` and ``tradehub worker`` on a fresh database, ready to answer; the
    admin database and Redis come from TRADEHUB_TEST_DATABASE_URL / TRADEHUB_TEST_REDIS_URL.
    ``env`` sets more settings for both (``{"TRADEHUB_IMPORT_MAX_BYTES": ...}``)."""
    admin_url = os.environ.get(
        "TRADEHUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    redis_url = os.environ.get("TRADEHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    name = f"tradehub_bench_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'create database "{name}"')
    await conn.close()
    database_url = admin_url.rpartition("/")[0] + "/" + name
    procs: Sequence[subprocess.Popen[bytes]] = ()
    try:
        conn = await connect(database_url)
        await migrate(conn)
        owner = await users.ensure_user(conn, "bench", role=Role.ADMIN if admin else None)
        hub = RunningHub(
            free_port(), database_url, await users.create_api_key(conn, owner, "bench")
        )
        for i in range(users_count):
            identity = await users.ensure_user(conn, f"bench-{i}", role=Role.USER)
            hub.tokens.append(await users.create_api_key(conn, identity, "bench"))
        await conn.close()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRADEHUB_")},
            "TRADEHUB_DATABASE_URL": database_url,
            "TRADEHUB_REDIS_URL": redis_url,
            "TRADEHUB_REDIS_PREFIX": f"bench:{secrets.token_hex(3)}:",
            "TRADEHUB_DATA_DIR": tempfile.mkdtemp(prefix="tradehub-bench-"),
            "TRADEHUB_SECRET": secrets.token_hex(32),
            "TRADEHUB_PORT": str(hub.port),
            "TRADEHUB_LOG_LEVEL": "warning",
            **(env or {}),
        }
        procs = [
            subprocess.Popen([sys.executable, "-m", "hub", command], env=env, cwd=ROOT)
            for command in ("serve", "worker")
        ]
        async with httpx.AsyncClient(base_url=hub.base, timeout=10) as http:
            async with asyncio.timeout(120):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
        yield hub
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'drop database if exists "{name}" with (force)')
        await conn.close()


async def synthetic_dataset(http: httpx.AsyncClient, symbol: str, bars: int) -> float:
    """Generate ``bars`` hourly bars of ``symbol`` through the hub (a job in the worker);
    returns the seconds it took."""
    started = time.perf_counter()
    job = (
        await http.post(
            "/graphql",
            json={
                "query": "mutation ($i: GenerateSyntheticDatasetInput!) "
                "{ generateSyntheticDataset(input: $i) { jobId } }",
                "variables": {"i": {"symbol": symbol, "bars": bars, "seed": 1}},
            },
        )
    ).json()
    job_id = job["data"]["generateSyntheticDataset"]["jobId"]
    async with asyncio.timeout(600):
        while (status := (await http.get(f"/api/jobs/{job_id}")).json()["status"]) not in (
            "COMPLETED",
            "FAILED",
        ):
            await asyncio.sleep(0.2)
    assert status == "COMPLETED", status
    return time.perf_counter() - started
