"""A live run's life: stopped with and without closing its position, its worker SIGKILLed
mid-run and a hub restarted under it (no duplicate order, no lost trade, gap-free sequences),
and every bad input refused with nothing left running."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest
from gql import GraphQLRequest, gql

from engine.backtest import run_backtest
from engine.records import TradeStatus
from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, free_port, operation
from tests.helpers import eventually, gql_session, graphql, hub_env, running_worker
from tests.test_live import execution, paper_account, start_live

SECOND = 1_000_000_000


def new_symbol() -> str:
    return f"LR{secrets.token_hex(3).upper()}"


class Feed:
    """Ticks of one symbol through the ingest route, one per 1-second bar, in market time."""

    def __init__(self, client: httpx.AsyncClient, admin: Account, symbol: str) -> None:
        self.client = client
        self.admin = admin
        self.symbol = symbol
        self.ts = 1_800_000_000 * SECOND
        self.prices: list[float] = []

    async def send(self, *prices: float) -> None:
        batch = []
        for price in prices:
            batch.append({"symbol": self.symbol, "ts": self.ts, "price": price, "size": 1.0})
            self.ts += SECOND
            self.prices.append(price)
        response = await self.client.post(
            "/api/v1/marketdata/ticks", json={"ticks": batch}, headers=self.admin.headers
        )
        assert response.status_code == 200, response.text


async def started(
    client: httpx.AsyncClient, who: Account, feed: Feed, account: str, **extra: Any
) -> str:
    body = await start_live(
        client,
        who,
        strategy="sma_crossover",
        params={"fast": 1, "slow": 2},
        symbol=feed.symbol,
        timeframe="1s",
        account=account,
        initialCapital=10_000.0,
        **extra,
    )
    assert "errors" not in body, body
    run_id: str = body["data"]["startLive"]["executionId"]

    async def running() -> bool:
        return bool((await execution(client, who, run_id))["status"] == "RUNNING")

    await eventually(running, timeout=60)
    return run_id


async def processed(client: httpx.AsyncClient, who: Account, run_id: str, bars: int) -> None:
    async def reached() -> bool:
        return bool((await execution(client, who, run_id))["processed"] >= bars)

    await eventually(reached, timeout=90)


async def stop(
    client: httpx.AsyncClient, who: Account, run_id: str, keep: bool | None = None
) -> dict[str, Any]:
    body = await graphql(
        client, operation("StopLiveRun"), {"id": run_id, "keepPosition": keep}, token=who.token
    )
    assert "errors" not in body, body

    async def stopped() -> bool:
        return bool((await execution(client, who, run_id))["status"] == "STOPPED")

    await eventually(stopped, timeout=30)
    return await execution(client, who, run_id)


async def position(pool: asyncpg.Pool, account: str, symbol: str) -> float:
    value = await pool.fetchval(
        "select quantity from broker_positions where account_id = $1 and symbol = $2",
        account,
        symbol,
    )
    return float(value or 0.0)


@contextlib.asynccontextmanager
async def other_hub(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A hub in its own process; stopped (SIGTERM) on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=hub_env(settings, TRADEHUB_PORT=str(port)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=60, pause=0.2)
            yield http
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


@pytest.mark.parametrize("keep", [None, True], ids=["closes", "keeps"])
async def test_stop_cancels_and_closes_the_position_unless_kept(
    server: LiveServer,
    client: httpx.AsyncClient,
    worker: None,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
    keep: bool | None,
) -> None:
    feed = Feed(client, admin, new_symbol())
    await feed.send(10.0)
    account = await paper_account(client, alice)
    run_id = await started(client, alice, feed, account)
    # Down, then up: the fast SMA crosses above the slow at the third bar; the fourth tick closes
    # that bar, and the entry fills at its price. A dashboard sees it live.
    async with gql_session(server.ws_url, alice.token) as session:
        request = GraphQLRequest(
            gql(operation("ExecutionEvents")),
            variable_values={"executionId": run_id, "sinceSequence": 0},
        )
        await feed.send(10.0, 9.0, 10.0, 10.5)
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            async for item in session.subscribe(request):
                seen.append(item["executionEvents"])
                if seen[-1]["eventType"] == "TRADE_EXECUTED":
                    break
    assert [e["sequence"] for e in seen] == list(range(1, len(seen) + 1))
    # The run's bars are built on bars:{symbol}:1s for whoever watches beside it.
    state = server.lifespan_state

    async def bars_wanted() -> bool:
        score = await state.redis.zscore(state.keys.bars_wanted, f"{feed.symbol}|1s")
        return score is not None

    await eventually(bars_wanted, timeout=10)
    assert seen[-1]["event"]["action"] == "open" and seen[-1]["event"]["price"] == 10.5
    await processed(client, alice, run_id, 3)
    assert await position(pool, account, feed.symbol) > 0
    final = await stop(client, alice, run_id, keep)
    trades = await pool.fetch(
        "select exit_reason, entry_price, exit_price from execution_trades where execution_id = $1",
        int(run_id),
    )
    held = await position(pool, account, feed.symbol)
    if keep:
        assert held > 0 and trades == []
    else:
        assert held == 0
        assert [(t["exit_reason"], t["entry_price"], t["exit_price"]) for t in trades] == [
            ("stopped", 10.5, 10.5)
        ]
        assert final["finalValue"] == pytest.approx(10_000.0)
    events = await pool.fetch(
        "select event_type, event from execution_events where execution_id = $1 order by sequence",
        int(run_id),
    )
    assert events[-1]["event_type"] == "status_changed"
    # Nothing of the run is left working, and it does not trade on.
    working = await pool.fetchval(
        "select count(*) from broker_orders where account_id = $1 and status in ('working', 'pending')",
        account,
    )
    assert working == 0
    orders = await pool.fetchval(
        "select count(*) from broker_orders where account_id = $1", account
    )
    await feed.send(9.0, 8.0, 9.0, 9.5)
    assert (
        await pool.fetchval("select count(*) from broker_orders where account_id = $1", account)
        == orders
    )


def zigzag(n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(p), 4) for p in 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))]


async def test_a_run_survives_a_sigkilled_worker_and_a_hub_restart(
    server: LiveServer,
    client: httpx.AsyncClient,
    settings: Settings,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
) -> None:
    feed = Feed(client, admin, new_symbol())
    await feed.send(100.0)
    account = await paper_account(client, alice)
    prices = zigzag(120, seed=7)
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "worker"],
        env=hub_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = await started(client, alice, feed, account)
        holder = await server.lifespan_state.redis.get(
            server.lifespan_state.keys.live_lease(int(run_id))
        )
        assert holder is not None  # the subprocess's host runs it
        await feed.send(*prices[:60])
        await processed(client, alice, run_id, 50)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # Ticks go on while nobody runs it, through a hub that is restarted meanwhile.
    async with other_hub(settings) as there:
        feed.client = there
        await feed.send(*prices[60:90])
    async with other_hub(settings) as there:
        feed.client = there
        await feed.send(*prices[90:])
    async with running_worker(settings):
        await processed(client, alice, run_id, len(prices) - 1)
        await stop(client, alice, run_id, keep=True)
    # The trades are the backtest's on the same bars (one tick each: open = close).
    closes = np.array([100.0, *prices])
    ohlcv = {
        "ts": np.arange(len(closes), dtype=np.int64) * SECOND,
        "open": closes,
        "high": closes,
        "low": closes,
        "close": closes,
    }
    expected = run_backtest(
        ohlcv, "sma_crossover", {"fast": 1, "slow": 2}, fill="next_open", initial_capital=10_000.0
    )
    closed = expected.trades[expected.trades["status"] == TradeStatus.Closed]
    trades = await pool.fetch(
        "select entry_index, exit_index, entry_price, exit_price from execution_trades "
        "where execution_id = $1 order by sequence",
        int(run_id),
    )
    # The run's bar 0 is the first tick after it started (the backtest's bar 1).
    assert [(t["entry_index"] + 1, t["exit_index"] + 1) for t in trades] == [
        (int(t["entry_index"]), int(t["exit_index"])) for t in closed
    ]
    assert [t["entry_price"] for t in trades] == pytest.approx(
        [float(t["entry_price"]) for t in closed]
    )
    orders = await pool.fetch(
        "select client_order_id, status, filled_quantity, quantity from broker_orders "
        "where account_id = $1",
        account,
    )
    assert len(orders) == len({o["client_order_id"] for o in orders})
    assert all(o["status"] == "filled" for o in orders)
    fills = await pool.fetchval(
        "select count(*) from broker_fills f join broker_orders o using (order_id) "
        "where o.account_id = $1",
        account,
    )
    assert fills == len(orders)
    for table in ("execution_events", "execution_trades"):
        sequences = await pool.fetch(
            f"select sequence from {table} where execution_id = $1 order by sequence", int(run_id)
        )
        assert [r["sequence"] for r in sequences] == list(range(1, len(sequences) + 1))


async def test_bad_live_input_is_refused_and_nothing_runs(
    server: LiveServer,
    client: httpx.AsyncClient,
    admin: Account,
    alice: Account,
    bob: Account,
    pool: asyncpg.Pool,
) -> None:
    feed = Feed(client, admin, new_symbol())
    await feed.send(10.0)
    account = await paper_account(client, alice)
    bobs = await paper_account(client, bob)
    base: dict[str, Any] = {
        "strategy": "sma_crossover",
        "params": {"fast": 2, "slow": 5},
        "symbol": feed.symbol,
        "timeframe": "1m",
        "account": account,
    }
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"strategy": "nope"}, "INVALID_PARAMETER", "strategy"),
        ({"strategy": "threshold"}, "INVALID_PARAMETER", "strategy"),
        ({"params": {"fast": 9, "slow": 5}}, "INVALID_PARAMETER", "params"),
        ({"params": {"speed": 1}}, "INVALID_PARAMETER", "params"),
        ({"symbol": "NOSUCH1"}, "INVALID_PARAMETER", "symbol"),
        ({"timeframe": "7q"}, "INVALID_PARAMETER", "timeframe"),
        ({"options": {"fees": 0.1}}, "INVALID_PARAMETER", "options"),
        ({"options": {"size": 2}}, "INVALID_PARAMETER", "options"),
        ({"account": bobs}, "FORBIDDEN", "account"),
        ({"account": "D99999999"}, "NOT_FOUND", "account"),
        ({"initialCapital": -5.0}, "INVALID_PARAMETER", "initialCapital"),
    ]
    before = await pool.fetchval("select count(*) from execution_tasks where task_type = 'live'")
    for change, code, field in cases:
        body = await start_live(client, alice, **{**base, **change})
        assert body.get("errors"), (change, body)
        extensions = body["errors"][0]["extensions"]
        assert (extensions["code"], extensions.get("field")) == (code, field), (change, body)
    after = await pool.fetchval("select count(*) from execution_tasks where task_type = 'live'")
    assert after == before
    # Someone else's run: not theirs to read or stop.
    run = await start_live(client, alice, **base)
    run_id = run["data"]["startLive"]["executionId"]
    body = await graphql(client, operation("StopLiveRun"), {"id": run_id}, token=bob.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await graphql(client, operation("Execution"), {"id": run_id}, token=bob.token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Stopped before any worker took it: it ends at once.
    stopped = await graphql(client, operation("StopLiveRun"), {"id": run_id}, token=alice.token)
    assert stopped["data"]["stopExecution"]["status"] == "STOPPED"


async def test_runs_closing_bars_together_are_written_together_and_alike(
    server: LiveServer,
    client: httpx.AsyncClient,
    worker: None,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
) -> None:
    """Five runs on one symbol close every bar at the same tick: the worker writes them as one
    group, and each run's trades, equity and sequences are exactly a lone run's."""
    feed = Feed(client, admin, new_symbol())
    await feed.send(100.0)
    runs = []
    for _ in range(5):
        account = await paper_account(client, alice)
        runs.append(await started(client, alice, feed, account))
    prices = zigzag(40, seed=11)
    await feed.send(*prices)
    for run_id in runs:
        await processed(client, alice, run_id, len(prices) - 1)
    shapes = []
    for run_id in runs:
        trades = await pool.fetch(
            "select entry_index, exit_index, entry_price, exit_price, units, pnl "
            "from execution_trades where execution_id = $1 order by sequence",
            int(run_id),
        )
        points = (await execution(client, alice, run_id))["equity"]
        events = await pool.fetch(
            "select sequence, event_type from execution_events where execution_id = $1 "
            "order by sequence",
            int(run_id),
        )
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
        shapes.append(
            (
                [tuple(t) for t in trades],
                [p["balance"] for p in points],
                [e["event_type"] for e in events],
            )
        )
    assert shapes[0][0], "the runs should trade"
    assert all(shape == shapes[0] for shape in shapes)
    for run_id in runs:
        await stop(client, alice, run_id, keep=True)
