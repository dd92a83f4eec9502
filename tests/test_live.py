"""Live paper runs through the real interfaces: a dataset replayed through a live run trades
bar for bar like ``engine.run_backtest(..., fill="next_open")``; stop with and without closing;
bad input refused with nothing left running."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import numpy as np
import pytest

from engine.backtest import run_backtest
from engine.records import TradeStatus
from hub.settings import Settings
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, graphql, running_worker
from tests.test_marketdata import make_dataset, start_replay

STRATEGIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("sma_crossover", {"fast": 5, "slow": 20}, {"direction": "long"}),
    ("ema_crossover", {"fast": 4, "slow": 12}, {"direction": "both"}),
    ("rsi_reversion", {"window": 7, "lower": 35.0, "upper": 65.0}, {"direction": "long"}),
    ("bollinger_breakout", {"window": 10, "nstd": 1.5}, {"direction": "both"}),
]


def walk(n: int, seed: int) -> list[tuple[float, float, float, float, float]]:
    """OHLCV bars of a random walk (each open is the previous close, as replayed ticks are)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.004, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.004, n))
    volume = rng.uniform(1, 10, n)
    return list(zip(opens, high, low, close, volume, strict=True))


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


async def paper_account(client: httpx.AsyncClient, who: Account, **terms: Any) -> str:
    body = await graphql(
        client,
        operation("CreatePaperAccount"),
        {"input": {"name": f"live-{secrets.token_hex(4)}", "initialBalance": 100_000, **terms}},
        token=who.token,
    )
    assert "errors" not in body, body
    return str(body["data"]["createPaperAccount"]["id"])


async def start_live(client: httpx.AsyncClient, who: Account, **input: Any) -> dict[str, Any]:
    body = await graphql(client, operation("StartLive"), {"input": input}, token=who.token)
    return body


async def execution(client: httpx.AsyncClient, who: Account, execution_id: str) -> dict[str, Any]:
    body = await graphql(client, operation("Execution"), {"id": execution_id}, token=who.token)
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]["execution"]
    return found


@pytest.mark.parametrize(
    ("strategy", "params", "options"), STRATEGIES, ids=[s[0] for s in STRATEGIES]
)
async def test_a_replayed_dataset_trades_bar_for_bar_like_the_next_open_backtest(
    server: LiveServer,
    client: httpx.AsyncClient,
    worker: None,
    admin: Account,
    alice: Account,
    pool: asyncpg.Pool,
    strategy: str,
    params: dict[str, Any],
    options: dict[str, Any],
) -> None:
    n = 240
    bars = walk(n, seed=len(strategy))
    symbol = f"LV{secrets.token_hex(3).upper()}"
    dataset_id, start = await make_dataset(server, admin, symbol, "1m", bars)
    fee, slip_bps, capital = 0.001, 5.0, 50_000.0
    account = await paper_account(client, alice, feeRate=fee, slippageBps=slip_bps)
    started = await start_live(
        client,
        alice,
        strategy=strategy,
        params=params,
        symbol=symbol,
        timeframe="1m",
        account=account,
        initialCapital=capital,
        options=options,
    )
    assert "errors" not in started, started
    run_id = started["data"]["startLive"]["executionId"]

    async def running() -> bool:
        return (await execution(client, alice, run_id))["status"] == "RUNNING"

    await eventually(running, timeout=30)
    await start_replay(client, admin.token, datasetId=dataset_id)

    async def all_bars_closed() -> bool:
        # The last bar closes only when a later tick (or its period's end) comes: n - 1.
        return (await execution(client, alice, run_id))["processed"] >= n - 1

    await eventually(all_bars_closed, timeout=120)

    columns = np.array(bars, dtype=np.float64).T
    ohlcv = {
        "ts": start + np.arange(n, dtype=np.int64) * 60_000_000_000,
        "open": columns[0],
        "high": columns[1],
        "low": columns[2],
        "close": columns[3],
    }
    expected = run_backtest(
        ohlcv,
        strategy,
        params,
        fill="next_open",
        fees=fee,
        slippage=slip_bps / 10_000,
        initial_capital=capital,
        **options,
    )
    closed = expected.trades[expected.trades["status"] == TradeStatus.Closed]
    trades = await pool.fetch(
        """select entry_index, exit_index, direction, entry_price, exit_price, units, pnl
           from execution_trades where execution_id = $1 order by sequence""",
        int(run_id),
    )
    assert len(closed) > 2, "the oracle should trade"
    assert [(t["entry_index"], t["exit_index"], t["direction"]) for t in trades] == [
        (int(t["entry_index"]), int(t["exit_index"]), "long" if t["direction"] == 0 else "short")
        for t in closed
    ]
    for got, want in zip(trades, closed, strict=True):
        assert got["entry_price"] == pytest.approx(float(want["entry_price"]), rel=1e-9)
        assert got["exit_price"] == pytest.approx(float(want["exit_price"]), rel=1e-9)
        assert got["units"] == pytest.approx(float(want["units"]), rel=1e-9)
        assert got["pnl"] == pytest.approx(float(want["pnl"]), rel=1e-6, abs=1e-6)
    # The equity curve, bar for bar (the live run has no point for the still open last bar).
    points = (await execution(client, alice, run_id))["equity"]
    got_equity = np.array([p["balance"] for p in points])
    np.testing.assert_allclose(got_equity, expected.equity[: n - 1], rtol=1e-9)
    # Every order is the run's own and filled once; sequences are gap-free.
    orders = await pool.fetch(
        "select client_order_id, status from broker_orders where account_id = $1", account
    )
    assert all(o["status"] == "filled" for o in orders)
    assert len(orders) == len({o["client_order_id"] for o in orders})
    sequences = await pool.fetch(
        "select sequence from execution_events where execution_id = $1 order by sequence",
        int(run_id),
    )
    assert [r["sequence"] for r in sequences] == list(range(1, len(sequences) + 1))
