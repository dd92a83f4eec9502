"""Bars from ticks end to end: ticks posted to the live hub come out as bars on
``bars:{symbol}:{timeframe}`` to GraphQL and ``/ws`` subscribers, equal to numpy over the same
ticks, closed bars stored in ``ts.live_bars``; the clock closes a bar no tick closes; a late
subscriber gets the current bar first; and a hub taking a symbol over rebuilds from history."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest
from gql import GraphQLRequest, gql

from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, LimitReached
from hub.gql.schema import build_schema
from hub.keys import Keys
from hub.marketdata.aggregator import BarAggregators
from hub.marketdata.bars import Bar
from hub.marketdata.barstate import Wishes
from hub.times import datetime_of_ns, ns_of
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, gql_session
from tests.test_bars import MINUTE, SECOND, T0, oracle, random_ticks, same
from tests.test_feed import feed, recv, send
from tests.test_graphql_ws import connect, init, subscribe
from tests.test_graphql_ws import recv as gql_recv

TICKS = "/api/v1/marketdata/ticks"
Seen = tuple[Bar, bool, int]  # the bar, closed, its sequence


@pytest.fixture
async def fresh(server: LiveServer) -> AsyncIterator[Callable[[str], str]]:
    """A new symbol per call (for bars of ``timeframe``); at the end its wishes go and the hub
    lets go of it, so no test leaves a bar builder (and its tick subscription) behind."""
    made: list[tuple[str, str]] = []

    def new(timeframe: str) -> str:
        made.append((f"BAR{secrets.token_hex(3).upper()}/USD", timeframe))
        return made[-1][0]

    yield new
    state = server.lifespan_state
    await state.redis.zrem(state.keys.bars_wanted, *(f"{s}|{tf}" for s, tf in made))
    state.marketdata.bars.poke()

    async def let_go() -> bool:
        return not any(symbol in state.marketdata.bars.symbols for symbol, _ in made)

    await eventually(let_go, timeout=30)


class Follower:
    """What one subscriber received, in order, and a bounded wait for what it should have."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self._changed = asyncio.Event()

    def add(self, doc: dict[str, Any], seq: int, ts: int) -> None:
        bar = Bar(
            ts, doc["open"], doc["high"], doc["low"], doc["close"], doc["volume"], doc["ticks"]
        )
        self.seen.append((bar, doc["closed"], seq))
        self._changed.set()

    async def until(self, check: Callable[[list[Seen]], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not check(self.seen):
                self._changed.clear()
                await self._changed.wait()

    def closed(self) -> list[Bar]:
        return [bar for bar, closed, _ in self.seen if closed]


@contextlib.asynccontextmanager
async def ws_follower(
    server: LiveServer, token: str, symbol: str, timeframe: str
) -> AsyncIterator[Follower]:
    """A ``/ws`` subscriber of the pair (subscribed when this enters)."""
    channel = f"bars:{symbol}:{timeframe}"
    ws = await feed(server, token)
    await send(ws, {"op": "subscribe", "channel": channel})
    ack = await recv(ws)
    assert ack["op"] == "subscribed" and ack["channel"] == channel, ack
    follower = Follower()

    async def read() -> None:
        async for text in ws:
            frame = orjson.loads(text)
            assert frame.get("channel") == channel and "seq" in frame, frame
            assert frame["data"]["symbol"] == symbol and frame["data"]["timeframe"] == timeframe
            follower.add(frame["data"], frame["seq"], frame["data"]["ts"])

    task = asyncio.create_task(read())
    try:
        yield follower
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await ws.close()


@contextlib.asynccontextmanager
async def gql_follower(
    server: LiveServer, token: str, symbol: str, timeframe: str
) -> AsyncIterator[Follower]:
    """A GraphQL ``bars`` subscriber (a third-party client over graphql-transport-ws)."""
    follower = Follower()
    async with gql_session(server.ws_url, token) as session:
        updates = session.subscribe(
            GraphQLRequest(
                gql(operation("Bars")), variable_values={"symbol": symbol, "timeframe": timeframe}
            )
        )

        async def read() -> None:
            async for item in updates:
                bar = item["bars"]
                assert bar["symbol"] == symbol and bar["timeframe"] == timeframe
                follower.add(bar, bar["sequence"], ns_of(datetime.fromisoformat(bar["ts"])))

        task = asyncio.create_task(read())
        try:
            yield follower
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await updates.aclose()


async def post(
    client: httpx.AsyncClient, admin: Account, symbol: str, ts: Any, price: Any, size: Any
) -> None:
    ticks = [
        {"symbol": symbol, "ts": int(t), "price": float(p), "size": float(s)}
        for t, p, s in zip(ts, price, size, strict=True)
    ]
    response = await client.post(TICKS, json={"ticks": ticks}, headers=admin.headers)
    assert response.status_code == 200, response.text


async def stored(pool: asyncpg.Pool, symbol: str, timeframe: str) -> list[Bar]:
    rows = await pool.fetch(
        "select ts, open, high, low, close, volume, ticks from ts.live_bars "
        "where symbol = $1 and timeframe = $2 order by ts",
        symbol,
        timeframe,
    )
    return [
        Bar(ns_of(r["ts"]), *(r[c] for c in ("open", "high", "low", "close", "volume", "ticks")))
        for r in rows
    ]


def check_stream(
    seen: list[Seen], ts: np.ndarray, price: np.ndarray, size: np.ndarray, step: int
) -> None:
    """In sequence order; each forming bar is its period's bar over the ticks so far."""
    sequences = [seq for _, _, seq in seen]
    assert sequences == sorted(set(sequences)), sequences
    periods = ts - ts % step
    for bar, closed, _ in seen:
        if not closed:
            mine = np.flatnonzero(periods == bar.ts)[: bar.ticks]
            same([bar], oracle(ts[mine], price[mine], size[mine], step))


def has(expected_closed: list[Bar], forming: Bar) -> Callable[[list[Seen]], bool]:
    def check(seen: list[Seen]) -> bool:
        closed = [bar for bar, c, _ in seen if c]
        return (
            len(closed) >= len(expected_closed)
            and bool(seen)
            and not seen[-1][1]
            and seen[-1][0]._replace(volume=0) == forming._replace(volume=0)
        )

    return check


async def test_subscribers_get_forming_and_closed_bars_equal_to_numpy_and_closed_ones_are_stored(
    server: LiveServer,
    fresh: Callable[[str], str],
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: Account,
    alice: Account,
) -> None:
    timeframe = "1m"
    symbol = fresh(timeframe)
    step = timeframe_ns(timeframe)
    first = (np.array([T0 - 30 * SECOND]), np.array([100.0]), np.array([1.0]))
    main = random_ticks(11, 300, 3 * MINUTE + 30 * SECOND)  # four minutes from T0
    ts, price, size = (np.concatenate([a, b]) for a, b in zip(first, main, strict=True))
    expected = oracle(ts, price, size, step)
    assert len(expected) == 5

    # Any user may subscribe; the subscriptions are what ask for these bars.
    async with (
        ws_follower(server, alice.token, symbol, timeframe) as ws,
        gql_follower(server, alice.token, symbol, timeframe) as graph,
    ):
        await post(client, admin, symbol, *first)  # a first bar: both subscribers are live
        for follower in (ws, graph):
            await follower.until(lambda seen: bool(seen))
            assert follower.seen[0][:2] == (expected[0], False)
        await post(client, admin, symbol, *main)
        for follower in (ws, graph):
            await follower.until(has(expected[:-1], expected[-1]))
        # Each closed bar once, in order, then the forming one: numpy's bars over the ticks.
        for follower in (ws, graph):
            same(follower.closed(), expected[:-1])
            same([follower.seen[-1][0]], expected[-1:])
            check_stream(follower.seen, ts, price, size, step)
            # 301 ticks, a handful of publications: forming bars are throttled.
            assert len(follower.seen) <= 20, len(follower.seen)
        assert graph.seen == ws.seen[-len(graph.seen) :]
        # Stored before they were published.
        same(await stored(pool, symbol, timeframe), expected[:-1])

        # A subscriber joining now gets the forming bar first.
        async with gql_follower(server, alice.token, symbol, timeframe) as late:
            await late.until(lambda seen: bool(seen))
            assert late.seen[0] == ws.seen[-1]


async def test_the_clock_closes_a_bar_no_tick_closes_and_a_late_subscriber_gets_it(
    server: LiveServer,
    fresh: Callable[[str], str],
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Any,
    admin: Account,
    alice: Account,
) -> None:
    timeframe = "1s"
    symbol = fresh(timeframe)
    step = timeframe_ns(timeframe)
    ts = np.array([T0 + 100_000_000, T0 + 500_000_000, T0 + 900_000_000])
    price, size = np.array([10.0, 10.5, 9.75]), np.array([1.0, 2.0, 0.5])
    [expected] = oracle(ts, price, size, step)
    loop = asyncio.get_running_loop()
    async with ws_follower(server, alice.token, symbol, timeframe) as ws:
        began = loop.time()
        await post(client, admin, symbol, ts, price, size)
        await ws.until(lambda seen: any(closed for _, closed, _ in seen))
        took = loop.time() - began
        assert ws.closed() == [expected] and ws.seen[-1][1]
        check_stream(ws.seen, ts, price, size, step)
        # Market time (0.9 s into the second at ingest) passed its end by the delay first.
        assert took >= settings.bar_close_delay + 0.1 - 0.05, took
        same(await stored(pool, symbol, timeframe), [expected])
        # Nothing forms now: a new subscriber, on either interface, first gets the closed bar.
        async with (
            ws_follower(server, alice.token, symbol, timeframe) as late_ws,
            gql_follower(server, alice.token, symbol, timeframe) as late_graph,
        ):
            for late in (late_ws, late_graph):
                await late.until(lambda seen: bool(seen))
                assert late.seen[0] == ws.seen[-1]


async def test_a_hub_taking_a_symbol_over_closes_what_was_not_stored_and_rebuilds_the_forming_bar(
    server: LiveServer,
    fresh: Callable[[str], str],
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: Account,
    alice: Account,
) -> None:
    timeframe = "1m"
    symbol = fresh(timeframe)
    step = timeframe_ns(timeframe)
    ts, price, size = random_ticks(12, 200, 3 * MINUTE + 20 * SECOND)
    expected = oracle(ts, price, size, step)
    state = server.lifespan_state
    mine: BarAggregators = state.marketdata.bars
    async with ws_follower(server, alice.token, symbol, timeframe) as ws:
        await post(client, admin, symbol, ts, price, size)
        await ws.until(has(expected[:-1], expected[-1]))
        # This hub goes away, and the last closed bar had not been stored (a crash between
        # closing it and its insert): another hub takes the symbol over.
        await mine.stop()
        other = BarAggregators(state.resources, state.marketdata.wishes)
        try:
            await pool.execute(
                "delete from ts.live_bars where symbol = $1 and timeframe = $2 and ts = $3",
                symbol,
                timeframe,
                datetime_of_ns(expected[-2].ts),
            )
            same(await stored(pool, symbol, timeframe), expected[:-2])
            before = len(ws.seen)
            await other.start()

            def rebuilt(seen: list[Seen]) -> bool:
                return has(expected[-2:-1], expected[-1])(seen[before:])

            await ws.until(rebuilt)
            assert symbol in other.symbols
            # What the new holder said: the bar it closed again, then the same forming bar.
            assert ws.seen[before][1] is True
            same([ws.seen[before][0]], expected[-2:-1])
            same([ws.seen[-1][0]], expected[-1:])
            check_stream(ws.seen, ts, price, size, step)
            same(await stored(pool, symbol, timeframe), expected[:-1])
        finally:
            await other.stop()
            await mine.start()


async def test_a_live_run_wants_bars_without_subscribing(
    server: LiveServer,
    fresh: Callable[[str], str],
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    admin: Account,
) -> None:
    timeframe = "1m"
    symbol = fresh(timeframe)
    service = server.lifespan_state.marketdata
    await service.want_bars(symbol, timeframe)
    ts, price, size = random_ticks(13, 50, 2 * MINUTE + 10 * SECOND)
    expected = oracle(ts, price, size, timeframe_ns(timeframe))
    await post(client, admin, symbol, ts, price, size)

    async def closed_ones() -> list[Bar] | None:
        bars = await stored(pool, symbol, timeframe)
        return bars if len(bars) == len(expected) - 1 else None

    same(await eventually(closed_ones, timeout=20), expected[:-1])
    for bad in (("NO SPACES", "1m"), (symbol, "1y"), (symbol, "")):
        with pytest.raises(BadRequest):
            await service.want_bars(*bad)


async def test_wishes_are_capped(server: LiveServer, settings: Any) -> None:
    keys = Keys(f"{settings.redis_prefix}capped-{secrets.token_hex(3)}:")
    wishes = Wishes(server.lifespan_state.redis, keys, cap=2)
    await wishes.want_one("AAA", "1m")
    await wishes.want_one("BBB", "5m")
    await wishes.want_one("AAA", "1m")  # renewing one is always fine
    with pytest.raises(LimitReached, match="at most 2"):
        await wishes.want_one("CCC", "1m")
    assert await wishes.want([("CCC", "1m"), ("BBB", "5m")]) == [("CCC", "1m")]
    assert await wishes.wanted() == {"AAA": {"1m"}, "BBB": {"5m"}}


async def test_a_bad_pair_is_refused_on_both_interfaces(server: LiveServer, alice: Account) -> None:
    ws = await connect(server)
    await init(ws, alice.token)
    for op_id, variables, field in (
        ("tf", {"symbol": "BTC/USD", "timeframe": "7x"}, "timeframe"),
        ("sym", {"symbol": "NO SPACES", "timeframe": "1m"}, "symbol"),
    ):
        await ws.send(subscribe(op_id, operation("Bars"), variables))
        error = await gql_recv(ws)
        assert error["type"] == "error" and error["id"] == op_id, error
        extensions = error["payload"][0]["extensions"]
        assert extensions["code"] == "INVALID_PARAMETER" and extensions["field"] == field
    await ws.close()
    bot = await feed(server, alice.token)
    await send(bot, {"op": "subscribe", "channel": "bars:BTC/USD:7x"})
    refused = await recv(bot)
    assert refused["op"] == "error" and refused["code"] == "unknown_channel", refused
    await bot.close()


async def test_forming_bars_are_throttled_and_the_last_state_always_goes_out(
    server: LiveServer,
    fresh: Callable[[str], str],
    client: httpx.AsyncClient,
    admin: Account,
    alice: Account,
) -> None:
    timeframe = "1h"
    symbol = fresh(timeframe)
    ts, price, size = random_ticks(14, 400, 50 * MINUTE)
    [expected] = oracle(ts, price, size, timeframe_ns(timeframe))
    loop = asyncio.get_running_loop()
    async with ws_follower(server, alice.token, symbol, timeframe) as ws:
        began = loop.time()
        for part in range(40):  # 40 batches as fast as they go: each moves the forming bar
            window = slice(10 * part, 10 * part + 10)
            await post(client, admin, symbol, ts[window], price[window], size[window])
        await ws.until(has([], expected))
        took = loop.time() - began
    assert not ws.closed()
    check_stream(ws.seen, ts, price, size, timeframe_ns(timeframe))
    # At most one publication per 250 ms (the first at once), whatever the tick rate.
    assert len(ws.seen) <= 2 + took / 0.25, (len(ws.seen), took)


def test_the_contract_names_the_bars_subscription() -> None:
    sdl = build_schema().as_str()
    assert "bars(symbol: String!, timeframe: String!): Bar!" in sdl
