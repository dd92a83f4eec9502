"""Strategy signals against vectorbt and TA-Lib references; the registry and its schemas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
import vectorbt as vbt
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backtest import STRATEGIES, describe_strategies, run_backtest
from engine.records import TradeStatus
from engine.simulate import SignalFlag
from engine.strategies import BAR_STRATEGIES, cross_signals_nb

MINUTE = 60_000_000_000
HOUR = 60 * MINUTE
BULL = SignalFlag.LongEntry | SignalFlag.ShortExit
BEAR = SignalFlag.LongExit | SignalFlag.ShortEntry
FAST = settings(derandomize=True, deadline=None)


def make_bars(n: int, seed: int, step: int = MINUTE) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * step
    pred = rng.random(n)
    return {
        "ts": ts,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "prediction": pred,
    }


def signals(name: str, bars: dict[str, np.ndarray], **params: Any) -> np.ndarray:
    strategy = BAR_STRATEGIES[name]
    full = {p["name"]: params.get(p["name"], p["default"]) for p in strategy.params}
    out: np.ndarray = strategy.signals(bars, full)
    return out


def expected_cross(fast: pd.Series, slow: pd.Series) -> np.ndarray:
    out = np.zeros(len(fast), dtype=np.uint8)
    out[fast.vbt.crossed_above(slow).to_numpy()] = BULL
    out[fast.vbt.crossed_below(slow).to_numpy()] = BEAR
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("fast", "slow"), [(2, 5), (10, 50), (20, 21)])
def test_sma_crossover_equals_vectorbt_crossings_of_pandas_means(
    seed: int, fast: int, slow: int
) -> None:
    bars = make_bars(2000, seed)
    close = pd.Series(bars["close"])
    want = expected_cross(close.rolling(fast).mean(), close.rolling(slow).mean())
    np.testing.assert_array_equal(signals("sma_crossover", bars, fast=fast, slow=slow), want)


@pytest.mark.parametrize("seed", [0, 1])
def test_ema_crossover_equals_vectorbt_crossings_of_talib_emas(seed: int) -> None:
    bars = make_bars(2000, seed)
    fast = pd.Series(talib.EMA(bars["close"], 12))
    slow = pd.Series(talib.EMA(bars["close"], 26))
    np.testing.assert_array_equal(
        signals("ema_crossover", bars, fast=12, slow=26), expected_cross(fast, slow)
    )


def test_a_crossover_needs_the_previous_bar_at_or_below() -> None:
    fast = np.array([np.nan, np.nan, 5.0, 6.0, 6.0, 7.0, 5.0, 4.0])
    slow = np.array([np.nan, 4.0, 4.0, 6.0, 6.0, 6.0, 6.0, 6.0])
    # bar 2: first bar with both, already above: nothing. bar 3: equal. bar 5: above after equal.
    np.testing.assert_array_equal(cross_signals_nb(fast, slow), [0, 0, 0, 0, 0, BULL, BEAR, 0])


@FAST
@given(n=st.integers(0, 60), seed=st.integers(0, 1000))
def test_nothing_happens_on_the_first_bar_where_both_averages_exist(n: int, seed: int) -> None:
    out = signals("sma_crossover", make_bars(n, seed), fast=3, slow=10)
    assert out.shape == (n,)
    assert not out[:10].any()


def test_threshold_levels_top_percent_and_hours() -> None:
    n = 48
    bars = make_bars(n, 0, step=HOUR)  # ts[0] is 22:13 UTC
    hours = (bars["ts"] // HOUR) % 24
    pred = np.linspace(0.0, 1.0, n)
    bars["prediction"] = pred
    out = signals("threshold", bars, entry_threshold=0.6, exit_threshold=0.2)
    np.testing.assert_array_equal(out == BULL, pred >= 0.6)
    np.testing.assert_array_equal(out == BEAR, pred <= 0.2)
    cutoff = np.quantile(pred, 0.9)
    top = signals("threshold", bars, entry_threshold=0.6, exit_threshold=0.2, top_pct=10.0)
    np.testing.assert_array_equal(top == BULL, pred >= max(0.6, cutoff))
    allowed = [9, 10, 11, 12]
    timed = signals(
        "threshold", bars, entry_threshold=0.6, exit_threshold=0.2, allowed_hours=allowed
    )
    inside = np.isin(hours, allowed)
    np.testing.assert_array_equal(timed[~inside], SignalFlag.LongExit | SignalFlag.ShortExit)
    np.testing.assert_array_equal(timed[inside], out[inside])


def test_threshold_reads_the_named_column_and_refuses_a_missing_one() -> None:
    bars = make_bars(30, 0)
    bars["score"] = np.linspace(1.0, 0.0, 30)
    out = signals("threshold", bars, column="score")
    assert out[0] == BULL and out[-1] == BEAR
    with pytest.raises(
        ValueError,
        match=r"params\['column'\] of threshold must name a numeric ohlcv column, got 'nope'",
    ):
        run_backtest(bars, "threshold", {"column": "nope"})


@pytest.mark.parametrize("seed", [0, 1])
def test_rsi_reversion_equals_crossings_of_talib_rsi(seed: int) -> None:
    bars = make_bars(1500, seed)
    rsi = talib.RSI(bars["close"], 14)
    prev = np.roll(rsi, 1)
    prev[0] = np.nan
    want = np.zeros(1500, dtype=np.uint8)
    want[(rsi < 30) & (prev >= 30)] |= BULL
    want[(rsi > 70) & (prev <= 70)] |= BEAR
    out = signals("rsi_reversion", bars)
    assert (out == BULL).sum() > 5 and (out == BEAR).sum() > 5
    np.testing.assert_array_equal(out, want)


def bollinger_reference(close: np.ndarray, window: int, nstd: float) -> dict[str, np.ndarray]:
    upper, middle, lower = talib.BBANDS(close, window, nstd, nstd)
    c = pd.Series(close)

    def above(level: np.ndarray) -> np.ndarray:
        crossed: pd.Series = (c > level) & (c.shift(1) <= pd.Series(level).shift(1))
        out: np.ndarray = crossed.to_numpy()
        return out

    def below(level: np.ndarray) -> np.ndarray:
        crossed: pd.Series = (c < level) & (c.shift(1) >= pd.Series(level).shift(1))
        out: np.ndarray = crossed.to_numpy()
        return out

    return {
        "entries": above(upper),
        "exits": below(middle),
        "short_entries": below(lower),
        "short_exits": above(middle),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bollinger_breakout_flags_equal_talib_band_crossings(seed: int) -> None:
    bars = make_bars(1500, seed)
    ref = bollinger_reference(bars["close"], 20, 2.0)
    out = signals("bollinger_breakout", bars)
    for flag, name in [(1, "entries"), (2, "exits"), (4, "short_entries"), (8, "short_exits")]:
        np.testing.assert_array_equal((out & flag) != 0, ref[name], err_msg=name)


@pytest.mark.parametrize("seed", [3, 4])
def test_four_flag_strategies_trade_like_vectorbt_with_four_signal_arrays(seed: int) -> None:
    bars = make_bars(3000, seed)
    ref = bollinger_reference(bars["close"], 20, 2.0)
    result = run_backtest(bars, "bollinger_breakout", {}, direction="both", fees=0.001)
    pf = vbt.Portfolio.from_signals(
        pd.Series(bars["close"]), **{k: pd.Series(v) for k, v in ref.items()}, fees=0.001,
        init_cash=10_000.0, min_size=0.0,
    )  # fmt: skip
    theirs = pf.trades.records
    assert len(result.trades) == len(theirs) > 10
    np.testing.assert_array_equal(result.trades["entry_index"], theirs["entry_idx"])
    np.testing.assert_array_equal(result.trades["direction"], theirs["direction"])
    np.testing.assert_allclose(result.trades["pnl"], theirs["pnl"], rtol=1e-9)
    assert result.equity[-1] == pytest.approx(pf.value().iloc[-1], rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Registry


def test_the_registry_names_every_strategy_of_the_issue() -> None:
    assert set(STRATEGIES) == {
        "sma_crossover", "ema_crossover", "threshold", "rsi_reversion", "bollinger_breakout",
        "floor", "max_points",
    }  # fmt: skip


def test_every_parameter_has_a_complete_schema() -> None:
    for entry in describe_strategies():
        assert entry["description"]
        for p in entry["params"]:
            assert set(p) == {"name", "type", "default", "bounds", "description"}, entry["name"]
            assert p["type"] in {"int", "float", "str", "hours", "bool", "list[float]"}, p
            assert p["description"]
            if (
                p["bounds"] is not None
                and p["default"] is not None
                and p["type"] in {"int", "float"}
            ):
                low, high = p["bounds"]
                assert (low is None or p["default"] >= low) and (
                    high is None or p["default"] <= high
                )


@pytest.mark.parametrize("name", sorted(BAR_STRATEGIES))
def test_every_bar_strategy_runs_with_its_defaults(name: str) -> None:
    result = run_backtest(make_bars(2000, 8), name, {}, direction="both")
    assert result.equity.shape == (2000,)
    assert (result.trades["status"][:-1] == TradeStatus.Closed).all()


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        (
            "threshold",
            {"exit_threshold": 0.7},
            r"params\['exit_threshold'\] must be below params\['entry_threshold'\]",
        ),
        (
            "threshold",
            {"top_pct": 120},
            r"params\['top_pct'\] of threshold must be within \(0.0, 100.0\)",
        ),
        (
            "threshold",
            {"allowed_hours": "9-17"},
            r"params\['allowed_hours'\] must be a list of UTC hours",
        ),
        (
            "rsi_reversion",
            {"lower": 80.0},
            r"params\['lower'\] must be below params\['upper'\], got lower=80.0",
        ),
        (
            "ema_crossover",
            {"fast": 30, "slow": 26},
            r"params\['fast'\] must be smaller than params\['slow'\]",
        ),
        (
            "bollinger_breakout",
            {"nstd": -1},
            r"params\['nstd'\] of bollinger_breakout must be within",
        ),
        (
            "bollinger_breakout",
            {"width": 2},
            r"unknown parameter 'width' for strategy 'bollinger_breakout'",
        ),
    ],
)
def test_bad_parameters_are_refused(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_backtest(make_bars(100, 0), name, params)
