"""The bar simulator against vectorbt, against a plain-Python reference of its documented rules,
against itself in chunks, on the edges, and on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import (
    BacktestRun,
    RunnerStrategy,
    StrategyUnavailableError,
    run_backtest,
    start_backtest,
)
from engine.records import Direction, ExitReason, TradeStatus, trade_dt
from engine.sim_options import check_bars, sim_config
from engine.simulate import DirectionMode, Fill, Sizing, state_from_dict, state_to_dict
from engine.strategies import hours_mask

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60_000_000_000
T0 = 1_700_000_000_000_000_000
FillName = Literal["close", "next_open"]
Side = Literal["long", "short", "both"]
SizingName = Literal["cash", "units", "notional"]
FAST = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_bars(n: int, seed: int, *, step: int = MINUTE, vol: float = 0.01) -> dict[str, np.ndarray]:
    """A geometric random walk with opens, highs and lows around it."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = close * np.exp(rng.normal(0.0, vol / 3, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol / 2, n)))
    ts = T0 + np.arange(n, dtype=np.int64) * step
    volume = rng.integers(1, 1000, n).astype(np.float64)
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


# ---------------------------------------------------------------------------------------------
# vectorbt


def vbt_crossover(
    bars: dict[str, np.ndarray], fast: int, slow: int, *, fill: str, direction: str, **kwargs: Any
) -> Any:
    """vectorbt's from_signals on a pandas rolling-mean crossover. next_open is the signal
    shifted one bar later and filled at that bar's open."""
    close = pd.Series(bars["close"])
    fast_ma = close.rolling(fast).mean()
    slow_ma = close.rolling(slow).mean()
    both = fast_ma.notna() & slow_ma.notna()
    assert not (fast_ma[both] == slow_ma[both]).any(), "ties make crossings ambiguous"
    up = fast_ma.vbt.crossed_above(slow_ma)
    down = fast_ma.vbt.crossed_below(slow_ma)
    kw: dict[str, Any] = {"init_cash": 10_000.0, "min_size": 0.0, "freq": "1min", **kwargs}
    if fill == "next_open":
        up = up.shift(1, fill_value=False)
        down = down.shift(1, fill_value=False)
        kw["price"] = pd.Series(bars["open"])
    if "sl_stop" in kw or "tp_stop" in kw:
        kw.update(
            open=pd.Series(bars["open"]),
            high=pd.Series(bars["high"]),
            low=pd.Series(bars["low"]),
            stop_exit_price="stopmarket",
        )
    if direction == "long":
        return vbt.Portfolio.from_signals(close, up, down, **kw)
    if direction == "short":
        return vbt.Portfolio.from_signals(close, short_entries=down, short_exits=up, **kw)
    return vbt.Portfolio.from_signals(close, up, down, direction="both", **kw)


def assert_same_as_vbt(result: Any, pf: Any) -> None:
    ours = result.trades
    theirs = pf.trades.records
    assert len(ours) == len(theirs)
    closed = ours["status"] == TradeStatus.Closed
    np.testing.assert_array_equal(ours["entry_index"], theirs["entry_idx"])
    np.testing.assert_array_equal(ours["exit_index"][closed], theirs["exit_idx"][closed])
    assert (ours["exit_index"][~closed] == -1).all()
    np.testing.assert_array_equal(ours["direction"], theirs["direction"])
    np.testing.assert_array_equal(ours["status"], theirs["status"])
    for mine, vbt_name in [
        ("entry_price", "entry_price"),
        ("exit_price", "exit_price"),
        ("units", "size"),
        ("pnl", "pnl"),
        ("return", "return"),
    ]:
        np.testing.assert_allclose(ours[mine], theirs[vbt_name], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        ours["fees"], theirs["entry_fees"] + theirs["exit_fees"], rtol=1e-9, atol=1e-12
    )
    value = pf.value().to_numpy()
    assert result.equity[-1] == pytest.approx(value[-1], rel=1e-9)
    np.testing.assert_allclose(result.equity, value, rtol=1e-9)
    np.testing.assert_allclose(result.cash, pf.cash().to_numpy(), rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(result.position, pf.assets().to_numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fees", [0.0, 0.001, 0.01])
@pytest.mark.parametrize("fill", ["close", "next_open"])
@pytest.mark.parametrize("direction", ["long", "short", "both"])
def test_sma_crossover_equals_vectorbt(
    seed: int, fees: float, fill: FillName, direction: Side
) -> None:
    bars = make_bars(1500, seed)
    result = run_backtest(
        bars, "sma_crossover", {"fast": 10, "slow": 40}, fees=fees, fill=fill, direction=direction
    )
    pf = vbt_crossover(bars, 10, 40, fees=fees, fill=fill, direction=direction)
    assert len(result.trades) > 10
    assert_same_as_vbt(result, pf)


def test_long_fee_heavy_run_keeps_trading_like_vectorbt_with_min_size_zero() -> None:
    bars = make_bars(20_000, 7, vol=0.002)
    result = run_backtest(bars, "sma_crossover", {"fast": 3, "slow": 7}, fees=0.005)
    pf = vbt_crossover(bars, 3, 7, fees=0.005, fill="close", direction="long")
    assert result.equity[-1] < 0.01  # fees ate 99.9999% of the capital; still trading
    assert_same_as_vbt(result, pf)


@pytest.mark.parametrize("direction", ["long", "both"])
@pytest.mark.parametrize(
    ("stop_loss", "take_profit"), [(0.01, None), (None, 0.015), (0.008, 0.012)]
)
def test_stops_equal_vectorbt(
    direction: Side, stop_loss: float | None, take_profit: float | None
) -> None:
    bars = make_bars(2000, 11)
    result = run_backtest(
        bars, "sma_crossover", {"fast": 8, "slow": 30}, fees=0.001, slippage=0.0005,
        direction=direction, stop_loss=stop_loss, take_profit=take_profit,
    )  # fmt: skip
    stops = {k: v for k, v in (("sl_stop", stop_loss), ("tp_stop", take_profit)) if v is not None}
    pf = vbt_crossover(
        bars, 8, 30, fill="close", direction=direction, fees=0.001, slippage=0.0005, **stops
    )
    reasons = set(result.trades["exit_reason"].tolist())
    assert reasons & {ExitReason.StopLoss, ExitReason.TakeProfit}
    assert_same_as_vbt(result, pf)


def test_stops_in_points_equal_vectorbt_fraction_of_the_entry_close() -> None:
    bars = make_bars(2000, 12)
    result = run_backtest(
        bars, "sma_crossover", {"fast": 8, "slow": 30}, stop_loss=0.8, take_profit=1.2,
        stop_unit="points",
    )  # fmt: skip
    # vectorbt reads the stop of the entry bar: points / entry close is the same level.
    close = bars["close"]
    pf = vbt_crossover(
        bars, 8, 30, fill="close", direction="long", sl_stop=pd.Series(0.8 / close),
        tp_stop=pd.Series(1.2 / close),
    )  # fmt: skip
    assert_same_as_vbt(result, pf)


@pytest.mark.parametrize(
    ("direction", "sizing", "size", "vbt_size_type"),
    [
        *[(d, "units", 40.0, "amount") for d in ("long", "short", "both")],
        *[(d, "notional", 3000.0, "value") for d in ("long", "short", "both")],
        ("long", "units", 500.0, "amount"),  # more than the cash buys: cut to what it buys
    ],
)
def test_sizing_equals_vectorbt(
    direction: Side, sizing: SizingName, size: float, vbt_size_type: str
) -> None:
    bars = make_bars(1500, 5)
    result = run_backtest(
        bars, "sma_crossover", {"fast": 10, "slow": 40}, fees=0.002, direction=direction,
        sizing=sizing, size=size,
    )  # fmt: skip
    pf = vbt_crossover(
        bars, 10, 40, fill="close", direction=direction, fees=0.002, size=size,
        size_type=vbt_size_type,
    )  # fmt: skip
    assert_same_as_vbt(result, pf)


def test_a_short_is_covered_in_full_even_beyond_the_cash() -> None:
    bars = make_bars(3, 0)
    bars["close"][:] = [100.0, 100.0, 300.0]
    signals = np.array([4, 0, 8], dtype=np.uint8)
    result = run_signals(bars, signals, {"direction": "short"}).result()
    (t,) = result.trades
    assert t["units"] == 100.0 and t["exit_price"] == 300.0
    assert result.position[-1] == 0.0 and result.cash[-1] == pytest.approx(-10_000.0)


@pytest.mark.parametrize("direction", ["long", "short"])
def test_cash_fraction_equals_vectorbt_percent(direction: Side) -> None:
    bars = make_bars(1500, 6)
    result = run_backtest(
        bars, "sma_crossover", {"fast": 10, "slow": 40}, fees=0.001, direction=direction, size=0.3
    )
    pf = vbt_crossover(
        bars, 10, 40, fill="close", direction=direction, fees=0.001, size=0.3, size_type="percent"
    )
    assert_same_as_vbt(result, pf)


# ---------------------------------------------------------------------------------------------
# A plain-Python reference of the rules in engine/simulate.py's docstring


def reference(
    bars: dict[str, np.ndarray], signals: np.ndarray, opts: dict[str, Any]
) -> dict[str, Any]:
    o, h, lo, c, ts = bars["open"], bars["high"], bars["low"], bars["close"], bars["ts"]
    fill_next = opts.get("fill", "close") == "next_open"
    fees = opts.get("fees", 0.0)
    points_slip = opts.get("slippage_unit", "fraction") == "points"
    slip = opts.get("slippage", 0.0)
    sizing = opts.get("sizing", "cash")
    size = opts.get("size", 1.0)
    sl, tp = opts.get("stop_loss"), opts.get("take_profit")
    points_stop = opts.get("stop_unit", "fraction") == "points"
    max_bars = opts.get("max_bars")
    direction = opts.get("direction", "long")
    hours = opts.get("allowed_hours")
    allowed = (
        [True] * len(c)
        if hours is None
        else [int((t // 3_600_000_000_000) % 24) in hours for t in ts]
    )

    def buy_price(q: float) -> float:
        return float(q + slip if points_slip else q * (1 + slip))

    def sell_price(q: float) -> float:
        return float(q - slip if points_slip else q * (1 - slip))

    s: dict[str, Any] = {"cash": opts.get("initial_capital", 10_000.0), "units": 0.0, "side": 0}
    trades: list[dict[str, Any]] = []

    def trade(target: int, quote: float, reason: int, i: int) -> None:
        if s["side"] != 0:
            px = sell_price(quote) if s["side"] > 0 else buy_price(quote)
            fee = s["units"] * px * fees
            gross = s["units"] * (px - s["entry_px"]) * s["side"]
            s["cash"] += s["side"] * s["units"] * px - fee
            trades.append({
                "entry_index": s["entry_i"], "exit_index": i, "entry_price": s["entry_px"],
                "exit_price": px, "units": s["units"], "pnl": gross - s["entry_fee"] - fee,
                "direction": Direction.Long if s["side"] > 0 else Direction.Short,
                "exit_reason": reason,
            })  # fmt: skip
            s["side"], s["units"] = 0, 0.0
        if target == 0:
            return
        px = buy_price(quote) if target > 0 else sell_price(quote)
        if sizing == "cash":
            units = s["cash"] * size / (1 + fees) / px
        else:
            units = size if sizing == "units" else size / quote
            if target > 0 and units * px * (1 + fees) > s["cash"]:
                units = s["cash"] / (1 + fees) / px
        if units <= 0:
            return
        s["cash"] -= target * units * px + units * px * fees
        s.update(
            side=target, units=units, entry_i=i, entry_px=px, ref=quote, entry_fee=units * px * fees
        )

    equity, cash, position = [], [], []
    pending: tuple[int, int] | None = None
    for i in range(len(c)):
        if pending is not None:
            target, reason = pending
            pending = None
            if target != s["side"]:
                trade(target, o[i], reason, i)
        stopped = False
        if s["side"] != 0 and (sl is not None or tp is not None):
            entry_bar = i == s["entry_i"]
            if i > s["entry_i"] or (fill_next and entry_bar):
                d, ref = s["side"], s["ref"]
                hit = None
                if sl is not None:
                    level = ref - d * sl if points_stop else ref * (1 - d * sl)
                    if not entry_bar and d * (o[i] - level) <= 0:
                        hit = (o[i], ExitReason.StopLoss)
                    elif (lo[i] if d > 0 else h[i]) * d <= level * d:
                        hit = (level, ExitReason.StopLoss)
                if hit is None and tp is not None:
                    level = ref + d * tp if points_stop else ref * (1 + d * tp)
                    if not entry_bar and d * (o[i] - level) >= 0:
                        hit = (o[i], ExitReason.TakeProfit)
                    elif (h[i] if d > 0 else lo[i]) * d >= level * d:
                        hit = (level, ExitReason.TakeProfit)
                if hit is not None:
                    trade(0, hit[0], hit[1], i)
                    stopped = True
        if not (stopped and not fill_next):
            flags = int(signals[i])
            le, lx, se, sx = (bool(flags & b) for b in (1, 2, 4, 8))
            if direction == "long":
                se = sx = False
            if direction == "short":
                le = lx = False
            if le and lx:
                le = lx = False
            if se and sx:
                se = sx = False
            if le and se:
                le = se = False
            if not allowed[i]:
                le = se = False
            side = s["side"]
            target, reason = side, ExitReason.Signal
            if side > 0:
                target = -1 if se else (0 if lx else 1)
            elif side < 0:
                target = 1 if le else (0 if sx else -1)
            else:
                target = 1 if le else (-1 if se else 0)
            if target == side != 0:
                held = i + (1 if fill_next else 0) - s["entry_i"]
                if not allowed[i]:
                    target, reason = 0, ExitReason.Hours
                elif max_bars is not None and held >= max_bars:
                    target, reason = 0, ExitReason.MaxBars
            if target != side:
                if fill_next:
                    pending = (target, reason)
                else:
                    trade(target, c[i], reason, i)
        units = s["units"] * s["side"]
        equity.append(s["cash"] + units * c[i])
        cash.append(s["cash"])
        position.append(units)
    return {
        "trades": trades,
        "equity": np.array(equity),
        "cash": np.array(cash),
        "position": np.array(position),
    }


def run_signals(bars: dict[str, np.ndarray], signals: np.ndarray, opts: dict[str, Any]) -> Any:
    cfg, hours = sim_config(opts)
    checked = check_bars(bars, ["open", "high", "low", "close"])
    return BacktestRun(checked, signals, cfg, hours_mask(checked["ts"], hours))


option_sets = st.fixed_dictionaries(
    {},
    optional={
        "fill": st.sampled_from(["close", "next_open"]),
        "direction": st.sampled_from(["long", "short", "both"]),
        "fees": st.sampled_from([0.0, 0.001, 0.02]),
        "slippage": st.sampled_from([0.0, 0.001]),
        "stop_loss": st.sampled_from([0.005, 0.02]),
        "take_profit": st.sampled_from([0.005, 0.03]),
        "max_bars": st.integers(1, 12),
        "allowed_hours": st.lists(st.integers(0, 23), min_size=1, max_size=20, unique=True),
        "sizing": st.sampled_from(["cash", "units", "notional"]),
    },
)


def sized(opts: dict[str, Any]) -> dict[str, Any]:
    sizing = opts.get("sizing", "cash")
    return {**opts, "size": {"cash": 0.7, "units": 30.0, "notional": 2500.0}[sizing]}


signal_arrays = st.lists(st.sampled_from([0] * 12 + list(range(1, 16))), min_size=0, max_size=150)


@FAST
@given(opts=option_sets, flags=signal_arrays, seed=st.integers(0, 10_000))
def test_simulator_follows_its_documented_rules(
    opts: dict[str, Any], flags: list[int], seed: int
) -> None:
    opts = sized(opts)
    bars = make_bars(len(flags), seed, step=17 * MINUTE)
    signals = np.array(flags, dtype=np.uint8)
    result = run_signals(bars, signals, opts).result()
    ref = reference(bars, signals, opts)
    closed = result.trades[result.trades["status"] == TradeStatus.Closed]
    assert len(closed) == len(ref["trades"])
    for ours, theirs in zip(closed, ref["trades"], strict=True):
        for key, value in theirs.items():
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    np.testing.assert_allclose(result.equity, ref["equity"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result.cash, ref["cash"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(result.position, ref["position"], rtol=1e-9, atol=1e-9)


def test_a_bar_touching_both_levels_exits_at_the_stop_loss() -> None:
    bars = make_bars(4, 0)
    bars["close"][:] = [100.0, 100.0, 100.0, 100.0]
    bars["open"][:] = 100.0
    bars["high"][:] = [100.0, 100.0, 120.0, 100.0]
    bars["low"][:] = [100.0, 100.0, 80.0, 100.0]
    signals = np.array([1, 0, 0, 0], dtype=np.uint8)
    result = run_signals(bars, signals, {"stop_loss": 0.1, "take_profit": 0.1}).result()
    (t,) = result.trades
    assert (t["exit_index"], t["exit_reason"], t["exit_price"]) == (2, ExitReason.StopLoss, 90.0)


# ---------------------------------------------------------------------------------------------
# Chunks


def same_metrics(a: dict[str, float], b: dict[str, float]) -> bool:
    """Bit for bit, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in a
    )


def assert_same_result(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(a.trades, b.trades)
    np.testing.assert_array_equal(a.equity, b.equity)
    np.testing.assert_array_equal(a.cash, b.cash)
    np.testing.assert_array_equal(a.position, b.position)
    assert same_metrics(a.metrics, b.metrics)


@FAST
@given(opts=option_sets, cuts=st.lists(st.integers(0, 400), max_size=8), seed=st.integers(0, 100))
def test_chunked_runs_equal_one_pass(opts: dict[str, Any], cuts: list[int], seed: int) -> None:
    opts = sized(opts)
    bars = make_bars(400, seed)
    whole = run_backtest(bars, "sma_crossover", {"fast": 3, "slow": 9}, **opts)
    run = start_backtest(bars, "sma_crossover", {"fast": 3, "slow": 9}, **opts)
    chunks = []
    for cut in sorted(cuts):
        if cut > run.processed:
            chunks.append(run.step(cut - run.processed))
    chunks.append(run.step())
    assert run.done
    assert_same_result(run.result(), whole)
    np.testing.assert_array_equal(np.concatenate([c.equity for c in chunks]), whole.equity)
    closed = whole.trades[whole.trades["status"] == TradeStatus.Closed]
    np.testing.assert_array_equal(np.concatenate([c.trades for c in chunks]), closed)
    assert same_metrics(chunks[-1].metrics, run.metrics())


def test_a_run_resumes_from_a_json_checkpoint_of_its_state_in_a_new_runner() -> None:
    bars = make_bars(3000, 4)
    opts: dict[str, Any] = {
        "fill": "next_open",
        "direction": "both",
        "stop_loss": 0.01,
        "fees": 0.001,
    }
    whole = run_backtest(bars, "ema_crossover", {"fast": 5, "slow": 20}, **opts)
    first = start_backtest(bars, "ema_crossover", {"fast": 5, "slow": 20}, **opts)
    first.step(1234)
    checkpoint = json.dumps(state_to_dict(first.state))
    state = state_from_dict(json.loads(checkpoint))
    assert state == first.state
    second = start_backtest(bars, "ema_crossover", {"fast": 5, "slow": 20}, state=state, **opts)
    rest = second.step()
    assert second.done
    np.testing.assert_array_equal(rest.equity, whole.equity[1234:])
    closed = whole.trades[whole.trades["status"] == TradeStatus.Closed]
    np.testing.assert_array_equal(rest.trades, closed[closed["exit_index"] >= 1234])
    assert same_metrics(rest.metrics, whole.metrics)
    assert np.isnan(second.result().equity[:1234]).all()


def test_a_trade_buffer_that_fills_up_is_grown_without_changing_the_result() -> None:
    bars = make_bars(5000, 9)
    signals = np.tile(np.array([1, 2], dtype=np.uint8), 2500)  # in on even bars, out on odd
    run = run_signals(bars, signals, {})
    chunk = run.step()  # the first buffer holds 5000 // 32 records
    assert len(chunk.trades) == 2500
    np.testing.assert_array_equal(chunk.trades["id"], np.arange(2500))
    np.testing.assert_array_equal(chunk.trades["exit_index"], np.arange(1, 5000, 2))


# ---------------------------------------------------------------------------------------------
# Edges


@FAST
@given(opts=option_sets)
def test_empty_input(opts: dict[str, Any]) -> None:
    result = run_backtest(make_bars(0, 0), "sma_crossover", {"fast": 2, "slow": 3}, **sized(opts))
    assert result.trades.dtype == trade_dt and len(result.trades) == 0
    assert result.equity.shape == result.cash.shape == result.position.shape == (0,)
    assert result.metrics["processed"] == 0
    assert result.metrics["total_return"] == 0.0
    assert np.isnan(result.metrics["sharpe_ratio"])


@FAST
@given(seed=st.integers(0, 1000), fill=st.sampled_from(["close", "next_open"]))
def test_a_single_bar(seed: int, fill: FillName) -> None:
    bars = make_bars(1, seed)
    result = run_backtest(bars, "sma_crossover", {"fast": 1, "slow": 2}, fill=fill)
    assert len(result.trades) == 0
    assert result.equity.tolist() == [10_000.0]
    assert result.metrics["processed"] == 1


@FAST
@given(n=st.integers(0, 49), seed=st.integers(0, 1000))
def test_all_nan_warm_up_means_no_trade(n: int, seed: int) -> None:
    result = run_backtest(make_bars(n, seed), "sma_crossover", {"fast": 10, "slow": 50}, fees=0.01)
    assert len(result.trades) == 0
    assert (result.equity == 10_000.0).all() and (result.position == 0.0).all()
    assert result.metrics["total_trades"] == 0 and np.isnan(result.metrics["win_rate"])


@FAST
@given(opts=option_sets, n=st.integers(1, 300), seed=st.integers(0, 1000))
def test_no_trades_without_signals(opts: dict[str, Any], n: int, seed: int) -> None:
    result = run_signals(make_bars(n, seed), np.zeros(n, dtype=np.uint8), sized(opts)).result()
    assert len(result.trades) == 0
    assert (result.equity == 10_000.0).all() and (result.position == 0.0).all()
    m = result.metrics
    assert (m["total_pnl"], m["max_drawdown"], m["exposure"], m["total_trades"]) == (
        0.0,
        0.0,
        0.0,
        0,
    )


def test_no_trades_on_a_trend_that_never_crosses() -> None:
    bars = make_bars(300, 0)
    bars["close"] = 100.0 * np.exp(np.linspace(0.0, 1.0, 300))
    bars["open"], bars["high"], bars["low"] = bars["close"], bars["close"], bars["close"]
    result = run_backtest(bars, "sma_crossover", {"fast": 5, "slow": 20})
    assert len(result.trades) == 0
    assert result.metrics["exposure"] == 0.0


@FAST
@given(
    direction=st.sampled_from(["long", "short"]),
    fill=st.sampled_from(["close", "next_open"]),
    fees=st.sampled_from([0.0, 0.001]),
    n=st.integers(3, 400),
    seed=st.integers(0, 1000),
    data=st.data(),
)
def test_a_position_open_at_the_end_is_reported_open_and_marked_to_the_last_close(
    direction: str, fill: str, fees: float, n: int, seed: int, data: st.DataObject
) -> None:
    bars = make_bars(n, seed)
    at = data.draw(st.integers(0, n - 2), label="entry signal bar")
    signals = np.zeros(n, dtype=np.uint8)
    signals[at] = 1 if direction == "long" else 4
    opts = {"fees": fees, "direction": direction, "fill": fill}
    result = run_signals(bars, signals, opts).result()
    (t,) = result.trades
    entry = at + (fill == "next_open")
    assert t["status"] == TradeStatus.Open and t["exit_index"] == -1
    assert t["exit_reason"] == ExitReason.NoExit
    assert t["exit_price"] == bars["close"][-1] and t["exit_ts"] == bars["ts"][-1]
    assert (t["entry_index"], t["entry_ts"]) == (entry, bars["ts"][entry])
    sign = 1 if direction == "long" else -1
    pnl = sign * t["units"] * (bars["close"][-1] - t["entry_price"]) - t["fees"]
    assert t["pnl"] == pytest.approx(pnl, rel=1e-9, abs=1e-9)
    assert result.metrics["unrealized_pnl"] == pytest.approx(pnl, rel=1e-9, abs=1e-9)
    assert result.metrics["total_trades"] == 0
    assert result.equity[-1] == pytest.approx(10_000.0 + pnl, rel=1e-12)


def test_an_open_position_is_reported_like_vectorbt_reports_it() -> None:
    bars = make_bars(500, 3)
    close = pd.Series(bars["close"])
    entries = pd.Series(np.arange(500) == 100)
    pf = vbt.Portfolio.from_signals(
        close, entries, False, fees=0.001, init_cash=10_000.0, min_size=0
    )
    result = run_signals(bars, entries.to_numpy().astype(np.uint8), {"fees": 0.001}).result()
    assert_same_as_vbt(result, pf)


@FAST
@given(seed=st.integers(0, 1000), gap_at=st.integers(1, 299), gap=st.integers(2, 10_000))
def test_a_gap_in_timestamps_changes_times_and_annualisation_only(
    seed: int, gap_at: int, gap: int
) -> None:
    bars = make_bars(300, seed)
    gapped = dict(bars)
    gapped["ts"] = bars["ts"].copy()
    gapped["ts"][gap_at:] += gap * MINUTE
    a = run_backtest(bars, "sma_crossover", {"fast": 3, "slow": 8}, fees=0.001)
    b = run_backtest(gapped, "sma_crossover", {"fast": 3, "slow": 8}, fees=0.001)
    np.testing.assert_array_equal(a.equity, b.equity)
    np.testing.assert_array_equal(b.trades["entry_ts"], gapped["ts"][b.trades["entry_index"]])
    assert a.metrics["total_pnl"] == b.metrics["total_pnl"]
    if not np.isnan(a.metrics["sharpe_ratio"]):
        ratio = b.metrics["sharpe_ratio"] / a.metrics["sharpe_ratio"]
        assert ratio == pytest.approx(np.sqrt(299 / (299 + gap)), rel=1e-9)  # span: 299 + gap min


def test_kernels_run_with_the_jit_disabled() -> None:
    code = (
        "import numpy as np\n"
        "from engine.backtest import run_backtest\n"
        "c = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, .01, 300)))\n"
        "b = dict(ts=np.arange(300, dtype=np.int64), open=c, high=c * 1.01, low=c * .99, close=c)\n"
        "r = run_backtest(b, 'sma_crossover', dict(fast=3, slow=9), fill='next_open', direction='both',\n"
        "                 stop_loss=0.01, fees=0.001)\n"
        "print(repr(float(r.equity[-1])), len(r.trades))\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    c = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 300)))
    b = {
        "ts": np.arange(300, dtype=np.int64),
        "open": c,
        "high": c * 1.01,
        "low": c * 0.99,
        "close": c,
    }
    r = run_backtest(
        b, "sma_crossover", {"fast": 3, "slow": 9}, fill="next_open", direction="both",
        stop_loss=0.01, fees=0.001,
    )  # fmt: skip
    assert out.stdout.split() == [repr(float(r.equity[-1])), str(len(r.trades))]


# ---------------------------------------------------------------------------------------------
# Bad input


def bad(match: str, bars: dict[str, Any] | None = None, strategy: str = "sma_crossover",
        params: dict[str, Any] | None = None, **opts: Any) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=match):
        run_backtest(make_bars(60, 0) if bars is None else bars, strategy, params, **opts)


def test_bad_input_names_the_argument_and_the_value() -> None:
    short_close = make_bars(60, 0)
    short_close["close"] = short_close["close"][:59]
    bad(r"ohlcv\['close'\] must have one value per bar .*\(60\), got shape \(59,\)", short_close)
    unsorted = make_bars(60, 0)
    unsorted["ts"][[10, 11]] = unsorted["ts"][[11, 10]]
    bad(r"ohlcv\['ts'\] must be strictly increasing, got ts\[11\]=\d+ after ts\[10\]", unsorted)
    repeated = make_bars(60, 0)
    repeated["ts"][5] = repeated["ts"][4]
    bad(r"ohlcv\['ts'\] must be strictly increasing, got ts\[5\]", repeated)
    negative = make_bars(60, 0)
    negative["close"][7] = -1.5
    bad(r"ohlcv\['close'\] must be positive and finite, got -1.5 at bar 7", negative)
    missing = make_bars(60, 0)
    missing["close"][3] = np.nan
    bad(r"ohlcv\['close'\] must be positive and finite, got nan at bar 3", missing)
    no_open = make_bars(60, 0)
    del no_open["open"]
    bad(r"ohlcv is missing column 'open'", no_open, fill="next_open")
    bad(r"params\['fast'\] must be smaller than params\['slow'\], got fast=50 and slow=50",
        params={"fast": 50, "slow": 50})  # fmt: skip
    bad(
        r"params\['fast'\] must be smaller .* got fast=60 and slow=20",
        params={"fast": 60, "slow": 20},
    )
    bad(r"unknown strategy 'sma'", strategy="sma")
    bad(r"unknown parameter 'window' for strategy 'sma_crossover'", params={"window": 3})
    bad(r"params\['fast'\] of sma_crossover must be an integer, got 2.5", params={"fast": 2.5})
    bad(
        r"params\['slow'\] of sma_crossover must be within \(2, None\).*got 1",
        params={"fast": 1, "slow": 1},
    )
    bad(r"unknown option 'fee'", fee=0.1)
    bad(r"fill must be one of \('close', 'next_open'\), got 'open'", fill="open")
    bad(r"direction must be one of .* got 'up'", direction="up")
    bad(r"fees must be finite, >= 0.0 and <= 0.5, got -0.1", fees=-0.1)
    bad(r"initial_capital must be finite, > 0.0, got 0", initial_capital=0)
    bad(r"size is a cash fraction for sizing='cash' and must be <= 1, got 2.0", size=2.0)
    bad(r"stop_loss must be finite, > 0.0, got -0.01", stop_loss=-0.01)
    bad(r"max_bars must be a positive integer or None, got 0", max_bars=0)
    bad(r"allowed_hours must hold hours 0-23, got 24", allowed_hours=[9, 24])


def test_option_names_map_to_the_kernel_codes() -> None:
    cfg, _ = sim_config(
        {"fill": "next_open", "direction": "both", "sizing": "notional", "size": 5.0}
    )
    assert (cfg.fill, cfg.direction, cfg.sizing) == (
        Fill.NextOpen,
        DirectionMode.Both,
        Sizing.Notional,
    )
    cfg, _ = sim_config({"direction": "short", "sizing": "units", "size": 5.0})
    assert (cfg.fill, cfg.direction, cfg.sizing) == (Fill.Close, DirectionMode.Short, Sizing.Units)


def test_bad_input_is_refused_before_any_work() -> None:
    bars = make_bars(60, 0)
    bars["low"][59] = -1.0
    with pytest.raises(ValueError, match=r"ohlcv\['low'\]"):
        start_backtest(bars, "sma_crossover", {"fast": 2, "slow": 5}, stop_loss=0.01)


def test_a_missing_runner_module_is_a_clear_error() -> None:
    entry = RunnerStrategy(
        "ghost", "nothing", "engine.no_such_module:run", "engine.no_such_module:P"
    )
    with pytest.raises(
        StrategyUnavailableError, match=r"'ghost' needs module 'engine.no_such_module'"
    ):
        _ = entry.runner
    with pytest.raises(StrategyUnavailableError, match="ghost"):
        _ = entry.params


def test_runner_strategies_import_their_module_only_when_used() -> None:
    code = (
        "import sys\n"
        "import engine.backtest as b\n"
        "assert 'engine.floor' not in sys.modules and 'engine.ticks' not in sys.modules\n"
        "assert [p['name'] for p in b.STRATEGIES['floor'].params]\n"
        "assert 'engine.floor' in sys.modules and 'engine.ticks' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_run_backtest_hands_runner_strategies_only_the_options_given() -> None:
    bars = make_bars(400, 1)
    with pytest.raises(ValueError, match="stop_loss"):
        run_backtest(bars, "max_points", {}, stop_loss=0.01)
    with pytest.raises(ValueError, match="no chunked run"):
        start_backtest(bars, "max_points", {})
