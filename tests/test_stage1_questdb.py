"""Stage1's QuestDB endpoints (seed 000) over the ``ts`` schema: every field as the seed shows
it, each refusal of the read-only SQL one by one (and nothing changed after), and an export of
a million rows streamed in memory that does not grow with them."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from hub.settings import Settings
from hub.timeseries import store
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql

T0_US = 1_609_459_200_000_000  # 2021-01-01T00:00:00Z, the seed's first_ts
SEED = "qdb_btc_1h_ohlcv"
BIG = "qdb_big"
BIG_ROWS = 1_000_000
SQL_TIMEOUT = 1.0
MAX_ROWS = 1000


@pytest.fixture(scope="module")
async def hub(settings: Settings) -> AsyncIterator[LiveServer]:
    """A hub of our own: a short statement timeout and a small row cap to run into."""
    own = settings.model_copy(
        update={
            "sql_timeout": SQL_TIMEOUT,
            "sql_max_rows": MAX_ROWS,
            "redis_prefix": f"{settings.redis_prefix}qdb:",
        }
    )
    live = LiveServer(own)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def http(hub: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
async def measurements(pool: asyncpg.Pool, alice: Account) -> None:
    """The seed's btc_1h_ohlcv (two hourly bars) and a million-row one, written by the store."""
    hours = np.arange(2, dtype=np.int64) * 3_600_000_000_000
    bars = {
        "timestamp": T0_US * 1000 + hours,
        "open": np.array([29000.0, 29400.0]),
        "high": np.array([29500.0, 29600.0]),
        "low": np.array([28900.0, 29300.0]),
        "close": np.array([29400.0, 29550.5]),
        "volume": np.array([1000.0, 1200.0]),
    }
    n = np.arange(BIG_ROWS, dtype=np.int64)
    big = {
        "timestamp": T0_US * 1000 + n * 60_000_000_000,
        "price": 100.0 + (n % 1000) / 8,
        "size": n % 7,
    }
    async with pool.acquire() as conn, conn.transaction():
        await store.write(conn, SEED, bars, owner=alice.user_id)
        await store.write(conn, BIG, big, owner=alice.user_id)


async def query(http: httpx.AsyncClient, who: Account, sql: str) -> httpx.Response:
    return await http.post("/api/questdb/query", json={"sql": sql}, headers=who.headers)


async def test_query_answers_as_the_seed_shows(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    sql = f"SELECT * FROM {SEED} LIMIT 10"
    response = await query(http, alice, sql)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "query": sql,
        "columns": ["timestamp", "open", "high", "low", "close", "volume"],
        "dataset": [
            [T0_US, 29000, 29500, 28900, 29400, 1000],
            [T0_US + 3_600_000_000, 29400, 29600, 29300, 29550.5, 1200],
        ],
        "count": 2,
    }
    # Stage1's own header works too, and values of every kind come back as JSON.
    typed = await http.post(
        "/api/questdb/query",
        json={
            "sql": "select 1 as i, 2.5::numeric as n, true as b, 'x' as s, null as z, "
            "date '2021-01-02' as d, timestamp '2021-01-01 00:00:01' as t;"
        },
        headers={"X-Stage1-Token": alice.token},
    )
    assert typed.status_code == 200, typed.text
    assert typed.json()["query"].endswith("as t")  # the trailing semicolon is not part of it
    assert typed.json()["dataset"] == [[1, 2.5, True, "x", None, "2021-01-02", T0_US + 1_000_000]]


async def test_every_route_needs_a_caller(http: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/api/questdb/query"),
        ("POST", "/api/questdb/export"),
        ("GET", "/api/questdb/measurements"),
        ("GET", f"/api/questdb/measurement/{SEED}"),
        ("POST", "/api/questdb/import"),
        ("POST", "/api/questdb/import/async"),
    ]:
        response = await http.request(method, path, json={"sql": "select 1"})
        assert response.status_code == 401, (path, response.text)
        assert list(response.json()) == ["error"]


async def test_export_streams_the_seed_csv(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    response = await http.post(
        "/api/questdb/export",
        json={"sql": f"SELECT * FROM {SEED} LIMIT 10"},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == 'attachment; filename="export.csv"'
    assert response.text == (
        "timestamp,open,high,low,close,volume\n"
        f"{T0_US},29000,29500,28900,29400,1000\n"
        f"{T0_US + 3_600_000_000},29400,29600,29300,29550.5,1200\n"
    )
    # Names that need quoting, a value with a comma, NULLs, repeated names, no rows.
    odd = await http.post(
        "/api/questdb/export",
        json={"sql": "select 'a,b' as \"x,y\", null::int as n, 1 as n union all select 'c', 2, 3"},
        headers=alice.headers,
    )
    assert odd.text == '"x,y",n,n\n"a,b",,1\nc,2,3\n'
    empty = await http.post(
        "/api/questdb/export",
        json={"sql": f"select timestamp from {SEED} where false"},
        headers=alice.headers,
    )
    assert empty.text == "timestamp\n"


async def test_exported_times_are_exact_microseconds(
    http: httpx.AsyncClient, alice: Account
) -> None:
    """The export turns times into epoch microseconds by a float8 path where it is exact
    (1900-2040) and by numeric elsewhere: every one equals Postgres's exact numeric answer,
    at the edges of the float path, of 2^51 microseconds and of the years 1 and 9999, and at
    200,000 places with every kind of microsecond digits in between and beyond."""
    edges = [0, -1, 1, 2**51 - 1, 2**51, -(2**51), -(2**51) + 1]
    for bound in (-2_208_988_800_000_000, 2_208_988_800_000_000):  # 1900-01-01, 2040-01-01
        edges += [bound + d for d in (-86_400_000_001, -1, 0, 1, 86_400_000_001)]
    edges += [-62_135_596_800_000_000, 253_402_300_799_999_999]  # years 1 and 9999
    values = ", ".join(f"({x}::int8)" for x in edges)
    spread = "((g::numeric * 6364136223846793005) % {span})::int8 + {low}"
    sql = f"""
        with v(x) as (
            values {values}
            union all select {spread.format(span=4_417_977_600_000_000, low=-2_208_988_800_000_000)}
                from generate_series(1, 150000) g
            union all select {spread.format(span=315_537_897_599_999_999, low=-62_135_596_800_000_000)}
                from generate_series(1, 50000) g
        ), t(t) as (
            select timestamptz 'epoch' + (x / 1000000) * interval '1 second'
                + (x % 1000000) * interval '1 microsecond' from v
        )
        select t, (extract(epoch from t) * 1000000)::int8 as exact,
               t at time zone 'UTC' as naive,
               (extract(epoch from t at time zone 'UTC') * 1000000)::int8 as naive_exact
        from t
    """  # fmt: skip
    response = await http.post("/api/questdb/export", json={"sql": sql}, headers=alice.headers)
    assert response.status_code == 200, response.text
    header, *lines = response.text.splitlines()
    assert header == "t,exact,naive,naive_exact"
    assert len(lines) == len(edges) + 200_000
    wrong = [line for line in lines if (f := line.split(","))[0] != f[1] or f[2] != f[3]]
    assert wrong == []
    assert {int(line.split(",")[0]) for line in lines[: len(edges)]} == set(edges)


async def test_queries_may_return_types_the_hub_has_not_met(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    """Arrays, ranges and multiranges come back, as JSON (a range as Postgres writes it, times
    in epoch microseconds) and as CSV: learning a new type's layout must not need set_config,
    which the reader role may not call. Each type appears here first on its connection."""
    cases = [
        (f"select array_agg(close order by timestamp) as closes from {SEED}", [[29400, 29550.5]]),
        ("select int4range(1, 5) as r", ["[1,5)"]),
        ("select array[date '2021-01-02'] as d", [["2021-01-02"]]),
        (
            f"select tstzrange(min(timestamp), max(timestamp), '[]') as span from {SEED}",
            [f"[{T0_US},{T0_US + 3_600_000_000}]"],
        ),
        ("select int8multirange(int8range(1, 2), int8range(5, null)) as m", [["[1,2)", "[5,)"]]),
        ("select 'empty'::numrange as e", ["empty"]),
    ]
    for sql, row in cases:
        answered = await query(http, alice, sql)
        assert answered.status_code == 200, (sql, answered.text)
        if row is not None:
            assert answered.json()["dataset"] == [row], sql
        exported = await http.post("/api/questdb/export", json={"sql": sql}, headers=alice.headers)
        assert exported.status_code == 200, (sql, exported.text)
        assert len(exported.text.splitlines()) == 2, sql


async def test_measurements_and_their_metadata(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    listed = await http.get("/api/questdb/measurements", headers=alice.headers)
    assert listed.status_code == 200
    body = listed.json()
    names = [m["name"] for m in body["measurements"]]
    assert {SEED, BIG, "live_bars", "ticks"} <= set(names)
    assert body["count"] == len(names) and names == sorted(names)
    assert all(list(m) == ["name"] for m in body["measurements"])
    only = await http.get("/api/questdb/measurements?prefix=qdb_b", headers=alice.headers)
    assert only.json() == {"measurements": [{"name": BIG}, {"name": SEED}], "count": 2}
    none = await http.get("/api/questdb/measurements?prefix=q%25", headers=alice.headers)
    assert none.json() == {"measurements": [], "count": 0}  # % is a character, not a pattern

    meta = await http.get(f"/api/questdb/measurement/{SEED}", headers=alice.headers)
    assert meta.status_code == 200, meta.text
    assert meta.json() == {
        "name": SEED,
        "row_count": 2,
        "first_ts": T0_US,
        "last_ts": T0_US + 3_600_000_000,
    }
    big = (await http.get(f"/api/questdb/measurement/{BIG}", headers=alice.headers)).json()
    assert big["row_count"] == BIG_ROWS
    assert big["last_ts"] == T0_US + (BIG_ROWS - 1) * 60_000_000
    # A table of another domain, with its own time column: ts.live_bars (empty here or not).
    bars = (await http.get("/api/questdb/measurement/live_bars", headers=alice.headers)).json()
    assert set(bars) == {"name", "row_count", "first_ts", "last_ts"}
    missing = await http.get("/api/questdb/measurement/no_such_table", headers=alice.headers)
    assert missing.status_code == 404
    assert missing.json() == {"error": "no measurement 'no_such_table'"}
    users = await http.get("/api/questdb/measurement/users", headers=alice.headers)
    assert users.status_code == 404  # public.users is no measurement


async def test_direct_import_is_not_implemented(http: httpx.AsyncClient, alice: Account) -> None:
    response = await http.post("/api/questdb/import", headers=alice.headers)
    assert response.status_code == 501
    assert response.json() == {
        "error": "Direct import is not implemented: use POST /api/questdb/import/async"
    }


REFUSED = [
    ("multiple statements", f"select 1; drop table {SEED}", "one statement"),
    ("a trailing drop", f"select * from {SEED}; drop table {SEED};", "one statement"),
    ("drop", f"drop table {SEED}", "only a query"),
    ("delete", f"delete from {SEED}", "only a query"),
    ("insert", f"insert into {SEED} (timestamp) values (now())", "only a query"),
    ("update", f"update {SEED} set open = 0", "only a query"),
    ("create", "create table ts.evil (x int)", "only a query"),
    ("a writing CTE", f"with d as (delete from {SEED} returning *) select * from d", ""),
    ("public.users", "select * from public.users", "permission denied"),
    ("public.api_keys", "select key_hash from public.api_keys", ""),
    ("public.jobs", "table public.jobs", "permission denied"),
    ("users on the path", "select * from users", "does not exist"),
    ("a catalog table", "select relname from pg_catalog.pg_class", "outside the ts schema"),
    ("a catalog view", "select * from pg_stat_activity", "outside the ts schema"),
    ("pg_authid", "select rolpassword from pg_authid", ""),
    ("pg_read_file", "select pg_read_file('/etc/passwd')", "permission denied"),
    ("pg_ls_dir", "select * from pg_ls_dir('.')", "permission denied"),
    ("lo_import", "select lo_import('/etc/passwd')", "permission denied"),
    ("copy to stdout", f"copy {SEED} to stdout", "only a query"),
    ("copy to program", "copy (select 1) to program 'touch /tmp/tradehub-pwned'", "only a query"),
    ("set role", "set role postgres", "only a query"),
    ("reset role", "reset role", "only a query"),
    ("set session authorization", "set session authorization postgres", "only a query"),
    ("set_config role", "select set_config('role', 'postgres', true)", "permission denied"),
    ("set_config timeout", "select set_config('statement_timeout', '0', false)", "permission"),
    (
        "role set inside dynamic SQL",
        "select query_to_xml('select set_config(''role'', ''postgres'', true)', true, false, '')",
        "permission denied",
    ),
    (
        "users through dynamic SQL",
        "select query_to_xml('select * from public.users', true, false, '')",
        "permission denied",
    ),
    ("dblink", "select * from dblink('dbname=postgres', 'select 1') as t(x int)", ""),
    ("a parameter", "select $1::int", "parameters"),
    ("a transaction", "begin", "only a query"),
    ("vacuum", f"vacuum {SEED}", "only a query"),
    ("notify", "notify tradehub, 'x'", "only a query"),
    ("a long sleep", "select pg_sleep(30)", "statement timeout"),
    ("too many rows", f"select * from {BIG}", "more than 1,000 rows"),
    (
        "a huge cross join",
        f"select * from {BIG} a cross join {BIG} b cross join {BIG} c",
        "more than 1,000 rows",
    ),
    (
        "a huge generated join",
        "select count(*) from generate_series(1, 100000000) a, generate_series(1, 100000000) b",
        "statement timeout",
    ),
    ("no columns", "select", "no columns"),
    ("a syntax error", "selec 1", "syntax error"),
    ("empty", "  ;  ", "Missing 'sql'"),
]


async def _state(pool: asyncpg.Pool) -> Any:
    """What a refused statement must leave as it was."""
    return await pool.fetchrow(
        f"""select (select count(*) from users) as users, (select count(*) from api_keys) as keys,
                   (select count(*) from ts.{SEED}) as bars, (select sum(open) from ts.{SEED}) as open,
                   to_regclass('ts.evil') is null as no_evil,
                   (select count(*) from pg_locks where locktype = 'advisory') as advisory"""
    )


@pytest.mark.parametrize(
    ("sql", "says"), [(s, w) for _, s, w in REFUSED], ids=[i for i, _, _ in REFUSED]
)
async def test_a_refused_statement_is_a_400_and_changes_nothing(
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    measurements: None,
    alice: Account,
    sql: str,
    says: str,
) -> None:
    before = await _state(pool)
    response = await query(http, alice, sql)
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert says in body["error"]
    assert await _state(pool) == before
    # Whatever the statement tried, the next one runs as the reader role, read only.
    after = await query(
        http,
        alice,
        "select current_user, current_setting('transaction_read_only'), "
        "current_setting('temp_file_limit'), current_setting('search_path')",
    )
    assert after.json()["dataset"] == [["tradehub_ts_reader", "on", "1GB", "ts"]]


async def test_refusals_come_before_an_export_starts(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    for sql in ("select * from public.users", f"select 1; drop table {SEED}", "reset role"):
        response = await http.post("/api/questdb/export", json={"sql": sql}, headers=alice.headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/json"
        assert list(response.json()) == ["error"]
    for body in ({}, {"sql": 1}, {"query": "select 1"}):
        response = await http.post("/api/questdb/query", json=body, headers=alice.headers)
        assert response.status_code == 400, body
    assert (await query(http, alice, "")).json() == {
        "error": "Missing 'sql' parameter: the query is empty"
    }


async def test_a_session_advisory_lock_does_not_outlive_its_query(
    http: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    response = await query(http, alice, "select pg_advisory_lock(424242)")
    assert response.status_code == 200
    held = await pool.fetchval(
        "select count(*) from pg_locks where locktype = 'advisory' and objid = 424242"
    )
    assert held == 0


async def test_the_reader_role_reads_ts_and_nothing_else(
    pool: asyncpg.Pool, measurements: None
) -> None:
    role = await pool.fetchrow(
        "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
        "from pg_roles where rolname = 'tradehub_ts_reader'"
    )
    assert role is not None and not any(role.values())
    reader = "'tradehub_ts_reader'"
    checks = await pool.fetchrow(
        f"""select has_schema_privilege({reader}, 'ts', 'usage') as ts_usage,
                   has_schema_privilege({reader}, 'ts', 'create') as ts_create,
                   has_table_privilege({reader}, 'ts.{SEED}', 'select') as seed_select,
                   has_table_privilege({reader}, 'ts.{SEED}', 'insert') as seed_insert,
                   has_table_privilege({reader}, 'ts.live_bars', 'select') as bars_select,
                   has_table_privilege({reader}, 'public.users', 'select') as users,
                   has_table_privilege({reader}, 'public.api_keys', 'select') as keys,
                   has_table_privilege({reader}, 'public.jobs', 'select') as jobs,
                   has_table_privilege({reader}, 'public.timeseries_measurements', 'select') as reg,
                   has_function_privilege({reader},
                       'pg_catalog.set_config(text, text, boolean)', 'execute') as set_config"""
    )
    assert dict(checks) == {
        "ts_usage": True,
        "ts_create": False,
        "seed_select": True,
        "seed_insert": False,
        "bars_select": True,
        "users": False,
        "keys": False,
        "jobs": False,
        "reg": False,
        "set_config": False,
    }
    # A table created later in ts, by the hub's role, is readable through default privileges.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("create table ts.qdb_later (x int)")
        later = await conn.fetchval(
            f"select has_table_privilege({reader}, 'ts.qdb_later', 'select')"
        )
        await conn.execute("drop table ts.qdb_later")
    assert later is True


async def _export_peak(
    http: httpx.AsyncClient, who: Account, sql: str
) -> tuple[int, int, bytes, int]:
    """Stream an export; the bytes, the lines, the first 200 bytes, and the peak of memory
    allocated meanwhile (tracemalloc: the hub and this client share the process)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        size = lines = 0
        first = b""
        async with http.stream(
            "POST", "/api/questdb/export", json={"sql": sql}, headers=who.headers
        ) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_raw():
                if len(first) < 200:
                    first += chunk[: 200 - len(first)]
                size += len(chunk)
                lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, lines, first, peak


async def test_an_export_of_a_million_rows_streams_in_constant_memory(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    sql = f"select * from {BIG} order by timestamp"
    small_size, small_lines, _, small_peak = await _export_peak(http, alice, f"{sql} limit 100000")
    size, lines, first, peak = await _export_peak(http, alice, sql)
    assert small_lines == 100_001 and lines == BIG_ROWS + 1
    assert first.startswith(f"timestamp,price,size\n{T0_US},100,0\n".encode())
    assert size > 9 * small_size > 20_000_000
    # Ten times the rows, about the same memory: a few chunks held at a time, whatever the size.
    assert peak < small_peak + 2_000_000, (small_peak, peak)
    assert peak < size / 8, (peak, size)


async def test_a_client_gone_mid_export_gives_its_connection_back(
    http: httpx.AsyncClient,
    pool: asyncpg.Pool,
    measurements: None,
    alice: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with http.stream(
        "POST", "/api/questdb/export", json={"sql": f"select * from {BIG}"}, headers=alice.headers
    ) as response:
        assert response.status_code == 200
        async for _ in response.aiter_raw():
            break  # the first chunk, then the client goes away

    async def released() -> bool:
        copying = await pool.fetchval(
            "select count(*) from pg_stat_activity where query like 'COPY (select%' "
            "and state <> 'idle' and pid <> pg_backend_pid()"
        )
        return bool(copying == 0)

    await eventually(released)
    after = await query(http, alice, f"select count(*) from {SEED}")
    assert after.json()["dataset"] == [[2]]
    # Rolled back by the export itself, not by the pool finding a transaction still open.
    assert not [r for r in caplog.records if "active transaction" in r.getMessage()]


async def test_graphql_measurements_sql_and_their_refusals(
    http: httpx.AsyncClient, measurements: None, alice: Account
) -> None:
    listed = await graphql(http, operation("Measurements"), {"prefix": "qdb_b"}, token=alice.token)
    assert listed["data"]["measurements"] == [{"name": BIG}, {"name": SEED}]
    meta = await graphql(http, operation("Measurement"), {"name": SEED}, token=alice.token)
    assert meta["data"]["measurement"] == {
        "name": SEED,
        "rowCount": 2.0,
        "firstTs": "2021-01-01T00:00:00+00:00",
        "lastTs": "2021-01-01T01:00:00+00:00",
    }
    answered = await graphql(
        http, operation("Sql"), {"query": f"select timestamp, close from {SEED}"}, token=alice.token
    )
    assert answered["data"]["sql"] == {
        "query": f"select timestamp, close from {SEED}",
        "columns": ["timestamp", "close"],
        "rows": [[T0_US, 29400.0], [T0_US + 3_600_000_000, 29550.5]],
        "count": 2,
    }
    for sql in ("select * from public.users", "reset role", f"select 1; drop table {SEED}"):
        refused = await graphql(http, operation("Sql"), {"query": sql}, token=alice.token)
        assert refused["data"] is None
        assert refused["errors"][0]["extensions"]["code"] == "INVALID_PARAMETER", refused
