"""Line-protocol ingest through the real hub: ``POST /write`` (InfluxDB v1, and the official
QuestDB client over HTTP) and ``POST /api/v2/write`` (InfluxDB v2). Rows land in
``ts.<measurement>`` as the client wrote them, ticks reach their tables and ``/ws``
subscribers, a batch with one bad line writes nothing, and refusals answer in InfluxDB's
format."""

from __future__ import annotations

import asyncio
import base64
import gzip
import secrets
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from hub.auth import Identity, Role, mint_jwt
from hub.settings import Settings
from tests.conftest import Account, LiveServer
from tests.test_marketdata import frames, fresh, scoped_key, stored, subscribed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from questdb.ingress import Sender, TimestampMicros, TimestampNanos

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in nanoseconds
V1, V2 = "/write", "/api/v2/write"


def name(prefix: str = "lp") -> str:
    """A measurement no other test (or earlier run on the same database) has used."""
    return f"{prefix}_{secrets.token_hex(4)}"


def token(account: Account) -> dict[str, str]:
    return {"Authorization": f"Token {account.token}"}


def at(ns: int) -> datetime:
    """What Postgres keeps of a time in nanoseconds: microseconds, floored."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC).replace(microsecond=ns // 1000 % 10**6)


async def rows(pool: asyncpg.Pool, measurement: str) -> list[dict[str, Any]]:
    records = await pool.fetch(f'select * from ts."{measurement}" order by "timestamp"')
    return [dict(r) for r in records]


async def exists(pool: asyncpg.Pool, measurement: str) -> bool:
    return bool(await pool.fetchval("select to_regclass($1) is not null", f'ts."{measurement}"'))


def assert_influx_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code and isinstance(body["message"], str), body
    assert set(body) <= {"code", "message", "line"}
    return body


# -- writing ----------------------------------------------------------------------------------


async def test_hub_loads_the_parser_at_start(server: LiveServer) -> None:
    """A hub starting loads the parsing kernels in the background, so the first /write does
    not compile them: by the time the start's future resolves, each entry kernel is loaded."""
    from numba.core.registry import CPUDispatcher

    import engine._ilp_parse_nb as kernels

    ready = server.lifespan_state.timeseries.parser_ready
    assert ready is not None
    async with asyncio.timeout(300):
        seconds = await asyncio.shield(ready)
    assert seconds >= 0
    entry = ("scan_lines_nb", "group_columns_nb", "gather_text_nb", "line_numbers_nb")
    for name in entry:
        kernel = getattr(kernels, name)
        assert isinstance(kernel, CPUDispatcher) and kernel.signatures, name


async def test_v2_writes_every_type_to_its_measurement(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    cpu, mem = name("cpu"), name("mem")
    body = (
        f'{cpu},host=a\\ b,region=eu usage=0.5,count=3i,ok=t,note="say \\"hi\\"" {T0}\n'
        f"{mem},host=a free=1024i,swap=false {T0 + 1000}\n"
        f"{cpu},host=c usage=-1.25e-3,count=-9223372036854775808i,since=1767225600000000t "
        f"{T0 + 2000}\n"
    )
    response = await client.post(
        V2, params={"org": "acme", "bucket": "b", "precision": "ns"}, content=body,
        headers=token(alice),
    )  # fmt: skip
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert await rows(pool, cpu) == [
        {
            "timestamp": at(T0), "host": "a b", "region": "eu", "usage": 0.5, "count": 3,
            "ok": True, "note": 'say "hi"', "since": None,
        },
        {
            "timestamp": at(T0 + 2000), "host": "c", "region": None, "usage": -0.00125,
            "count": -(2**63), "ok": None, "note": None, "since": at(T0),
        },
    ]  # fmt: skip
    assert await rows(pool, mem) == [
        {"timestamp": at(T0 + 1000), "host": "a", "free": 1024, "swap": False}
    ]
    types = dict(
        await pool.fetch(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'ts' and table_name = $1",
            cpu,
        )
    )
    assert types == {
        "timestamp": "timestamp with time zone", "host": "text", "region": "text",
        "usage": "double precision", "count": "bigint", "ok": "boolean", "note": "text",
        "since": "timestamp with time zone",
    }  # fmt: skip
    # The measurement is alice's: she may extend it, and it reads like an import's.
    more = await client.post(
        V2, content=f"{cpu} usage=2,extra=1i {T0 + 3000}", headers=token(alice)
    )
    assert more.status_code == 204, more.text
    assert [r["extra"] for r in await rows(pool, cpu)] == [None, None, 1]


@pytest.mark.parametrize(
    ("path", "precision", "factor"),
    [
        (V1, None, 1), (V1, "n", 1), (V1, "u", 1_000), (V1, "ms", 10**6), (V1, "s", 10**9),
        (V1, "m", 60 * 10**9), (V1, "h", 3600 * 10**9),
        (V2, None, 1), (V2, "ns", 1), (V2, "us", 1_000), (V2, "ms", 10**6), (V2, "s", 10**9),
    ],
)  # fmt: skip
async def test_precisions(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    alice: Account,
    path: str,
    precision: str | None,
    factor: int,
) -> None:
    measurement = name("prec")
    stamp = 492_000  # hours: 2026-02-14, fits every unit
    params = {"db": "mydb"} | ({} if precision is None else {"precision": precision})
    body = f"{measurement} x=1 {stamp}\n{measurement} x=2\n"
    before = datetime.now(UTC)
    response = await client.post(path, params=params, content=body, headers=token(alice))
    assert response.status_code == 204, response.text
    first, second = await rows(pool, measurement)
    assert first == {"timestamp": at(stamp * factor), "x": 1.0}
    # A line without a timestamp takes the time the hub received the body.
    assert before <= second["timestamp"] <= datetime.now(UTC) and second["x"] == 2.0


async def test_v1_only_precisions_are_refused_on_v2(
    client: httpx.AsyncClient, alice: Account
) -> None:
    for precision in ("h", "m", "d"):
        response = await client.post(
            V2, params={"precision": precision}, content="m x=1", headers=token(alice)
        )
        body = assert_influx_error(response, 400, "invalid")
        assert "precision must be one of ns, n, us, u, ms, s" in body["message"]
    response = await client.post(
        V1, params={"precision": "d"}, content="m x=1", headers=token(alice)
    )
    assert "precision must be one of n, ns, u, us, ms, s, m, h" in response.json()["message"]


async def test_gzip_bodies_are_accepted(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    measurement = name("gz")
    lines = "".join(f"{measurement},k=v{i % 3} x={i}i {T0 + i * 1000}\n" for i in range(5000))
    packed = gzip.compress(lines[: len(lines) // 2].encode()) + gzip.compress(
        lines[len(lines) // 2 :].encode()
    )  # two gzip members, as a concatenating client may send
    response = await client.post(
        V2, content=packed, headers={**token(alice), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 204, response.text
    got = await rows(pool, measurement)
    assert [(r["k"], r["x"]) for r in got] == [(f"v{i % 3}", i) for i in range(5000)]
    bad = await client.post(
        V2, content=b"\x1f\x8bnot gzip", headers={**token(alice), "Content-Encoding": "gzip"}
    )
    assert "gzip" in assert_influx_error(bad, 400, "invalid")["message"]
    brotli = await client.post(V2, content=b"x", headers={**token(alice), "Content-Encoding": "br"})
    assert "Content-Encoding 'br'" in assert_influx_error(brotli, 400, "invalid")["message"]


async def test_empty_and_blank_bodies(client: httpx.AsyncClient, alice: Account) -> None:
    empty = await client.post(V1, content=b"", headers=token(alice))
    assert "empty" in assert_influx_error(empty, 400, "invalid")["message"]
    blank = await client.post(V1, content=b"\n# nothing but a comment\n\n", headers=token(alice))
    assert blank.status_code == 204


# -- refusals ---------------------------------------------------------------------------------


async def test_a_batch_with_one_bad_line_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account
) -> None:
    good, other = name("good"), name("other")
    seeded = await client.post(V2, content=f"{other} x=1 {T0}", headers=token(alice))
    assert seeded.status_code == 204
    body = (
        f"{good},t=a x=1 {T0}\n"
        f"{other} x=2 {T0 + 1}\n"
        "\n"
        f"{good},t=b x=oops {T0 + 2}\n"
        f"{good} x=3 {T0 + 3}\n"
    )
    response = await client.post(V2, content=body, headers=token(alice))
    error = assert_influx_error(response, 400, "invalid")
    assert error["line"] == 4
    assert error["message"].startswith("line 4: invalid field value in 'x=oops'")
    assert f"{good},t=b x=oops" in error["message"]
    assert not await exists(pool, good)
    assert len(await rows(pool, other)) == 1

    # A batch that parses but disagrees with a stored table: refused whole, in one transaction.
    body = f'{good} x=1 {T0}\n{other} x="text" {T0 + 5}\n'
    response = await client.post(V2, content=body, headers=token(alice))
    error = assert_influx_error(response, 400, "invalid")
    assert error["line"] == 2 and "ts." + other in error["message"]
    assert not await exists(pool, good)
    assert len(await rows(pool, other)) == 1


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("ok x=1\nCPU x=1", 2, "measurement 'CPU': measurement must be 1-63 lower-case"),
        ("ok x=1\nok timestamp=5i", 2, "'timestamp' is ok's designated timestamp column"),
        ("ok x=1\nok x=1i", 2, "'x' is an integer field here but a float field on line 1"),
        ("ok x=1\nok,t=1 t=2", 2, "'t' appears twice in the line"),
        ("ok x=1 1\n\nok x=2 3 4", 3, "unexpected '4' after the timestamp"),
        ("ok x=1\nok " + "k" * 70 + "=1", 2, "a column name must be 1-63 bytes"),
    ],
)
async def test_bad_lines_are_named(
    client: httpx.AsyncClient, alice: Account, body: str, line: int, fragment: str
) -> None:
    response = await client.post(V1, content=body, headers=token(alice))
    error = assert_influx_error(response, 400, "invalid")
    assert error["line"] == line and fragment in error["message"], error


async def test_credentials_in_every_form_influx_clients_send(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, alice: Account
) -> None:
    measurement = name("auth")
    jwt, _ = mint_jwt(Identity(alice.user_id, alice.username, Role.USER), settings.jwt_secret, 600)
    basic = base64.b64encode(f"anyone:{alice.token}".encode()).decode()
    forms: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (V2, {"Authorization": f"Token {alice.token}"}, {}),
        (V2, {"Authorization": f"Token {jwt}"}, {}),
        (V2, {"Authorization": f"Bearer {alice.token}"}, {}),
        (V1, {"Authorization": f"Basic {basic}"}, {}),
        (V1, {}, {"u": "anyone", "p": alice.token}),
        (V1, {}, {"p": jwt}),
        (V1, {"X-Stage1-Token": alice.token}, {}),
    ]
    for i, (path, headers, params) in enumerate(forms):
        body = f"{measurement} n={i}i {T0 + i * 1000}"
        response = await client.post(path, content=body, headers=headers, params=params)
        assert response.status_code == 204, (headers, params, response.text)
    assert [r["n"] for r in await rows(pool, measurement)] == list(range(len(forms)))


async def test_missing_or_bad_credentials_are_401(client: httpx.AsyncClient) -> None:
    bad_key = "th_abcdefghijkl_" + "x" * 40
    for path, headers, params in [
        (V2, {}, {}),
        (V1, {}, {}),
        (V2, {"Authorization": f"Token {bad_key}"}, {}),
        (V2, {"Authorization": "Token nonsense"}, {}),
        (V2, {"Authorization": f"Bearer {bad_key}"}, {}),
        (V1, {"Authorization": "Basic !!!"}, {}),
        (V1, {}, {"u": "x", "p": bad_key}),
    ]:
        response = await client.post(path, content="m x=1", headers=headers, params=params)
        assert_influx_error(response, 401, "unauthorized")


async def test_another_users_measurement_is_403(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account, bob: Account, admin: Account
) -> None:
    theirs, mine = name("bobs"), name("alices")
    assert (await client.post(V2, content=f"{theirs} x=1", headers=token(bob))).status_code == 204
    body = f"{mine} x=1\n{theirs} x=2"
    refused = await client.post(V2, content=body, headers=token(alice))
    assert "belongs to another user" in assert_influx_error(refused, 403, "forbidden")["message"]
    assert not await exists(pool, mine) and len(await rows(pool, theirs)) == 1
    # An admin writes any generic measurement; nobody writes another domain's tables.
    assert (await client.post(V2, content=body, headers=token(admin))).status_code == 204
    assert len(await rows(pool, theirs)) == 2
    live_bars = await client.post(V2, content="live_bars x=1", headers=token(admin))
    assert "belongs to another part of the hub" in live_bars.json()["message"]


async def test_bodies_past_the_limit_are_413(settings: Settings, alice: Account) -> None:
    small = LiveServer(settings.model_copy(update={"line_protocol_max_bytes": 4096}))
    await small.start()
    try:
        async with httpx.AsyncClient(base_url=small.url, timeout=30) as http:
            line = b"big x=1\n"
            response = await http.post(V2, content=line * 600, headers=token(alice))
            assert (
                "TRADEHUB_LINE_PROTOCOL_MAX_BYTES"
                in assert_influx_error(response, 413, "request too large")["message"]
            )

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
                for _ in range(600):
                    yield line

            streamed = await http.post(V2, content=chunks(), headers=token(alice))
            assert_influx_error(streamed, 413, "request too large")
            bomb = gzip.compress(line * 100_000)  # 800 kB inflated from about 2 kB
            assert len(bomb) < 4096
            inflated = await http.post(
                V2, content=bomb, headers={**token(alice), "Content-Encoding": "gzip"}
            )
            assert (
                "once decompressed"
                in assert_influx_error(inflated, 413, "request too large")["message"]
            )
            fits = await http.post(
                V2,
                content=gzip.compress(line * 400),
                headers={**token(alice), "Content-Encoding": "gzip"},
            )
            assert fits.status_code == 204, fits.text
    finally:
        await small.stop()


async def test_unknown_paths_and_methods_answer_in_influx_format(
    client: httpx.AsyncClient, alice: Account
) -> None:
    missing = await client.post("/api/v2/nothing", content="m x=1", headers=token(alice))
    assert_influx_error(missing, 404, "not found")
    query = await client.get("/api/v2/query", headers=token(alice))
    assert_influx_error(query, 404, "not found")
    method = await client.get(V1, headers=token(alice))
    assert_influx_error(method, 405, "method not allowed")
    assert method.headers["allow"] == "POST"
    bad_query = await client.post(V2, params={"bucket": "a\x00b"}, content="m x=1")
    assert_influx_error(bad_query, 400, "invalid")


# -- ticks ------------------------------------------------------------------------------------


async def test_ticks_lines_reach_subscribers_and_tick_tables(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    admin: Account,
    alice: Account,
) -> None:
    feeder = await scoped_key(client, settings, admin)
    one, two = fresh("LP"), fresh("LP/")
    measurement = name("side")
    ws = await subscribed(server, alice.token, one, two)
    body = (
        f"ticks,symbol={one} price=101.5,size=2,bid=101i,ask=102 {T0 + 3}\n"
        f"ticks,symbol={two} price=7.25 {T0 + 1}\n"
        f"{measurement} x=1 {T0}\n"  # a generic line in the same batch
        f"ticks,symbol={one} price=101,volume=0i {T0 + 1}\n"
    )
    response = await client.post(V1, content=body, headers=token(feeder))
    assert response.status_code == 204, response.text
    got = await frames(ws, 3)
    await ws.close()
    by_symbol: dict[str, list[dict[str, Any]]] = {}
    for frame in got:
        by_symbol.setdefault(frame["data"]["symbol"], []).append(frame["data"])
    recv_ns = got[0]["data"]["recv_ns"]
    assert by_symbol[one] == [
        {"symbol": one, "ts": T0 + 3, "price": 101.5, "size": 2.0, "bid": 101.0, "ask": 102.0,
         "recv_ns": recv_ns},
        {"symbol": one, "ts": T0 + 1, "price": 101.0, "size": 0.0, "bid": None, "ask": None,
         "recv_ns": recv_ns},
    ]  # fmt: skip
    assert by_symbol[two] == [
        {"symbol": two, "ts": T0 + 1, "price": 7.25, "size": None, "bid": None, "ask": None,
         "recv_ns": recv_ns},
    ]  # fmt: skip
    assert [(r["ts_ns"], r["price"], r["size"]) for r in await stored(pool, one)] == [
        (T0 + 1, 101.0, 0.0),
        (T0 + 3, 101.5, 2.0),
    ]
    assert len(await stored(pool, two)) == 1
    assert len(await rows(pool, measurement)) == 1
    # ticks is not a generic measurement: nothing was created under that name.
    assert not await pool.fetchval(
        "select 1 from timeseries_measurements where measurement = 'ticks'"
    )


async def test_ticks_need_the_marketdata_scope_and_valid_values(
    client: httpx.AsyncClient, pool: asyncpg.Pool, alice: Account, admin: Account
) -> None:
    symbol = fresh("LPX")
    side = name("side")
    body = f"{side} x=1\nticks,symbol={symbol} price=1.5 {T0}"
    refused = await client.post(V2, content=body, headers=token(alice))
    assert "marketdata:write" in assert_influx_error(refused, 403, "forbidden")["message"]
    assert not await exists(pool, side) and await stored(pool, symbol) == []
    for bad, line, fragment in [
        (f"ticks,symbol={symbol} price=0", 1, "price must be finite, above 0"),
        (f"ticks,symbol={symbol} price=1\nticks size=1", 2, "needs the tag symbol"),
        (f"ticks,symbol={symbol} size=1", 1, "needs the tag symbol and the field price"),
        (f"ticks,symbol={symbol} price=1,size=-1", 1, "size must be finite, at least 0"),
        (f"ticks,symbol={symbol} price=1,bid=3,ask=2", 1, "bid is above ask"),
        (
            f"ticks,symbol={symbol} price=1\nticks,symbol={symbol} price=1,size=1,volume=1",
            2,
            "send size or volume (its alias), not both",
        ),
        (f"ticks,symbol={symbol} price=NaN", 1, "price must be finite"),
        (f"ticks,symbol={symbol},venue=x price=1", 1, "'venue' is none of them"),
        (f'ticks,symbol={symbol} price="1"', 1, "price must be a number"),
        ("ticks,symbol=a\\ b price=1", 1, "invalid symbol 'a b'"),
        (f"ticks,symbol={symbol} price=1 -5", 1, "outside 1970-01-01..2262-04-11"),
    ]:
        response = await client.post(V2, content=bad, headers=token(admin))
        error = assert_influx_error(response, 400, "invalid")
        assert error["line"] == line and fragment in error["message"], (bad, error)
    assert await stored(pool, symbol) == []


# -- the official QuestDB client --------------------------------------------------------------


def _questdb_send(conf: str, table: str) -> None:
    with Sender.from_conf(conf) as sender:
        for i in range(250):
            sender.row(
                table,
                symbols={"venue": ["x", "y z", "a,b=c"][i % 3]},
                columns={
                    "price": 100.0 + i / 8,
                    "qty": i,
                    "ok": i % 2 == 0,
                    "note": None if i % 5 else f'n "{i}"\n',
                    "seen": TimestampMicros(1_767_225_600_000_000 + i),
                },
                at=TimestampNanos(T0 + i * 1_000),
            )
        sender.flush()


async def test_questdb_client_over_http(
    server: LiveServer, pool: asyncpg.Pool, alice: Account
) -> None:
    """QuestDB's own client (``questdb.ingress.Sender``, ``http::``) posts to ``/write`` with a
    bearer token, after probing ``GET /settings`` (a 404 here: it then speaks protocol 1)."""
    address = f"http::addr=127.0.0.1:{server.port};"
    basic = f"username=any;password={alice.token};protocol_version=1;"
    for conf, table in [
        (f"{address}token={alice.token};", name("qdbtoken")),
        (address + basic, name("qdbbasic")),
    ]:
        await asyncio.to_thread(_questdb_send, conf, table)
        got = await rows(pool, table)
        assert got == [
            {
                "timestamp": at(T0 + i * 1_000),
                "venue": ["x", "y z", "a,b=c"][i % 3],
                "price": 100.0 + i / 8,
                "qty": i,
                "ok": i % 2 == 0,
                "note": None if i % 5 else f'n "{i}"\n',
                "seen": at((1_767_225_600_000_000 + i) * 1000),
            }
            for i in range(250)
        ]
