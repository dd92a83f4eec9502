"""Jobs end to end: GraphQL, Stage1 REST, a real arq worker, cancel, retries, lost workers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any

import asyncpg
import httpx
import pytest
from gql import GraphQLRequest, gql

from hub.jobs import repository as jobs_repo
from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, operation
from tests.helpers import eventually, gql_session, graphql, hub_env, running_worker


async def create_job(http: httpx.AsyncClient, token: str, **input: Any) -> str:
    body = await graphql(http, operation("GenerateSyntheticDataset"), {"input": input}, token=token)
    assert "errors" not in body, body
    return str(body["data"]["generateSyntheticDataset"]["jobId"])


async def follow(server: LiveServer, token: str, job_id: str) -> list[dict[str, Any]]:
    """Every state jobProgress delivers, through a third-party graphql-transport-ws client."""
    updates = []
    async with gql_session(server.ws_url, token) as session:
        request = GraphQLRequest(gql(operation("JobProgress")), variable_values={"jobId": job_id})
        async with asyncio.timeout(120):
            async for item in session.subscribe(request):
                updates.append(item["jobProgress"])
    return updates


async def test_synthetic_dataset_job_streams_progress_and_reads_back(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    async with running_worker(settings):
        job_id = await create_job(
            client,
            alice.token,
            symbol="TST/USD",
            timeframe="1h",
            bars=250_000,
            seed=11,
            start="2021-01-01T00:00:00Z",
        )
        updates = await follow(server, alice.token, job_id)
    statuses = [u["job"]["status"] for u in updates]
    assert statuses[-1] == "COMPLETED"
    assert "RUNNING" in statuses
    sequences = [u["sequence"] for u in updates]
    assert sequences == sorted(set(sequences))
    progress = [u["job"]["progress"] for u in updates]
    assert progress == sorted(progress) and progress[-1] == 250_000

    job = (await graphql(client, operation("Job"), {"id": job_id}, token=alice.token))["data"][
        "job"
    ]
    assert (
        job["status"] == "COMPLETED" and job["result"]["bars"] == 250_000 and job["attempts"] == 1
    )
    candles = (
        await graphql(
            client,
            operation("Candles"),
            {"symbol": "TST/USD", "timeframe": "1h", "limit": 5},
            token=alice.token,
        )
    )["data"]["candles"]
    assert [c["ts"] for c in candles][:2] == [
        "2021-01-01T00:00:00+00:00",
        "2021-01-01T01:00:00+00:00",
    ]
    for bar in candles:
        assert (
            bar["low"]
            <= min(bar["open"], bar["close"])
            <= max(bar["open"], bar["close"])
            <= bar["high"]
        )
    assert all(candles[i]["open"] == candles[i - 1]["close"] for i in range(1, 5))


async def test_same_seed_gives_the_same_series(
    client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    async with running_worker(settings):
        first = await create_job(client, alice.token, symbol="SEED/A", bars=1000, seed=5)
        second = await create_job(client, alice.token, symbol="SEED/B", bars=1000, seed=5)
        for job_id in (first, second):
            await eventually(lambda job_id=job_id: _status_is(client, alice, job_id, "COMPLETED"))
    a, b = [
        (
            await graphql(
                client,
                operation("Candles"),
                {"symbol": s, "timeframe": "1h", "limit": 1000},
                token=alice.token,
            )
        )["data"]["candles"]
        for s in ("SEED/A", "SEED/B")
    ]
    assert len(a) == 1000 and a == b


async def _status_is(client: httpx.AsyncClient, who: Account, job_id: str, status: str) -> bool:
    response = await client.get(f"/api/jobs/{job_id}", headers=who.headers)
    return bool(response.json().get("status") == status)


async def test_stage1_job_routes_exactly_as_the_seed(
    client: httpx.AsyncClient, settings: Settings, alice: Account, bob: Account, admin: Account
) -> None:
    async with running_worker(settings):
        job_id = await create_job(client, alice.token, symbol="STG/USD", bars=500, seed=1)
        await eventually(lambda: _status_is(client, alice, job_id, "COMPLETED"))
    one = (await client.get(f"/api/jobs/{job_id}", headers={"X-Stage1-Token": alice.token})).json()
    assert set(one) == {
        "job_id",
        "job_type",
        "status",
        "payload",
        "progress",
        "total",
        "result",
        "error",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
    }
    assert isinstance(one["payload"], str) and '"symbol":"STG/USD"' in one["payload"]
    assert isinstance(one["result"], str) and one["error"] is None
    assert len(one["created_at"]) == 19 and "+" not in one["created_at"]
    listed = (
        await client.get(
            "/api/jobs", params={"job_type": "dataset.synthetic", "limit": 2}, headers=alice.headers
        )
    ).json()
    assert listed["count"] == len(listed["jobs"]) <= 2
    assert all(j["job_type"] == "dataset.synthetic" for j in listed["jobs"])
    forbidden = await client.get(f"/api/jobs/{job_id}", headers=bob.headers)
    assert forbidden.status_code == 403 and forbidden.json() == {
        "error": f"job {job_id} belongs to another user"
    }
    assert (await client.get(f"/api/jobs/{job_id}", headers=admin.headers)).status_code == 200
    assert job_id not in {
        j["job_id"] for j in (await client.get("/api/jobs", headers=bob.headers)).json()["jobs"]
    }
    missing = await client.get(
        "/api/jobs/00000000-0000-0000-0000-000000000000", headers=alice.headers
    )
    assert missing.status_code == 404 and "error" in missing.json()
    assert (await client.get("/api/jobs/not-a-uuid", headers=alice.headers)).status_code == 404
    bad = await client.get("/api/jobs", params={"limit": "many"}, headers=alice.headers)
    assert bad.status_code == 400 and bad.json() == {
        "error": "limit must be an integer, got 'many'"
    }
    assert (await client.get("/api/jobs")).status_code == 401


async def test_bad_input_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    before = await pool.fetchval("select count(*) from jobs where owner_id = $1", alice.user_id)
    for bad in (
        {"symbol": "X", "bars": 0},
        {"symbol": "X", "timeframe": "7 parsecs"},
        {"symbol": "bad symbol!"},
    ):
        body = await graphql(
            client, operation("GenerateSyntheticDataset"), {"input": bad}, token=alice.token
        )
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"
    after = await pool.fetchval("select count(*) from jobs where owner_id = $1", alice.user_id)
    assert after == before


async def test_cancel_stops_a_running_job_and_keeps_no_half_series(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, alice: Account, bob: Account
) -> None:
    async with running_worker(settings):
        # 5,000,000 minutes (an hour each would end past 2262, which the hub refuses).
        job_id = await create_job(
            client, alice.token, symbol="CXL/USD", bars=5_000_000, seed=3, timeframe="1m"
        )
        async with gql_session(server.ws_url, alice.token) as session:
            request = GraphQLRequest(
                gql(operation("JobProgress")), variable_values={"jobId": job_id}
            )
            seen = []
            async with asyncio.timeout(120):
                async for item in session.subscribe(request):
                    job = item["jobProgress"]["job"]
                    seen.append(job["status"])
                    if (
                        job["status"] == "RUNNING"
                        and job["progress"] > 0
                        and "CANCEL_SENT" not in seen
                    ):
                        other = await graphql(
                            client, operation("CancelJob"), {"id": job_id}, token=bob.token
                        )
                        assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
                        mine = await graphql(
                            client, operation("CancelJob"), {"id": job_id}, token=alice.token
                        )
                        assert mine["data"]["cancelJob"]["cancelRequested"] is True
                        seen.append("CANCEL_SENT")
    assert seen[-1] == "CANCELLED"
    job = (await graphql(client, operation("Job"), {"id": job_id}, token=alice.token))["data"][
        "job"
    ]
    assert job["status"] == "CANCELLED" and 0 < job["progress"] < 5_000_000
    candles = await graphql(
        client,
        operation("Candles"),
        {"symbol": "CXL/USD", "timeframe": "1m", "limit": 10},
        token=alice.token,
    )
    assert candles["data"] is None or candles["data"]["candles"] == []


async def test_cancel_a_pending_job_ends_it_at_once(
    client: httpx.AsyncClient, alice: Account
) -> None:
    job_id = await create_job(client, alice.token, symbol="PND/USD", bars=10)  # no worker running
    cancelled = await graphql(client, operation("CancelJob"), {"id": job_id}, token=alice.token)
    assert cancelled["data"]["cancelJob"]["status"] == "CANCELLED"


async def test_a_job_runs_once_however_many_workers(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    row = await jobs_repo.insert(pool, alice.user_id, "test.steps", {"steps": 1}, 1)
    claims = await asyncio.gather(
        *(jobs_repo.claim(pool, str(row["job_id"]), 60) for _ in range(10))
    )
    assert sum(c is not None for c in claims) == 1
    async with running_worker(settings), running_worker(settings), running_worker(settings):
        ids = [
            await _create(client, alice, "test.steps", {"steps": 3, "pause": 0.01})
            for _ in range(6)
        ]
        for job_id in ids:
            await eventually(lambda job_id=job_id: _status_is(client, alice, job_id, "COMPLETED"))
    attempts = await pool.fetch("select attempts from jobs where job_id = any($1::uuid[])", ids)
    assert [r["attempts"] for r in attempts] == [1] * 6


async def _create(
    client: httpx.AsyncClient, who: Account, job_type: str, payload: dict[str, Any]
) -> str:
    """Create a job through the job service, as a route would (test job types have no route)."""
    from hub.auth import Identity, Role

    row = await _STATE["state"].jobs.create(
        Identity(who.user_id, who.username, Role.USER), job_type, payload
    )
    return str(row["job_id"])


_STATE: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _capture_state(server: LiveServer) -> None:
    _STATE["state"] = server.lifespan_state


async def test_transient_failures_retry_with_backoff(
    client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    async with running_worker(settings):
        job_id = await _create(client, alice, "test.flaky", {"fail_times": 1})
        await eventually(lambda: _status_is(client, alice, job_id, "COMPLETED"), timeout=60)
        gives_up = await _create(client, alice, "test.flaky", {"fail_times": 5})
        await eventually(lambda: _status_is(client, alice, gives_up, "FAILED"), timeout=60)
    done = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
    assert '"succeeded_on_attempt":2' in done["result"]
    failed = (await client.get(f"/api/jobs/{gives_up}", headers=alice.headers)).json()
    assert failed["error"].startswith("gave up after 3 attempts")


async def test_a_failing_job_is_failed_with_its_reason(
    client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    async with running_worker(settings):
        job_id = await _create(client, alice, "test.broken", {"message": "the model exploded"})
        await eventually(lambda: _status_is(client, alice, job_id, "FAILED"))
    failed = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
    assert failed["error"] == "RuntimeError: the model exploded"


async def test_a_killed_worker_leaves_the_job_rerun_never_running_forever(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    assert settings.database_url and settings.redis_url
    env = hub_env(settings)
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        job_id = await _create(client, alice, "test.steps", {"steps": 40, "pause": 0.05})

        async def running_with_progress() -> bool:
            row = await jobs_repo.get(pool, job_id)
            return bool(row and row["status"] == "RUNNING" and row["progress"] >= 2)

        await eventually(running_with_progress, timeout=60)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    row = await jobs_repo.get(pool, job_id)
    assert row is not None and row["status"] == "RUNNING"  # nobody is left to say otherwise...

    # ...until the lease passes: the reaper hands it to another worker, which re-runs it.
    async def lease_expired() -> bool:
        stale = await pool.fetchval(
            "select heartbeat_at < now() - interval '1 second' from jobs where job_id = $1", job_id
        )
        return bool(stale)

    await eventually(lease_expired)
    counts = await _STATE["state"].jobs.reap(1.0, 3600.0)
    assert counts["requeued"] >= 1
    requeued = await jobs_repo.get(pool, job_id)
    assert requeued is not None and requeued["status"] == "PENDING"
    assert "worker lost" in requeued["error"]
    async with running_worker(settings):
        await eventually(lambda: _status_is(client, alice, job_id, "COMPLETED"), timeout=60)
    final = await jobs_repo.get(pool, job_id)
    assert final is not None and final["attempts"] == 2 and final["result"]["attempt"] == 2


async def test_datasets_differing_in_punctuation_stay_apart_and_only_their_owner_regenerates(
    client: httpx.AsyncClient, settings: Settings, alice: Account, bob: Account
) -> None:
    async with running_worker(settings):
        first = await create_job(client, alice.token, symbol="PUNC/USD", bars=100, seed=1)
        second = await create_job(client, alice.token, symbol="PUNC-USD", bars=50, seed=2)
        for job_id in (first, second):
            await eventually(lambda job_id=job_id: _status_is(client, alice, job_id, "COMPLETED"))
    slash, dash = [
        (
            await graphql(
                client,
                operation("Candles"),
                {"symbol": s, "timeframe": "1h", "limit": 1000},
                token=alice.token,
            )
        )["data"]["candles"]
        for s in ("PUNC/USD", "PUNC-USD")
    ]
    assert len(slash) == 100 and len(dash) == 50
    refused = await graphql(
        client,
        operation("GenerateSyntheticDataset"),
        {"input": {"symbol": "PUNC/USD", "bars": 10}},
        token=bob.token,
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
