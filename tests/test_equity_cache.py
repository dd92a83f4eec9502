"""What a completed backtest stores beside its equity curve (LTTB downsamples), and how a chunk's
rows are built: both must serve exactly what computing on request, or the history sources,
serve.

The runs here are driven through ExecutionService.run_backtest with a stand-in job context, so a
test can lose the "worker" after a few chunks and resume from the checkpoint.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import numpy as np
import orjson
import pytest

from engine.records import Direction, ExitReason, TradeStatus, trade_dt
from hub.executions import curves
from hub.executions import repository as repo
from hub.executions.curvecodec import decode_times, encode_times
from hub.executions.documents import EXIT_REASONS, num
from hub.executions.model import ExecutionStatus
from hub.executions.records import Streams
from hub.executions.streams import repository as streams_repo
from hub.executions.topics import EventsHistory, TradesHistory
from hub.jobs.context import ClaimLost
from hub.settings import Settings
from hub.times import iso_ns
from tests.conftest import Account, LiveServer
from tests.helpers import generate_dataset, running_worker

SYMBOL = "LTTB/USD"
BARS = 12_000
CHUNK = 1_000
SMA = {"fast": 10, "slow": 40}


@pytest.fixture(scope="module")
async def dataset(server: LiveServer, settings: Settings, admin: Account) -> dict[str, np.ndarray]:
    async with running_worker(settings):
        await generate_dataset(server.url, admin, SYMBOL, BARS, seed=7)
    return await server.lifespan_state.datasets.candles(  # type: ignore[no-any-return]
        SYMBOL, "1h", start_ns=None, end_ns=None, limit=100_000
    )


class StandIn:
    """The part of a JobContext a backtest uses; loses its claim at the ``lose_at``-th chunk."""

    def __init__(self, lose_at: int | None = None) -> None:
        self.attempt = 1
        self.resources = SimpleNamespace(settings=SimpleNamespace(backtest_chunk_bars=CHUNK))
        self.chunks = 0
        self.lose_at = lose_at

    async def progress(self, done: int, total: int | None = None) -> None:
        self.chunks += 1
        if self.chunks == self.lose_at:
            raise ClaimLost


async def new_execution(pool: asyncpg.Pool, who: Account) -> int:
    task_id = await repo.insert_task(
        pool,
        who.user_id,
        {
            "task_type": "backtest",
            "strategy": "sma_crossover",
            "params": SMA,
            "symbols": [SYMBOL],
            "timeframe": "1h",
            "start_at": None,
            "end_at": None,
            "initial_capital": 10_000.0,
            "options": {"fees": 0.001},
        },
    )
    return await repo.insert_execution(pool, task_id, who.user_id, None, total=BARS)


async def computed(pool: asyncpg.Pool, execution_id: int, max_points: int) -> curves.Curve:
    """LTTB on request: over the stored curve, as the hub computes it for any other request."""
    whole = curves.decode(await streams_repo.equity_chunks(pool, execution_id))
    return curves.downsample(whole, max_points)


async def check_stored(
    server: LiveServer, client: httpx.AsyncClient, pool: asyncpg.Pool, who: Account, run_id: int
) -> dict[int, curves.Curve]:
    from engine import lttb, run_backtest

    executions = server.lifespan_state.executions
    sizes = await pool.fetch(
        "select max_points from execution_equity_lttb where execution_id = $1 order by 1", run_id
    )
    assert [r["max_points"] for r in sizes] == list(curves.STORED_SIZES)
    bars = await server.lifespan_state.datasets.candles(
        SYMBOL, "1h", start_ns=None, end_ns=None, limit=100_000
    )
    expected = run_backtest(bars, "sma_crossover", SMA, fees=0.001, initial_capital=10_000.0)
    first = iso_ns(int(bars["ts"][0]))
    served = {}
    for size in curves.STORED_SIZES:
        seq, ts, balance = await executions.equity(run_id, max_points=size)
        want_seq, want_ts, want_balance = await computed(pool, run_id, size)
        assert np.array_equal(seq, want_seq) and np.array_equal(ts, want_ts)
        assert np.array_equal(balance, want_balance)
        picked = lttb(bars["ts"].astype(np.float64), expected.equity, size)
        assert np.array_equal(seq, picked + 1) and np.array_equal(balance, expected.equity[picked])
        # The interfaces: the stored answer, and a window covering everything (computed).
        base = f"/api/trading/executions/{run_id}/equity/?max_points={size}&page_size=1000"
        stored = [
            (await client.get(f"{base}&page={p}", headers=who.headers)).json() for p in (1, 2)
        ]
        window = f"{base}&start_time={first}"
        fresh = [
            (await client.get(f"{window}&page={p}", headers=who.headers)).json() for p in (1, 2)
        ]
        for a, b in zip(stored, fresh, strict=True):
            assert a.get("equity_curve") == b.get("equity_curve") and a.get("count") == size
            assert a.get("granularity_seconds") == b.get("granularity_seconds")
        served[size] = (seq, ts, balance)
    return served


async def test_a_completed_run_stores_lttb_equal_to_computing_it(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    dataset: dict[str, np.ndarray],
    alice: Account,
) -> None:
    executions = server.lifespan_state.executions
    run_id = await new_execution(pool, alice)
    result = await executions.run_backtest(StandIn(), run_id)
    assert result["status"] == "completed"
    await check_stored(server, client, pool, alice, run_id)
    # Requests the stored forms do not answer are computed as before.
    for size in (2, 3, 999, 1001, BARS, BARS + 1):
        seq, _, balance = await executions.equity(run_id, max_points=size)
        want_seq, _, want_balance = await computed(pool, run_id, size)
        assert np.array_equal(seq, want_seq) and np.array_equal(balance, want_balance)
    since, _, _ = await executions.equity(run_id, since=5, max_points=1000)
    assert since[0] == 6 and len(since) == 1000


async def test_a_resumed_run_stores_the_same_downsamples(
    server: LiveServer,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    dataset: dict[str, np.ndarray],
    alice: Account,
) -> None:
    executions = server.lifespan_state.executions
    run_id = await new_execution(pool, alice)
    with pytest.raises(ClaimLost):
        await executions.run_backtest(StandIn(lose_at=4), run_id)
    assert await repo.status_of(pool, run_id) == ExecutionStatus.RUNNING
    checkpoint = await streams_repo.latest_checkpoint(pool, run_id)
    assert checkpoint is not None and CHUNK <= checkpoint["processed"] < BARS
    assert not await pool.fetchval(
        "select count(*) from execution_equity_lttb where execution_id = $1", run_id
    )
    result = await executions.run_backtest(StandIn(), run_id)
    assert result["status"] == "completed"
    await check_stored(server, client, pool, alice, run_id)


def odd_trades(n: int) -> np.ndarray:
    """Trades whose numbers take every path of the formatting: exponents both ways, NaN,
    infinities, negative zero, sub-second times, every exit reason, an open last trade."""
    rng = np.random.default_rng(11)
    t = np.zeros(n, dtype=trade_dt)
    t["entry_index"] = np.arange(n)
    t["exit_index"] = np.arange(n) + 3
    t["entry_ts"] = 1_600_000_000 * 10**9 + np.arange(n) * 3_600 * 10**9
    t["entry_ts"][::3] += rng.integers(1, 10**9, len(t[::3]))
    t["exit_ts"] = t["entry_ts"] + 7_200 * 10**9 + 1_234
    scale = 10.0 ** rng.integers(-14, 19, n)
    t["entry_price"] = rng.random(n) * scale + 1e-300
    t["exit_price"] = rng.random(n) * scale[::-1] + 1e-300
    t["units"] = rng.random(n) * 10.0 ** rng.integers(-20, 20, n)
    t["pnl"] = rng.standard_normal(n) * scale
    t["return"] = rng.standard_normal(n)
    t["fees"] = rng.random(n) * 1e-6
    t["pnl"][1], t["units"][2], t["exit_price"][3], t["pnl"][4] = np.nan, np.inf, 1e16, -0.0
    t["fees"][5], t["return"][6] = -np.inf, 0.0
    t["direction"] = rng.integers(0, 2, n)
    t["status"] = TradeStatus.Closed
    t["status"][-1] = TradeStatus.Open
    t["exit_reason"] = np.arange(n) % len(ExitReason)
    t["layer"] = rng.integers(0, 5, n)
    return t


def reference_events(trade: Any, layer: Any) -> list[bytes]:
    """A trade's events as the documents spell them, one dict at a time."""
    direction = "long" if trade["direction"] == Direction.Long else "short"
    entry, exit_ = ("buy", "sell") if direction == "long" else ("sell", "buy")
    units = float(trade["units"])
    price, close = num(float(trade["entry_price"])), num(float(trade["exit_price"]))
    out = [
        {"signal": entry, "layer_number": layer, "price": price},
        {"direction": direction, "units": units, "price": price, "action": "open"},
    ]
    if trade["status"] == TradeStatus.Closed:
        reason = EXIT_REASONS.get(int(trade["exit_reason"]), "signal")
        pnl = num(float(trade["pnl"]))
        out += [
            {"signal": exit_, "reason": reason, "price": close},
            {"direction": direction, "units": units, "price": close, "action": "close", "pnl": pnl},
        ]
    return [orjson.dumps(doc) for doc in out]


@pytest.mark.parametrize("with_details", [False, True])
async def test_chunk_rows_and_payloads_match_the_history_sources(
    pool: asyncpg.Pool, with_details: bool
) -> None:
    execution_id = 2**62 + int(with_details)
    for table in ("execution_events", "execution_trades"):
        await pool.execute(f"delete from {table} where execution_id = $1", execution_id)
    trades = odd_trades(300)
    details = (
        [{"layer_number": int(i % 4), "retracement_count": int(i)} for i in range(len(trades))]
        if with_details
        else None
    )
    streams = Streams(execution_id, "ODD\\SYM\t1", "sma_crossover", 2, 0)
    streams.event("status_changed", 1_600_000_000 * 10**9 + 5, {"status": "running", "e": "\\\n"})
    streams.add_trades(trades[:100], None if details is None else details[:100])
    streams.add_trades(trades[100:], None if details is None else details[100:])
    drained = streams.take()
    async with pool.acquire() as conn, conn.transaction():
        await streams_repo.write_trades(conn, drained.trades_copy())
        await streams_repo.write_events(conn, drained.events_copy())
    batches = {topic.rsplit(":", 1)[1]: (first, items) for topic, first, items in drained.batches()}
    topic: Any = SimpleNamespace(key=str(execution_id))  # what the history sources read
    events = await EventsHistory(pool).events_after(topic, 2, 10_000)
    stored_trades = await TradesHistory(pool).events_after(topic, 0, 10_000)
    assert batches["events"] == (3, [e.data_json for e in events])
    assert batches["trades"] == (1, [t.data_json for t in stored_trades])
    bodies = [orjson.loads(e.data_json)["event"] for e in events]
    expected = [{"status": "running", "e": "\\\n"}]
    for i, trade in enumerate(trades):
        layer = details[i]["layer_number"] if details is not None else int(trade["layer"])
        expected += [orjson.loads(b) for b in reference_events(trade, layer)]
    assert bodies == expected
    raw = await pool.fetch(
        "select event::text as event from execution_events where execution_id = $1 "
        "and sequence > 3 order by sequence",
        execution_id,
    )
    want = [
        b
        for i, t in enumerate(trades)
        for b in reference_events(
            t, details[i]["layer_number"] if details is not None else int(t["layer"])
        )
    ]
    assert [r["event"].encode() for r in raw] == want
    for table in ("execution_events", "execution_trades"):
        await pool.execute(f"delete from {table} where execution_id = $1", execution_id)


@pytest.mark.parametrize(
    "ts",
    [
        [],
        [7],
        [1, 5],
        [1, 5, 6],
        [3, 3, 3],
        [0, 3_600, 7_200, 10_800],
        [10, 20, 30, 41, 50],
    ],
)
def test_stored_times_round_trip(ts: list[int]) -> None:
    times = np.array(ts, dtype=np.int64) * 10**9
    stored = encode_times(times)
    assert len(stored) == (
        16 if len(ts) > 2 and len(set(np.diff(ts).tolist())) == 1 else 8 * len(ts)
    )
    decoded = decode_times(stored, len(ts))
    assert decoded.dtype == np.int64 and np.array_equal(decoded, times)
