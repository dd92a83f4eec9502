"""Market data end to end: ticks posted to the live hub, stored in their symbol's table and
published on ``ticks:{symbol}`` (read back over ``/ws``), who may post them, and replays run by
a real worker."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
from gql import GraphQLRequest, gql

from hub.datasets.timeframes import timeframe_ns
from hub.settings import Settings
from hub.times import ns_of
from tests.conftest import Account, LiveServer, make_account, operation
from tests.helpers import gql_session, graphql, running_worker
from tests.test_feed import feed, recv, send

TICKS = "/api/v1/marketdata/ticks"
Bar = tuple[float, float, float, float, float]  # open, high, low, close, volume
T0 = ns_of(datetime(2026, 1, 12, 10, 0, tzinfo=UTC))


def fresh(prefix: str) -> str:
    """A symbol no other test (or earlier run on the same Redis) has used."""
    return f"{prefix}{secrets.token_hex(3).upper()}"


async def scoped_key(client: httpx.AsyncClient, settings: Settings, admin: Account) -> Account:
    """A plain user whose key an admin granted ``marketdata:write``: what a feed runs with."""
    feeder = await make_account(settings)
    minted = await client.post(
        f"/api/admin/users/{feeder.user_id}/keys",
        json={"name": "feed", "scopes": ["marketdata:write"]},
        headers=admin.headers,
    )
    assert minted.status_code == 201, minted.text
    assert minted.json()["scopes"] == ["marketdata:write"]
    return Account(feeder.user_id, feeder.username, minted.json()["api_key"])


async def subscribed(server: LiveServer, token: str, *symbols: str) -> Any:
    ws = await feed(server, token)
    for symbol in symbols:
        await send(ws, {"op": "subscribe", "channel": f"ticks:{symbol}"})
        answer = await recv(ws)
        assert answer["op"] == "subscribed" and answer["channel"] == f"ticks:{symbol}", answer
    return ws


async def frames(ws: Any, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        return [await recv(ws, timeout) for _ in range(count)]


async def stored(pool: asyncpg.Pool, symbol: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "select ts_ns, price, size, bid, ask from ts.ticks where symbol = $1 order by ts_ns, n",
        symbol,
    )
    return rows


async def published_count(server: LiveServer, symbol: str) -> int:
    seq, _ = await server.lifespan_state.bus.recent_position(f"ticks:{symbol}")
    return int(seq)


# -- ingest -------------------------------------------------------------------------------


async def test_ingest_stores_and_publishes_each_symbol_in_order(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: Account,
    alice: Account,
) -> None:
    one, two = fresh("ING"), fresh("ING/")
    ticks = [
        {"symbol": one, "ts": T0 + 3, "price": 101.5, "size": 2.0, "bid": 101.0, "ask": 102.0},
        {"symbol": two, "ts": T0 + 1, "price": 7.25},
        {"symbol": one, "ts": T0 + 1, "price": 101.0, "size": 0.0},  # older: order is kept
        {"symbol": two, "ts": T0 + 2, "price": 7.5, "bid": 7.5, "ask": 7.5},
        {"symbol": one, "ts": T0 + 3, "price": 100.5, "ask": 101.0},  # the same time again
    ]
    ws = await subscribed(server, alice.token, one, two)  # any user may read ticks
    response = await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 5}

    got = await frames(ws, 5)
    await ws.close()
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for frame in got:
        by_channel.setdefault(frame["channel"], []).append(frame)
    for symbol in (one, two):
        sent = [t for t in ticks if t["symbol"] == symbol]
        mine = by_channel[f"ticks:{symbol}"]
        assert [f["seq"] for f in mine] == list(range(1, len(sent) + 1))
        assert len({f["epoch"] for f in mine}) == 1
        recv_ns = mine[0]["data"]["recv_ns"]
        assert isinstance(recv_ns, int) and abs(recv_ns - ns_of(datetime.now(UTC))) < 60 * 10**9
        # The payload contract the broker's matcher reads, exactly.
        assert [f["data"] for f in mine] == [
            {
                "symbol": symbol,
                "ts": t["ts"],
                "price": t["price"],
                "size": t.get("size"),
                "bid": t.get("bid"),
                "ask": t.get("ask"),
                "recv_ns": recv_ns,
            }
            for t in sent
        ]

    rows = await stored(pool, one)
    assert [(r["ts_ns"], r["price"], r["size"], r["bid"], r["ask"]) for r in rows] == [
        (T0 + 1, 101.0, 0.0, None, None),
        (T0 + 3, 101.5, 2.0, 101.0, 102.0),  # equal times: in the order they came
        (T0 + 3, 100.5, None, None, 101.0),
    ]
    # One measurement per symbol: the symbol's own table in the ts schema holds its ticks.
    for symbol, count in ((one, 3), (two, 2)):
        measurement = await pool.fetchval(
            "select measurement from tick_symbols where symbol = $1", symbol
        )
        assert measurement.startswith("ticks_ing")
        assert await pool.fetchval(f'select count(*) from ts."{measurement}"') == count
        assert await pool.fetchval(
            f'select ts from ts."{measurement}" order by ts_ns limit 1'
        ) == datetime.fromtimestamp((T0 + 1) // 10**9, UTC)


async def test_every_ts_form_is_read_by_its_magnitude(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: Account
) -> None:
    symbol = fresh("TSF")
    at = T0 + 123_456_789  # 2026-01-12T10:00:00.123456789Z
    forms: list[tuple[Any, int]] = [
        ("2026-01-12T10:00:00.123456789Z", at),
        ("2026-01-12T12:00:00.123456789+02:00", at),
        ("2026-01-12T10:00:00", T0),  # no zone: UTC
        (T0 // 10**9, T0),  # seconds
        (T0 / 10**9 + 0.25, T0 + 250_000_000),  # seconds with a fraction
        (at // 10**6, T0 + 123_000_000),  # milliseconds
        (at // 10**3, T0 + 123_456_000),  # microseconds
        (at, at),  # nanoseconds
        (0, 0),  # the epoch itself, in seconds
    ]
    ticks = [{"symbol": symbol, "ts": ts, "price": float(i + 1)} for i, (ts, _) in enumerate(forms)]
    response = await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)
    assert response.status_code == 200, response.text
    rows = await pool.fetch(
        "select price, ts_ns from ts.ticks where symbol = $1 order by price", symbol
    )
    assert [r["ts_ns"] for r in rows] == [expected for _, expected in forms]


async def test_batches_bringing_the_same_new_symbols_at_once_all_land(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: Account
) -> None:
    """Each new symbol's table is made once, by whichever batch gets there first; the others
    wait for it rather than fail, and none waits on another crosswise."""
    shared = [fresh("CON") for _ in range(4)]

    async def post(k: int) -> httpx.Response:
        symbols = shared[k % 4 :] + shared[: k % 4] + [fresh("ONE")]
        ticks = [{"symbol": s, "ts": T0 + k, "price": 1.0 + k} for s in symbols]
        return await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)

    async with asyncio.timeout(60):
        answers = await asyncio.gather(*(post(k) for k in range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    for symbol in shared:
        assert len(await stored(pool, symbol)) == 8
    assert (
        await pool.fetchval(
            "select count(*) from tick_symbols where symbol = any($1::text[])", shared
        )
        == 4
    )


BAD: list[tuple[str, Any, str]] = [
    ("symbol", {"symbol": "NO SPACES"}, "ticks[2].symbol"),
    ("symbol", {"symbol": "X" * 33}, "ticks[2].symbol"),
    ("price", {"price": 0}, "ticks[2].price"),
    ("price", {"price": -3.5}, "ticks[2].price"),
    ("price", {"price": "101.5"}, "ticks[2].price"),
    ("price", {"price": None}, "ticks[2].price"),
    ("size", {"size": -1}, "ticks[2].size"),
    ("bid", {"bid": 102.0, "ask": 101.0}, "ticks[2].ask"),
    ("bid", {"bid": 0}, "ticks[2].bid"),
    ("ts", {"ts": "next tuesday"}, "ticks[2].ts"),
    ("ts", {"ts": -1}, "ticks[2].ts"),
    ("ts", {"ts": "2263-01-01T00:00:00Z"}, "ticks[2].ts"),
    ("ts", {"ts": 10**19}, "ticks[2].ts"),
    ("ts", {"ts": True}, "ticks[2].ts"),
    ("ts", {"ts": None}, "ticks[2].ts"),
    ("extra", {"venue": "X"}, "ticks[2].venue"),
]


@pytest.mark.parametrize(
    ("case", "change", "field"), BAD, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(BAD)]
)
async def test_a_bad_tick_is_a_400_naming_it_and_nothing_is_written(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: Account,
    case: str,
    change: dict[str, Any],
    field: str,
) -> None:
    symbol = fresh("BAD")
    ticks: list[dict[str, Any]] = [
        {"symbol": symbol, "ts": T0 + i, "price": 10.0 + i} for i in range(4)
    ]
    ticks[2] = {**ticks[2], **change}
    response = await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["error"] and body["error"].startswith(f"{field}: "), body
    assert await stored(pool, symbol) == []
    assert await published_count(server, symbol) == 0


async def test_non_finite_numbers_and_broken_batches_are_refused_whole(
    server: LiveServer, client: httpx.AsyncClient, pool: asyncpg.Pool, admin: Account
) -> None:
    symbol = fresh("NAN")
    good = f'{{"symbol": "{symbol}", "ts": {T0}, "price": 1.5}}'
    headers = {**admin.headers, "Content-Type": "application/json"}
    cases = [
        (f'{{"ticks": [{good}, {{"symbol": "{symbol}", "ts": {T0}, "price": 1e400}}]}}', 400),
        (f'{{"ticks": [{good}, {{"symbol": "{symbol}", "ts": {T0}, "price": NaN}}]}}', 400),
        (f'{{"ticks": [{good}, {{"symbol": "{symbol}", "ts": 1e400, "price": 2}}]}}', 400),
        (f'{{"ticks": [{good}', 400),  # malformed
        ('{"ticks": []}', 400),
        (f'{{"ticks": [{good}], "more": 1}}', 400),
        (f"[{good}]", 400),
        (f'{{"ticks": [{",".join([good] * 10_001)}]}}', 400),  # past the schema's maxItems
    ]
    for text, status in cases:
        response = await client.post(TICKS, content=text.encode(), headers=headers)
        assert response.status_code == status, (text[:120], response.text)
        assert list(response.json()) == ["error"]
    oversized = b'{"ticks": [' + b" " * (4 << 20) + b"]}"
    response = await client.post(TICKS, content=oversized, headers=headers)
    assert response.status_code == 413 and list(response.json()) == ["error"]
    assert await stored(pool, symbol) == []
    assert await published_count(server, symbol) == 0


async def test_only_admins_and_keys_granted_marketdata_write_may_post(
    client: httpx.AsyncClient,
    settings: Settings,
    pool: asyncpg.Pool,
    admin: Account,
    alice: Account,
) -> None:
    symbol = fresh("AUTH")
    batch = {"ticks": [{"symbol": symbol, "ts": T0, "price": 1.0}]}
    anonymous = await client.post(TICKS, json=batch)
    assert anonymous.status_code == 401 and list(anonymous.json()) == ["error"]
    plain = await client.post(TICKS, json=batch, headers=alice.headers)
    assert plain.status_code == 403
    assert plain.json() == {
        "error": "publishing market data needs an admin or an API key with the "
        "'marketdata:write' scope"
    }
    # A user may not grant themselves the scope, nor mint keys for others.
    self_granted = await client.post(
        "/api/auth/keys", json={"scopes": ["marketdata:write"]}, headers=alice.headers
    )
    assert self_granted.status_code == 403, self_granted.text
    for_other = await client.post(
        f"/api/admin/users/{alice.user_id}/keys", json={}, headers=alice.headers
    )
    assert for_other.status_code == 403
    unknown = await client.post(
        "/api/auth/keys", json={"scopes": ["everything"]}, headers=admin.headers
    )
    assert unknown.status_code == 400 and "everything" in unknown.json()["error"]
    assert await stored(pool, symbol) == []

    feeder = await scoped_key(client, settings, admin)
    allowed = await client.post(TICKS, json=batch, headers=feeder.headers)
    assert allowed.status_code == 200 and allowed.json() == {"accepted": 1}
    # The scope grants market data, nothing of an admin's.
    assert (await client.get("/api/admin/users", headers=feeder.headers)).status_code == 403
    me = (await client.get("/api/me", headers=feeder.headers)).json()
    assert me["role"] == "user"
    by_admin = await client.post(TICKS, json=batch, headers=admin.headers)
    assert by_admin.status_code == 200
    assert len(await stored(pool, symbol)) == 2


# -- replay -------------------------------------------------------------------------------


async def make_dataset(
    server: LiveServer, admin: Account, symbol: str, timeframe: str, bars: Sequence[Bar]
) -> tuple[str, int]:
    """A dataset holding exactly ``bars`` (open, high, low, close, volume), written through the
    datasets service; returns its id and the first bar's time."""
    datasets = server.lifespan_state.datasets
    step = timeframe_ns(timeframe)
    start = T0
    dataset = await datasets.prepare_series(
        symbol, timeframe, start, start + len(bars) * step, source="test", created_by=admin.user_id
    )
    columns = np.array(bars, dtype=np.float64).T
    await datasets.append_bars(
        dataset,
        {
            "ts": start + np.arange(len(bars), dtype=np.int64) * step,
            "open": columns[0],
            "high": columns[1],
            "low": columns[2],
            "close": columns[3],
            "volume": columns[4],
        },
    )
    dataset = await datasets.refresh_stats(dataset)
    return str(dataset["dataset_id"]), start


async def start_replay(client: httpx.AsyncClient, token: str, **input: Any) -> dict[str, Any]:
    body = await graphql(client, operation("StartReplay"), {"input": input}, token=token)
    assert "errors" not in body, body
    job: dict[str, Any] = body["data"]["startReplay"]
    assert job["jobType"] == "marketdata.replay"
    return job


async def job_updates(server: LiveServer, token: str, job_id: str) -> AsyncIterator[dict[str, Any]]:
    async with gql_session(server.ws_url, token) as session:
        request = GraphQLRequest(gql(operation("JobProgress")), variable_values={"jobId": job_id})
        async for item in session.subscribe(request):
            yield item["jobProgress"]["job"]


async def ended(server: LiveServer, token: str, job_id: str, timeout: float = 60) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        async for job in job_updates(server, token, job_id):
            if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return job
    raise AssertionError("jobProgress ended before the job did")


async def test_a_dataset_replays_as_four_ticks_a_bar_in_the_likely_path_order(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, admin: Account
) -> None:
    symbol = fresh("RPL")
    bars = [
        (100.0, 104.0, 98.0, 103.0, 40.0),  # closed up: open, low, high, close
        (103.0, 105.0, 99.0, 100.0, 8.0),  # closed down: open, high, low, close
        (100.0, 101.0, 99.5, 100.0, 0.0),  # flat counts as up
    ]
    dataset_id, start = await make_dataset(server, admin, symbol, "1h", bars)
    ws = await subscribed(server, admin.token, symbol)
    async with running_worker(settings):
        job = await start_replay(client, admin.token, datasetId=dataset_id)
        got = await frames(ws, 12)
        done = await ended(server, admin.token, job["jobId"])
    await ws.close()
    assert done["status"] == "COMPLETED" and done["progress"] == done["total"] == 12
    hour = 3_600_000_000_000
    expected_prices = [
        100.0,
        98.0,
        104.0,
        103.0,
        103.0,
        105.0,
        99.0,
        100.0,
        100.0,
        99.5,
        101.0,
        100.0,
    ]
    assert [f["data"]["price"] for f in got] == expected_prices
    assert [f["data"]["ts"] for f in got] == [
        start + bar * hour + quarter * hour // 4 for bar in range(3) for quarter in range(4)
    ]
    assert [f["data"]["size"] for f in got] == [10.0] * 4 + [2.0] * 4 + [0.0] * 4
    assert all(f["data"]["symbol"] == symbol and f["data"]["bid"] is None for f in got)
    assert [f["seq"] for f in got] == list(range(1, 13))


async def test_stored_ticks_replay_in_a_window_no_faster_than_the_speed_allows(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, admin: Account
) -> None:
    symbol = fresh("SPD")
    second = 10**9
    ticks: list[dict[str, Any]] = [
        {"symbol": symbol, "ts": T0 + k * 10 * second, "price": 50.0 + k, "size": 1.0}
        for k in range(6)
    ]
    posted = await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)
    assert posted.status_code == 200
    ws = await subscribed(server, admin.token, symbol)
    window = ticks[1:5]  # [T0 + 10 s, T0 + 50 s): 30 s of market time
    speed = 30.0  # ... in about a second
    async with running_worker(settings):
        job = await start_replay(
            client,
            admin.token,
            symbol=symbol,
            start="2026-01-12T10:00:10Z",
            end="2026-01-12T10:00:50Z",
            speed=speed,
        )
        got = await frames(ws, len(window))
        done = await ended(server, admin.token, job["jobId"])
    await ws.close()
    assert done["status"] == "COMPLETED" and done["progress"] == 4
    assert [(f["data"]["ts"], f["data"]["price"]) for f in got] == [
        (t["ts"], t["price"]) for t in window
    ]
    # The last tick went out no sooner than 30 s of market time / 30 after the first (the
    # hub stamps recv_ns as it publishes). A lower bound only: a busy machine may be slower.
    took = (got[-1]["data"]["recv_ns"] - got[0]["data"]["recv_ns"]) / second
    assert took >= 0.95 * (window[-1]["ts"] - window[0]["ts"]) / second / speed, took


async def test_cancel_stops_a_paced_replay(
    server: LiveServer, client: httpx.AsyncClient, settings: Settings, admin: Account
) -> None:
    symbol = fresh("CXR")
    bars = [(10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 4.0) for i in range(200)]
    dataset_id, _ = await make_dataset(server, admin, symbol, "1h", bars)
    ws = await subscribed(server, admin.token, symbol)
    async with running_worker(settings):
        # A bar a second: 200 seconds unless cancelled.
        job = await start_replay(client, admin.token, datasetId=dataset_id, speed=3600)
        await frames(ws, 1)
        cancelled = await graphql(
            client, operation("CancelJob"), {"id": job["jobId"]}, token=admin.token
        )
        assert cancelled["data"]["cancelJob"]["cancelRequested"] is True
        done = await ended(server, admin.token, job["jobId"])
    await ws.close()
    assert done["status"] == "CANCELLED"
    # The handler has returned (the runner marks the job CANCELLED after it): nothing more
    # goes out, and far from all 800 ticks did.
    sent = await published_count(server, symbol)
    assert 1 <= sent < 800 and done["total"] == 800
    assert done["progress"] <= sent


async def test_replay_is_checked_before_a_job_exists(
    client: httpx.AsyncClient, pool: asyncpg.Pool, admin: Account, alice: Account
) -> None:
    before = await pool.fetchval("select count(*) from jobs where job_type = 'marketdata.replay'")
    cases: list[tuple[str, dict[str, Any], str]] = [
        (alice.token, {"symbol": "ANY"}, "FORBIDDEN"),
        (admin.token, {}, "INVALID_PARAMETER"),
        (
            admin.token,
            {"symbol": "A", "datasetId": "8a0b7f7e-0000-4000-8000-000000000000"},
            "INVALID_PARAMETER",
        ),
        (admin.token, {"symbol": "NO SUCH"}, "INVALID_PARAMETER"),
        (admin.token, {"symbol": fresh("NONE")}, "NOT_FOUND"),
        (admin.token, {"datasetId": "8a0b7f7e-0000-4000-8000-000000000000"}, "NOT_FOUND"),
        (admin.token, {"symbol": "A", "speed": -1}, "INVALID_PARAMETER"),
        (
            admin.token,
            {"symbol": "A", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            "INVALID_PARAMETER",
        ),
    ]
    for token, input, code in cases:
        body = await graphql(client, operation("StartReplay"), {"input": input}, token=token)
        assert body["errors"][0]["extensions"]["code"] == code, (input, body)
    after = await pool.fetchval("select count(*) from jobs where job_type = 'marketdata.replay'")
    assert after == before
