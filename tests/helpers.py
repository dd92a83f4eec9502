"""Shared test helpers: a background arq worker and bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from arq.worker import Worker

from hub.settings import Settings
from workers.settings import build_worker

T = TypeVar("T")


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **overrides: Any) -> AsyncIterator[Worker]:
    worker = build_worker(settings, handle_signals=False, poll_delay=0.05, **overrides)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # close() gathers the job tasks the cancellation interrupted; they end cancelled.
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, pause: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            value = await check()
            if value:
                return value
            await asyncio.sleep(pause)


@contextlib.asynccontextmanager
async def gql_session(ws_url: str, token: str, **transport_options: Any) -> AsyncIterator[Any]:
    """A third-party GraphQL client (gql) over graphql-transport-ws, authenticated."""
    from gql import Client
    from gql.transport.websockets import WebsocketsTransport

    transport = WebsocketsTransport(
        url=f"{ws_url}/graphql",
        init_payload={"Authorization": f"Bearer {token}"},
        **transport_options,
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        yield session


async def graphql(
    http: Any, document: str, variables: dict[str, Any] | None = None, *, token: str
) -> dict[str, Any]:
    response = await http.post(
        "/graphql",
        json={"query": document, "variables": variables or {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def hub_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a ``python -m hub`` subprocess on the test run's services."""
    import os

    assert settings.database_url and settings.redis_url
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRADEHUB_")},
        "TRADEHUB_DATABASE_URL": settings.database_url,
        "TRADEHUB_REDIS_URL": settings.redis_url,
        "TRADEHUB_REDIS_PREFIX": settings.redis_prefix,
        "TRADEHUB_DATA_DIR": str(settings.data_dir),
        "TRADEHUB_SECRET": settings.jwt_secret,
        "TRADEHUB_DOMAINS": "tests.jobtypes,tests.notes",
        **extra,
    }


async def generate_dataset(
    base_url: str, admin: Any, symbol: str, bars: int, seed: int = 0, **extra: Any
) -> None:
    """A synthetic dataset made the way a client makes one (the GraphQL mutation, a worker
    running the job); returns once the job completed. A worker must be running."""
    from tests.conftest import operation

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        body = await graphql(
            http,
            operation("GenerateSyntheticDataset"),
            {"input": {"symbol": symbol, "bars": bars, "seed": seed, **extra}},
            token=admin.token,
        )
        job_id = body["data"]["generateSyntheticDataset"]["jobId"]

        async def generated() -> bool:
            got = (await http.get(f"/api/jobs/{job_id}", headers=admin.headers)).json()
            assert got["status"] not in ("FAILED", "CANCELLED"), got
            return bool(got["status"] == "COMPLETED")

        await eventually(generated, timeout=120)
