"""Stage1's async CSV import (seed 000): the 202 and the job as the seed shows them, every
timestamp unit, a measurement extended or refused, bad bodies, 413, and a worker SIGKILLed
mid-import (no half table; the job re-runs and loads every row once)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.settings import Settings
from hub.timeseries import store
from tests.conftest import ROOT, Account, LiveServer, operation
from tests.helpers import eventually, graphql, hub_env, running_worker

T0 = 1_609_459_200  # 2021-01-01T00:00:00Z
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def uploads(settings: Settings) -> list[str]:
    folder = settings.data_dir / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def start_import(
    http: httpx.AsyncClient, who: Account, measurement: str, data: str, **extra: Any
) -> httpx.Response:
    body = {"measurement": measurement, "data": data, **extra}
    return await http.post("/api/questdb/import/async", json=body, headers=who.headers)


async def job_when_done(http: httpx.AsyncClient, who: Account, job_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job: dict[str, Any] = (await http.get(f"/api/jobs/{job_id}", headers=who.headers)).json()
        return job if job["status"] in TERMINAL else None

    return await eventually(done, timeout=120)


async def imported(
    http: httpx.AsyncClient, settings: Settings, who: Account, measurement: str, data: str
) -> dict[str, Any]:
    response = await start_import(http, who, measurement, data)
    assert response.status_code == 202, response.text
    async with running_worker(settings):
        return await job_when_done(http, who, response.json()["job_id"])


async def rows_of(pool: asyncpg.Pool, measurement: str) -> list[list[Any]]:
    records = await pool.fetch(
        f'select (extract(epoch from "timestamp") * 1000000)::int8 as us, * from ts."{measurement}" '
        'order by "timestamp"'
    )
    return [[r["us"], *list(r.values())[2:]] for r in records]


async def columns_of(pool: asyncpg.Pool, measurement: str) -> list[tuple[str, str]]:
    records = await pool.fetch(
        "select attname, format_type(atttypid, atttypmod) as type from pg_attribute "
        "where attrelid = $1::regclass and attnum > 0 and not attisdropped order by attnum",
        f'ts."{measurement}"',
    )
    return [(r["attname"], r["type"]) for r in records]


async def test_the_seed_example_imports_as_the_seed_shows(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    before = uploads(settings)
    data = "timestamp_unix,value1,value2\n1609459200,100,200\n1609459260,101,201"
    response = await start_import(client, alice, "csv_seed_table", data, filename="data.csv")
    assert response.status_code == 202, response.text
    accepted = response.json()
    job_id = accepted["job_id"]
    assert accepted == {
        "job_id": job_id,
        "status": "PENDING",
        "message": "Import job created. Poll /api/jobs/{job_id} for status.",
        "poll_url": f"/api/jobs/{job_id}",
    }
    [upload] = sorted(set(uploads(settings)) - set(before))  # written before the answer
    assert upload.startswith("import_") and upload.endswith(".csv")
    assert (settings.data_dir / "uploads" / upload).read_text() == data
    async with running_worker(settings):
        job = await job_when_done(client, alice, job_id)
    assert job["status"] == "COMPLETED", job
    assert job["job_type"] == "questdb_import"
    assert orjson.loads(job["payload"]) == {
        "measurement": "csv_seed_table",
        "file_path": str(settings.data_dir / "uploads" / upload),
        "filename": "data.csv",
        "rows": 2,
    }
    assert (job["progress"], job["total"], job["error"]) == (2, 2, None)
    result = orjson.loads(job["result"])
    assert result["success"] is True and result["message"] == "CSV imported successfully"
    assert result["rows"] == 2 and result["created"] is True and result["timestamp_unit"] == "s"
    assert uploads(settings) == before  # the file is removed at the end
    assert await rows_of(pool, "csv_seed_table") == [
        [T0 * 1_000_000, 100, 200],
        [(T0 + 60) * 1_000_000, 101, 201],
    ]
    assert await columns_of(pool, "csv_seed_table") == [
        ("timestamp", "timestamp with time zone"),
        ("value1", "bigint"),
        ("value2", "bigint"),
    ]


UNITS = {
    "seconds": (["1609459200", "1609459260"], [T0 * 10**6, (T0 + 60) * 10**6]),
    "milliseconds": (["1609459200123", "1609459260456"], [T0 * 10**6 + 123_000, (T0 + 60) * 10**6 + 456_000]),
    "microseconds": (["1609459200123456", "1609459200123457"], [T0 * 10**6 + 123_456, T0 * 10**6 + 123_457]),
    "nanoseconds": (["1609459200123456789", "1609459200123457999"], [T0 * 10**6 + 123_456, T0 * 10**6 + 123_457]),
    "fractional seconds": (["1609459200.25", "1609459200.5"], [T0 * 10**6 + 250_000, T0 * 10**6 + 500_000]),
    "fractional milliseconds": (["1609459200123.5", "1609459200124"], [T0 * 10**6 + 123_500, T0 * 10**6 + 124_000]),
    "ISO 8601 in UTC": (["2021-01-01T00:00:00Z", "2021-01-01T00:00:01.5Z"], [T0 * 10**6, T0 * 10**6 + 1_500_000]),
    "ISO 8601 without a zone": (["2021-01-01 00:00:00", "2021-01-01 00:01:00"], [T0 * 10**6, (T0 + 60) * 10**6]),
}  # fmt: skip


@pytest.mark.parametrize("column", ["timestamp_unix", "timestamp"])
@pytest.mark.parametrize("unit", list(UNITS))
async def test_each_timestamp_unit_is_detected(
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    alice: Account,
    unit: str,
    column: str,
) -> None:
    values, expected = UNITS[unit]
    measurement = f"csv_unit_{list(UNITS).index(unit)}_{column}"
    data = f"{column},price\n" + "".join(f"{v},{i + 0.5}\n" for i, v in enumerate(values))
    job = await imported(client, settings, alice, measurement, data)
    assert job["status"] == "COMPLETED", job
    assert await rows_of(pool, measurement) == [[us, i + 0.5] for i, us in enumerate(expected)]


async def test_a_byte_order_mark_and_blank_lines_are_no_rows(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    data = "\ufefftimestamp,v\r\n1609459200,1\r\n\r\n1609459260,2\r\n\r\n"
    job = await imported(client, settings, alice, "csv_bom", data)
    assert job["status"] == "COMPLETED", job
    assert (job["progress"], job["total"]) == (2, 2)  # the line count was only an estimate
    assert await rows_of(pool, "csv_bom") == [[T0 * 10**6, 1], [(T0 + 60) * 10**6, 2]]


async def test_a_measurement_is_extended_when_the_columns_agree(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    first = "timestamp,value1,name,ratio\n1609459200,1,a,0.5\n"
    assert (await imported(client, settings, alice, "csv_extended", first))["status"] == "COMPLETED"
    # value1 again (bigint), ratio as integers into its double column, name left out, value2 new.
    second = "timestamp,value1,ratio,value2\n1609459260,2,3,true\n"
    job = await imported(client, settings, alice, "csv_extended", second)
    assert job["status"] == "COMPLETED", job
    result = orjson.loads(job["result"])
    assert result["created"] is False and result["added_columns"] == ["value2"]
    assert await columns_of(pool, "csv_extended") == [
        ("timestamp", "timestamp with time zone"),
        ("value1", "bigint"),
        ("name", "text"),
        ("ratio", "double precision"),
        ("value2", "boolean"),
    ]
    assert await rows_of(pool, "csv_extended") == [
        [T0 * 10**6, 1, "a", 0.5, None],
        [(T0 + 60) * 10**6, 2, None, 3.0, True],
    ]


async def test_disagreeing_columns_fail_the_job_and_leave_the_measurement_as_it_was(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    first = "timestamp,value1\n1609459200,1\n1609459260,2\n"
    assert (await imported(client, settings, alice, "csv_refused", first))["status"] == "COMPLETED"
    before = (await columns_of(pool, "csv_refused"), await rows_of(pool, "csv_refused"))
    second = "timestamp,value1,value3\n1609459320,abc,1\n"
    job = await imported(client, settings, alice, "csv_refused", second)
    assert job["status"] == "FAILED"
    assert "value1 holds text values but ts.csv_refused.value1 is bigint" in job["error"], job
    assert (await columns_of(pool, "csv_refused"), await rows_of(pool, "csv_refused")) == before
    assert not any(name.endswith(".csv") for name in uploads(settings))


async def test_a_type_that_changes_after_the_first_block_is_read_whole(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    """pyarrow types a column by the first 4 MiB; a later 1.5 under integers, or a value under
    a column empty until then, starts the import over with the column widened."""
    n = 300_000
    lines = [f"{T0 + i},{i},{''}" for i in range(n)]
    lines[-1] = f"{T0 + n - 1},1.5,7"
    data = "timestamp,value,late\n" + "\n".join(lines) + "\n"
    assert len(data) > 5 << 20
    job = await imported(client, settings, alice, "csv_widened", data)
    assert job["status"] == "COMPLETED", job
    assert (job["progress"], job["total"]) == (n, n)
    assert await columns_of(pool, "csv_widened") == [
        ("timestamp", "timestamp with time zone"),
        ("value", "double precision"),
        ("late", "bigint"),
    ]
    stats = await pool.fetchrow(
        'select count(*), sum(value), count(late), max(late) from ts."csv_widened"'
    )
    assert tuple(stats) == (n, sum(range(n - 1)) + 1.5, 1, 7)


BAD = [
    ("no measurement", {"data": "timestamp,v\n1,2\n"}, "Missing 'measurement' parameter"),
    ("no data", {"measurement": "csv_bad"}, "Missing 'data' parameter"),
    ("null data", {"measurement": "csv_bad", "data": None}, "Missing 'data' parameter"),
    ("data not a string", {"measurement": "csv_bad", "data": 5}, "data must be a string"),
    ("a bad name", {"measurement": "Bad-Name", "data": "timestamp,v\n1,2\n"}, "measurement must"),
    ("a name with SQL", {"measurement": 'x"; drop table users; --', "data": "timestamp\n1\n"}, "measurement must"),
    ("no time column", {"measurement": "csv_bad", "data": "time,v\n1,2\n"}, "timestamp_unix or timestamp"),
    ("both time columns", {"measurement": "csv_bad", "data": "timestamp_unix,timestamp\n1,2\n"}, "keep one"),
    ("a header only", {"measurement": "csv_bad", "data": "timestamp,v\n"}, "no rows"),
    ("a repeated column", {"measurement": "csv_bad", "data": "timestamp,v,v\n1,2,3\n"}, "twice"),
    ("another domain's table", {"measurement": "live_bars", "data": "timestamp,v\n1,2\n"}, "another part of the hub"),
    ("a long filename", {"measurement": "csv_bad", "data": "timestamp\n1\n", "filename": "x" * 300}, "filename"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "says"), [(b, s) for _, b, s in BAD], ids=[i for i, _, _ in BAD])
async def test_a_bad_import_is_a_400_that_leaves_nothing(
    client: httpx.AsyncClient, settings: Settings, alice: Account, body: dict[str, Any], says: str
) -> None:
    before = uploads(settings)
    jobs = (await client.get("/api/jobs?job_type=questdb_import", headers=alice.headers)).json()
    response = await client.post("/api/questdb/import/async", json=body, headers=alice.headers)
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"] and says in response.json()["error"]
    assert uploads(settings) == before
    after = (await client.get("/api/jobs?job_type=questdb_import", headers=alice.headers)).json()
    assert after["count"] == jobs["count"]


async def test_malformed_bodies_are_400s(client: httpx.AsyncClient, alice: Account) -> None:
    for raw in (b"", b"[]", b'{"measurement": "x", "data": "timestamp\\n1', b'{"data": "a\\q"}'):
        response = await client.post(
            "/api/questdb/import/async", content=raw, headers=alice.headers
        )
        assert response.status_code == 400, raw
        assert list(response.json()) == ["error"]


async def test_only_its_owner_or_an_admin_imports_into_a_measurement(
    client: httpx.AsyncClient, settings: Settings, alice: Account, bob: Account, admin: Account
) -> None:
    data = "timestamp,v\n1609459200,1\n"
    assert (await imported(client, settings, alice, "csv_owned", data))["status"] == "COMPLETED"
    refused = await start_import(client, bob, "csv_owned", data)
    assert refused.status_code == 403
    assert refused.json() == {"error": "the measurement csv_owned belongs to another user"}
    assert (await imported(client, settings, admin, "csv_owned", data))["status"] == "COMPLETED"


@pytest.fixture(scope="module")
async def small_hub(settings: Settings) -> AsyncIterator[LiveServer]:
    own = settings.model_copy(
        update={"import_max_bytes": 64 << 10, "redis_prefix": f"{settings.redis_prefix}csv:"}
    )
    live = LiveServer(own)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


async def test_a_body_over_the_limit_is_a_413_read_no_further(
    small_hub: LiveServer, settings: Settings, alice: Account
) -> None:
    data = "timestamp,v\n" + "".join(f"{T0 + i},{i}\n" for i in range(10_000))
    body = orjson.dumps({"measurement": "csv_too_big", "data": data})
    assert len(body) > 64 << 10
    before = uploads(settings)
    async with httpx.AsyncClient(base_url=small_hub.url, timeout=30) as http:
        declared = await http.post("/api/questdb/import/async", content=body, headers=alice.headers)
        assert declared.status_code == 413
        assert declared.json() == {
            "error": f"request body is {len(body)} bytes, more than the import limit of 65536 "
            "(TRADEHUB_IMPORT_MAX_BYTES)"
        }

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        streamed = await http.post(
            "/api/questdb/import/async", content=chunked(), headers=alice.headers
        )
        assert streamed.status_code == 413
        assert "more than the import limit of 65536" in streamed.json()["error"]
        small = await start_import(http, alice, "csv_small_enough", "timestamp,v\n1,2\n")
        assert small.status_code == 202
        assert len(set(uploads(settings)) - set(before)) == 1  # the accepted one's file only
        cancelled = await graphql(
            http, operation("CancelJob"), {"id": small.json()["job_id"]}, token=alice.token
        )
        assert cancelled["data"]["cancelJob"]["status"] == "CANCELLED"
    assert uploads(settings) == before  # a cancelled import leaves no file


async def test_a_starting_hub_sweeps_orphaned_uploads(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, alice: Account
) -> None:
    folder = settings.data_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    pending = await start_import(client, alice, "csv_swept", "timestamp,v\n1,2\n")
    job_id = pending.json()["job_id"]
    job = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
    waiting = Path(orjson.loads(job["payload"])["file_path"])
    old_orphan = folder / "import_1_0badf00d.csv"
    young_orphan = folder / "import_2_0badf00d.csv"
    other = folder / "notes.txt"
    for path in (old_orphan, young_orphan, other):
        path.write_text("timestamp\n1\n")
    two_days_ago = time.time() - 2 * 86_400
    for path in (old_orphan, waiting, other):
        os.utime(path, (two_days_ago, two_days_ago))
    assert await server.lifespan_state.timeseries.sweep_uploads() == 1
    assert not old_orphan.exists()
    assert young_orphan.exists() and waiting.exists() and other.exists()
    cancelled = await graphql(client, operation("CancelJob"), {"id": job_id}, token=alice.token)
    assert cancelled["data"]["cancelJob"]["status"] == "CANCELLED"
    assert not waiting.exists()
    young_orphan.unlink()
    other.unlink()


async def test_graphql_import_csv_returns_the_job(
    client: httpx.AsyncClient, settings: Settings, pool: asyncpg.Pool, alice: Account
) -> None:
    started = await graphql(
        client,
        operation("ImportCsv"),
        {
            "measurement": "csv_graphql",
            "data": "timestamp,v\n1609459200,1.5\n",
            "filename": "g.csv",
        },
        token=alice.token,
    )
    job = started["data"]["importCsv"]
    assert job["jobType"] == "questdb_import" and job["status"] == "PENDING"
    assert job["payload"]["measurement"] == "csv_graphql" and job["payload"]["filename"] == "g.csv"
    async with running_worker(settings):
        done = await job_when_done(client, alice, job["jobId"])
    assert done["status"] == "COMPLETED"
    assert await rows_of(pool, "csv_graphql") == [[T0 * 10**6, 1.5]]
    refused = await graphql(
        client,
        operation("ImportCsv"),
        {"measurement": "csv_graphql", "data": "x\n1\n"},
        token=alice.token,
    )
    assert refused["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER"


async def test_a_worker_killed_mid_import_leaves_no_half_table_and_the_job_reruns(
    server: LiveServer,
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    alice: Account,
) -> None:
    """The import's one transaction is held open at its end (its record of the import waits on
    a lock this test holds), after every block was copied; the worker is SIGKILLed there."""
    n = 400_000
    data = "timestamp,seq,price\n" + "".join(f"{T0 + i},{i},{i * 0.5}\n" for i in range(n))
    assert len(data) > 2 * (4 << 20)  # several blocks, each copied and reported
    measurement = "csv_killed"
    worker = subprocess.Popen(
        [sys.executable, "-m", "hub", "worker"],
        env=hub_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    blocker = await pool.acquire()
    try:
        holding = blocker.transaction()
        await holding.start()
        await blocker.execute("lock table timeseries_imports in exclusive mode")
        response = await start_import(client, alice, measurement, data)
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        created = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
        upload = Path(orjson.loads(created["payload"])["file_path"])

        async def waiting_on_us() -> bool:
            blocked = await pool.fetchval(
                "select count(*) from pg_stat_activity where $1 = any(pg_blocking_pids(pid))",
                blocker.get_server_pid(),
            )
            return bool(blocked)

        await eventually(waiting_on_us, timeout=120)
        job = (await client.get(f"/api/jobs/{job_id}", headers=alice.headers)).json()
        assert job["status"] == "RUNNING" and job["progress"] == n  # every block copied...
        worker.send_signal(signal.SIGKILL)  # ...and the worker dies before its commit
        assert worker.wait(timeout=30) == -signal.SIGKILL
        await holding.rollback()
    finally:
        await pool.release(blocker)
        if worker.poll() is None:
            worker.kill()

    async def rolled_back() -> bool:  # its backend noticed the dead client and rolled back
        left = await pool.fetchval(
            "select count(*) from pg_stat_activity where backend_xid is not null "
            "and query ilike '%timeseries_imports%' and pid <> pg_backend_pid()"
        )
        return bool(left == 0)

    await eventually(rolled_back)
    assert await pool.fetchval(f"select to_regclass('ts.{measurement}')") is None
    assert (
        await pool.fetchval(
            "select count(*) from timeseries_measurements where measurement = $1", measurement
        )
        == 0
    )
    assert upload.exists()  # kept for the re-run

    async def lease_expired() -> bool:
        stale = await pool.fetchval(
            "select heartbeat_at < now() - interval '1 second' from jobs where job_id = $1", job_id
        )
        return bool(stale)

    await eventually(lease_expired)
    counts = await server.lifespan_state.jobs.reap(1.0, 3600.0)
    assert counts["requeued"] >= 1
    async with running_worker(settings):
        job = await job_when_done(client, alice, job_id)
    assert job["status"] == "COMPLETED", job
    final = await pool.fetchrow("select attempts from jobs where job_id = $1", job_id)
    assert final["attempts"] == 2
    stats = await pool.fetchrow(
        f'select count(*), count(distinct seq), min(seq), max(seq) from ts."{measurement}"'
    )
    assert tuple(stats) == (n, n, 0, n - 1)  # every row once
    assert not upload.exists()


# -- the store (hub/timeseries/store.py), as line-protocol ingest will use it ----------------


async def test_the_store_encodes_as_postgres_itself_copies(pool: asyncpg.Pool) -> None:
    """Every column type, NULLs and text: the payload the store sends equals what Postgres
    writes for ``COPY ... TO STDOUT (FORMAT binary)`` of the rows it stored."""
    ts = np.array(
        ["2021-01-01T00:00:00.123456789", "1969-12-31T23:59:59.5", "2262-01-01"], "M8[ns]"
    )
    columns: dict[str, Any] = {
        "timestamp": ts,
        "count": np.ma.MaskedArray([1, -(2**63), 2**63 - 1], mask=[False, True, False]),
        "price": [1.5, None, float("inf")],
        "ok": [True, False, None],
        "venue": ["a", None, 'naïve ☃ "quoted", comma'],
        "day": [date(2021, 1, 1), None, date(1999, 12, 31)],
        "seen": [datetime(2021, 1, 1, tzinfo=UTC), None, datetime(1, 1, 1, tzinfo=UTC)],
        "empty": [None, None, None],  # no value at all: not written, not created
    }
    async with pool.acquire() as conn, conn.transaction():
        target = await store.prepare(conn, "store_kinds", columns, owner=None)
        rows, payload = target.encode(columns)
        assert await target.copy(conn, (rows, payload)) == 3
        sink = bytearray()

        async def keep(data: bytes) -> None:
            sink.extend(data)

        listed = ", ".join(f'"{c}"' for c in target.columns)
        await conn.copy_from_query(
            f'select {listed} from ts."store_kinds"', output=keep, format="binary"
        )
        stored = await conn.fetch('select * from ts."store_kinds"')
    assert bytes(sink) == payload.tobytes()
    # Rows of one width (no NULL, no text) take the other path: the same bytes all the same.
    n = np.arange(1000, dtype=np.int64)
    fixed = {"timestamp": n * 10**9, "a": n / 3, "b": n - 500, "c": n % 2 == 0}
    async with pool.acquire() as conn, conn.transaction():
        target_fixed = await store.prepare(conn, "store_fixed", fixed)
        encoded = target_fixed.encode(fixed)
        await target_fixed.copy(conn, encoded)
        sink.clear()
        await conn.copy_from_query(
            'select "timestamp", a, b, c from ts."store_fixed"', output=keep, format="binary"
        )
    assert bytes(sink) == encoded[1].tobytes()
    assert target.columns == ("timestamp", "count", "price", "ok", "venue", "day", "seen")
    assert [r["venue"] for r in stored] == ["a", None, 'naïve ☃ "quoted", comma']
    assert stored[0]["timestamp"] == datetime(2021, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert stored[1]["timestamp"] == datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    assert [r["count"] for r in stored] == [1, None, 2**63 - 1]


async def test_the_store_refuses_before_writing(pool: asyncpg.Pool) -> None:
    good = {"timestamp": [10**18, 2 * 10**18], "v": [1, 2]}
    async with pool.acquire() as conn, conn.transaction():
        written = await store.write(conn, "store_refusals", good)
    assert (written.rows, written.created, written.added) == (2, True, ())
    refusals: list[tuple[str, dict[str, list[Any]], str]] = [
        ("store_refusals", {"timestamp": [10**18], "v": ["text"]}, "v holds text values"),
        ("store_refusals", {"ts": [10**18], "v": [1]}, "no timestamp column 'timestamp'"),
        ("store_refusals", {"timestamp": [None], "v": [1]}, "has a NULL value"),
        ("store_refusals", {"timestamp": [1.5], "v": [1]}, "int64 nanoseconds or times"),
        ("store_refusals", {"timestamp": [1, 2], "v": [1]}, "differ in length"),
        ("store_refusals", {"timestamp": [1], "x\x00": [1]}, "column name"),
        ("store_refusals", {"timestamp": [1], "t": ["a\x00b"]}, "NUL"),  # after adding t
        ("live_bars", {"timestamp": [1], "v": [1]}, "another part of the hub"),
        ("Bad", {"timestamp": [1]}, "measurement must"),
    ]
    for measurement, columns, says in refusals:
        with pytest.raises(store.MeasurementError, match=re.escape(says)):
            async with pool.acquire() as conn, conn.transaction():
                await store.write(conn, measurement, columns)
    assert await columns_of(pool, "store_refusals") == [
        ("timestamp", "timestamp with time zone"),
        ("v", "bigint"),
    ]
    assert await pool.fetchval('select count(*) from ts."store_refusals"') == 2


async def test_concurrent_writers_create_and_extend_a_measurement_once(pool: asyncpg.Pool) -> None:
    async def write(i: int) -> store.Written:
        async with pool.acquire() as conn, conn.transaction():
            return await store.write(
                conn, "store_race", {"timestamp": [i], "v": [i], f"c{i % 3}": [float(i)]}
            )

    results = await asyncio.gather(*(write(i) for i in range(9)))
    assert sum(r.created for r in results) == 1
    # c0 came with the creating write or was added once; c1 and c2 were added once each.
    added = sorted(c for r in results for c in r.added)
    assert added in (["c0", "c1", "c2"], ["c1", "c2"]) and len(set(added)) == len(added)
    assert [n for n, _ in await columns_of(pool, "store_race")][:2] == ["timestamp", "v"]
    assert {n for n, _ in await columns_of(pool, "store_race")} == {
        "timestamp",
        "v",
        "c0",
        "c1",
        "c2",
    }
    assert await pool.fetchval('select count(*) from ts."store_race"') == 9


_JSON_TEXT = st.text(st.sampled_from(list('ab,"\\\n\r\té☃😀/')), max_size=60)


@settings(max_examples=300, deadline=None)
@given(data=_JSON_TEXT, cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=12))
def test_the_body_reader_decodes_data_cut_anywhere(data: str, cuts: list[int]) -> None:
    """``data`` comes out as JSON meant it whatever the chunks: quotes, backslash runs of any
    length before a quote, escapes and multi-byte characters cut by a chunk's end."""
    from hub.timeseries.upload import read_import_body

    body = orjson.dumps({"measurement": "m", "data": data, "filename": 'a"\\b.csv'})
    pieces, at = [], 0
    for size in cuts:
        pieces.append(body[at : at + size])
        at += size
    pieces.append(body[at:])

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    written = bytearray()
    read = asyncio.run(read_import_body(chunks(), written.extend, limit=1 << 20))
    assert written.decode() == data.removeprefix("\ufeff")
    assert read.values == {"measurement": "m", "filename": 'a"\\b.csv'}
    assert read.lines == data.count("\n")
