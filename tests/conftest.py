"""Real services for every test: Postgres and Redis from the environment, or embedded ones.

``TRADEHUB_TEST_DATABASE_URL`` / ``TRADEHUB_TEST_REDIS_URL`` point at servers the run may use
(CI sets them); without them the run starts an embedded Postgres and Valkey. Either way the run
gets its own database (dropped at the end) and its own Redis key prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hub.app import create_app
from hub.auth import Role
from hub.db import connect, migrate
from hub.server import uvicorn_options
from hub.settings import Settings
from hub.users import service as users


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile (or load from numba's cache) the kernels a worker warms before it takes jobs,
    once, before the first test. On a fresh checkout that is a minute or more of compiling,
    which would otherwise fall inside the first test's bounded waits: its worker takes no job
    until warmed. With the cache filled it costs about a second."""
    from engine.backtest import warm_up
    from hub.research import warm_feature_kernels

    warm_up()
    warm_feature_kernels()


@dataclass(frozen=True)
class Services:
    admin_database_url: str  # a database we may create others from
    database_url: str  # this run's own database
    redis_url: str
    redis_prefix: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    from hub.embedded import EmbeddedPostgres, EmbeddedValkey

    started: list[Any] = []
    admin_url = os.environ.get("TRADEHUB_TEST_DATABASE_URL")
    redis_url = os.environ.get("TRADEHUB_TEST_REDIS_URL")
    root = tmp_path_factory.mktemp("services")
    if not admin_url:
        pg = EmbeddedPostgres(root / "postgres")
        pg.start()
        started.append(pg)
        admin_url = _with_database(pg.url, "postgres")
    if not redis_url:
        valkey = EmbeddedValkey(root / "valkey")
        valkey.start()
        started.append(valkey)
        redis_url = valkey.url
    run = secrets.token_hex(4)
    name = f"tradehub_test_{run}"

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'create database "{name}"')
        finally:
            await conn.close()
        conn = await connect(_with_database(admin_url, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()
        client = Redis.from_url(redis_url)
        try:
            async for key in client.scan_iter(match=f"test:{run}:*", count=1000):
                await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(create())
    try:
        yield Services(admin_url, _with_database(admin_url, name), redis_url, f"test:{run}:")
    finally:
        asyncio.run(drop())
        for server in reversed(started):
            server.stop()


@pytest.fixture(scope="session")
def settings(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=services.database_url,
        redis_url=services.redis_url,
        redis_prefix=services.redis_prefix,
        data_dir=tmp_path_factory.mktemp("data"),
        secret=SecretStr("test-secret-" + secrets.token_hex(16)),
        db_pool_max=20,
        domains=["tests.jobtypes", "tests.notes"],
        gc_tuning=False,
        # The whole suite shares one user set and one address (127.0.0.1): its caps are wide,
        # and the abuse tests run their own hub with the defaults.
        max_active_jobs_per_user=64,
        login_failures_per_address=10_000,
        # Request rates and backtest slots too (tests/test_ratelimits.py runs its own hubs).
        rate_limits=False,
    )


class LiveServer:
    """The real app under uvicorn, on a free port, in the test's event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings)
        # The options `tradehub serve` runs with: its protocols, deadlines and connection cap.
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, **uvicorn_options(settings)
        )
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def lifespan_state(self) -> Any:
        """The app's lifespan state (pool, bus, services), as routes see it on request.state."""
        from types import SimpleNamespace

        return SimpleNamespace(**self.server.lifespan.state)

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(30):
            while not self.server.started:
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                async with asyncio.timeout(15):
                    await self.task


@pytest.fixture(scope="session")
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    live = LiveServer(settings)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@dataclass(frozen=True)
class Account:
    user_id: str
    username: str
    token: str  # an API key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_account(
    settings: Settings, *, admin: bool = False, password: str | None = None
) -> Account:
    assert settings.database_url is not None
    conn = await connect(settings.database_url)
    try:
        name = f"{'admin' if admin else 'user'}-{secrets.token_hex(4)}"
        identity = await users.ensure_user(
            conn, name, role=Role.ADMIN if admin else Role.USER, password=password
        )
        token = await users.create_api_key(conn, identity, "test")
    finally:
        await conn.close()
    return Account(identity.user_id, name, token)


@pytest.fixture(scope="session")
async def admin(settings: Settings) -> Account:
    return await make_account(settings, admin=True)


@pytest.fixture(scope="session")
async def alice(settings: Settings) -> Account:
    return await make_account(settings)


@pytest.fixture(scope="session")
async def bob(settings: Settings) -> Account:
    return await make_account(settings)


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    from hub.db import create_pool

    assert settings.database_url is not None
    db_pool = await create_pool(settings.database_url, min_size=1, max_size=10)
    try:
        yield db_pool
    finally:
        await db_pool.close()


def operation(name: str) -> str:
    """A document from ``graphql/operations`` (the tests send only these)."""
    return (ROOT / "graphql" / "operations" / f"{name}.graphql").read_text()
