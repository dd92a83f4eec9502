"""Backtest metrics against textbook formulas written here with pandas, and against vectorbt."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import run_backtest, start_backtest
from engine.metrics import METRIC_KEYS, backtest_metrics
from engine.records import TradeStatus, trade_dt

MINUTE = 60_000_000_000
YEAR = 365 * 24 * 3600 * 10**9
FAST = settings(derandomize=True, deadline=None)


def make_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE
    return {"ts": ts, "open": close, "high": close, "low": close, "close": close}


def textbook(
    ts: np.ndarray, equity: np.ndarray, position: np.ndarray, trades: np.ndarray, capital: float
) -> dict[str, float]:
    """The definitions of engine/metrics.py, one pandas expression each."""
    values = pd.Series(np.concatenate([[capital], equity]))  # the capital stands before bar 0
    r = values.pct_change().iloc[1:]
    n = len(equity)
    closed = trades[trades["status"] == TradeStatus.Closed]
    pnl = pd.Series(closed["pnl"])
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    peak = values.cummax()
    drawdown = peak - values
    dd_pct = (drawdown / peak).max()
    span = (ts[-1] - ts[0]) / YEAR if n else 0.0
    per_year = (n - 1) / span if n >= 2 and span > 0 else math.nan
    std = r.std(ddof=1)
    downside = math.sqrt((r.clip(upper=0.0) ** 2).mean()) if n else 0.0
    growth = values.iloc[-1] / capital
    with np.errstate(over="ignore"):  # a year of 20% bars overflows; both sides say inf
        cagr = growth ** (per_year / n) - 1 if n else math.nan

    def ratio(num: float, den: float) -> float:
        with np.errstate(over="ignore"):
            return float(np.float64(num) / den) if den and not math.isnan(den) else math.nan

    return {
        "processed": n,
        "total_return": (values.iloc[-1] - capital) / capital * 100,
        "total_pnl": values.iloc[-1] - capital,
        "realized_pnl": pnl.sum(),
        "unrealized_pnl": trades["pnl"][trades["status"] == TradeStatus.Open].sum(),
        "total_trades": len(pnl),
        "winning_trades": len(wins),
        "losing_trades": len(losses),
        "win_rate": ratio(len(wins), len(pnl)) * 100,
        "max_drawdown": drawdown.max(),
        "max_drawdown_pct": dd_pct * 100,
        "sharpe_ratio": ratio(r.mean(), std) * math.sqrt(per_year) if n >= 2 else math.nan,
        "sortino_ratio": ratio(r.mean(), downside) * math.sqrt(per_year) if n >= 2 else math.nan,
        "calmar_ratio": ratio(cagr, dd_pct) if n >= 2 else math.nan,
        "profit_factor": ratio(wins.sum(), -losses.sum()),
        "average_win": wins.mean() if len(wins) else math.nan,
        "average_loss": -losses.mean() if len(losses) else math.nan,
        "exposure": (position != 0).mean() * 100 if n else math.nan,
    }


def assert_metrics(ours: dict[str, float], expected: dict[str, float], rel: float = 1e-9) -> None:
    assert list(ours) == list(METRIC_KEYS)
    for key in METRIC_KEYS:
        want = expected[key]
        if math.isnan(want):
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(want, rel=rel, abs=1e-9), key


def trade_array(pnls: list[float], open_pnl: float | None) -> np.ndarray:
    trades = np.zeros(len(pnls) + (open_pnl is not None), dtype=trade_dt)
    trades["pnl"][: len(pnls)] = pnls
    trades["status"][: len(pnls)] = TradeStatus.Closed
    if open_pnl is not None:
        trades["pnl"][-1] = open_pnl
        trades["status"][-1] = TradeStatus.Open
    return trades


@FAST
@given(
    returns=st.lists(st.floats(-0.2, 0.2), min_size=0, max_size=300),
    step=st.integers(1, 10**12),
    pnls=st.lists(st.floats(-500, 500), max_size=30),
    open_pnl=st.none() | st.floats(-100, 100),
    capital=st.floats(100.0, 1e7),
)
def test_metrics_equal_their_textbook_formulas(
    returns: list[float], step: int, pnls: list[float], open_pnl: float | None, capital: float
) -> None:
    n = len(returns)
    equity = capital * np.cumprod(1.0 + np.array(returns))
    position = np.where(np.array(returns) != 0.0, 1.0, 0.0)
    ts = np.arange(n, dtype=np.int64) * step
    trades = trade_array(pnls, open_pnl)
    ours = backtest_metrics(ts, equity, position, trades, capital)
    expected = textbook(ts, equity, position, trades, capital)
    if variance_is_rounding_noise(capital, equity):
        # Returns equal but for their last bits: the engine's variance from running sums and
        # pandas' two-pass one are both rounding noise there, and so is any Sharpe ratio of
        # them (pandas' gave -3.5e23 where the engine's variance came out zero, NaN).
        expected["sharpe_ratio"] = ours["sharpe_ratio"]
    assert_metrics(ours, expected)


def variance_is_rounding_noise(capital: float, equity: np.ndarray) -> bool:
    """Whether the bar returns' sample variance lies within the rounding error of the
    sum-of-squares formula engine/metrics.py folds them with (a few ulps of the sum of
    squares)."""
    values = np.concatenate([[capital], equity])
    r = values[1:] / values[:-1] - 1.0
    if r.shape[0] < 2:
        return False
    return bool(r.var(ddof=1) <= 16 * np.finfo(np.float64).eps * (r**2).sum() / (r.shape[0] - 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "options", [{}, {"direction": "both", "fees": 0.002}, {"stop_loss": 0.01, "fill": "next_open"}]
)
def test_backtest_metrics_equal_the_formulas_on_its_own_output(
    seed: int, options: dict[str, Any]
) -> None:
    bars = make_bars(3000, seed)
    result = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 40}, **options)
    expected = textbook(bars["ts"], result.equity, result.position, result.trades, 10_000.0)
    assert_metrics(result.metrics, expected)


@pytest.mark.parametrize("seed", [3, 4])
def test_folding_while_simulating_equals_folding_the_finished_arrays(seed: int) -> None:
    bars = make_bars(5000, seed)
    result = run_backtest(
        bars, "ema_crossover", {"fast": 5, "slow": 30}, direction="both", fees=0.001
    )
    assert result.trades["status"][-1] == TradeStatus.Open
    again = backtest_metrics(bars["ts"], result.equity, result.position, result.trades, 10_000.0)
    defined = {k: v for k, v in again.items() if not math.isnan(v)}
    assert defined == {k: v for k, v in result.metrics.items() if not math.isnan(v)}


def test_checkpoint_metrics_cover_the_bars_simulated_so_far() -> None:
    bars = make_bars(2000, 5)
    run = start_backtest(bars, "sma_crossover", {"fast": 5, "slow": 20}, fees=0.001)
    chunk = run.step(1200)
    part = {k: v[:1200] for k, v in bars.items()}
    whole_part = run_backtest(part, "sma_crossover", {"fast": 5, "slow": 20}, fees=0.001)
    assert chunk.metrics["processed"] == 1200
    assert_metrics(chunk.metrics, whole_part.metrics, rel=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_vectorbt_on_regular_bars(seed: int) -> None:
    bars = make_bars(4000, seed)
    result = run_backtest(bars, "sma_crossover", {"fast": 10, "slow": 50}, fees=0.001)
    close = pd.Series(bars["close"])
    fast, slow = close.rolling(10).mean(), close.rolling(50).mean()
    pf = vbt.Portfolio.from_signals(
        close, fast.vbt.crossed_above(slow), fast.vbt.crossed_below(slow), fees=0.001,
        init_cash=10_000.0, min_size=0.0, freq="1min",
    )  # fmt: skip
    m = result.metrics
    assert m["total_return"] == pytest.approx(pf.total_return() * 100, rel=1e-9)
    assert m["max_drawdown_pct"] == pytest.approx(-pf.max_drawdown() * 100, rel=1e-9)
    assert m["sharpe_ratio"] == pytest.approx(pf.sharpe_ratio(), rel=1e-9)
    assert m["sortino_ratio"] == pytest.approx(pf.sortino_ratio(), rel=1e-9)
    assert m["calmar_ratio"] == pytest.approx(pf.calmar_ratio(), rel=1e-9)
    assert m["win_rate"] == pytest.approx(pf.trades.closed.win_rate() * 100, rel=1e-9)
    assert m["profit_factor"] == pytest.approx(pf.trades.closed.profit_factor(), rel=1e-9)


def test_undefined_ratios_are_nan() -> None:
    ts = np.arange(5, dtype=np.int64) * MINUTE
    flat = np.full(5, 1000.0)
    m = backtest_metrics(ts, flat, np.zeros(5), trade_array([10.0, 20.0], None), 1000.0)
    assert m["total_return"] == 0.0 and m["max_drawdown"] == 0.0 and m["max_drawdown_pct"] == 0.0
    for key in ("sharpe_ratio", "sortino_ratio", "calmar_ratio", "profit_factor", "average_loss"):
        assert math.isnan(m[key]), key
    assert m["win_rate"] == 100.0 and m["average_win"] == 15.0 and m["exposure"] == 0.0


def test_empty_and_single_bar() -> None:
    none = backtest_metrics(
        np.zeros(0, np.int64), np.zeros(0), np.zeros(0), trade_array([], None), 500.0
    )
    assert none["processed"] == 0 and none["total_pnl"] == 0.0 and math.isnan(none["exposure"])
    one = backtest_metrics(
        np.zeros(1, np.int64), np.array([450.0]), np.ones(1), trade_array([], -50.0), 500.0
    )
    assert one["total_return"] == -10.0 and one["unrealized_pnl"] == -50.0
    assert one["max_drawdown"] == 50.0 and one["max_drawdown_pct"] == pytest.approx(10.0)
    assert math.isnan(one["sharpe_ratio"]) and one["exposure"] == 100.0


def test_a_first_bar_loss_is_a_drawdown_from_the_capital() -> None:
    equity = np.array([90.0, 95.0, 120.0, 60.0])
    m = backtest_metrics(
        np.arange(4, dtype=np.int64), equity, np.ones(4), trade_array([], 0.0), 100.0
    )
    assert m["max_drawdown"] == 60.0 and m["max_drawdown_pct"] == pytest.approx(50.0)


def test_annualisation_counts_gaps_as_time() -> None:
    rng = np.random.default_rng(0)
    equity = 1000.0 * np.cumprod(1 + rng.normal(0, 0.01, 100))
    regular = np.arange(100, dtype=np.int64) * MINUTE
    gapped = regular.copy()
    gapped[50:] += 99 * MINUTE  # the span doubles
    trades = trade_array([], None)
    a = backtest_metrics(regular, equity, np.ones(100), trades, 1000.0)
    b = backtest_metrics(gapped, equity, np.ones(100), trades, 1000.0)
    assert b["sharpe_ratio"] == pytest.approx(a["sharpe_ratio"] / math.sqrt(2), rel=1e-12)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per bar, got lengths 3, 2 and 3"):
        backtest_metrics(np.arange(3), np.ones(2), np.ones(3), trade_array([], None), 1.0)
