"""The one-pass backtests and sweeps against the simulator they replaced (``reference_simulator``,
the engine's previous path in plain Python), on random bars, parameters and options: every
trade field, every per-bar value and every metric, bit for bit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import reference_simulator as reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backtest import run_backtest, run_sweep, start_backtest
from engine.metrics import METRIC_KEYS, metrics_dict
from engine.sim_options import check_bars
from engine.strategies import BAR_STRATEGIES

MINUTE = 60_000_000_000
EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_bars(n: int, seed: int, decimals: int | None) -> dict[str, np.ndarray]:
    """A random walk; rounded prices make equal averages, and so the crossings' ties, common."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.004, n)))
    if decimals is not None:
        close, open_, high, low = (np.round(a, decimals) for a in (close, open_, high, low))
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 90, n)) * MINUTE
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close}


options = st.fixed_dictionaries(
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
bar_sets = st.tuples(
    st.integers(0, 400), st.integers(0, 10_000), st.sampled_from([None, None, 1, 2])
)
windows = st.tuples(st.integers(1, 25), st.integers(1, 40)).map(lambda fs: (fs[0], fs[0] + fs[1]))


def sized(opts: dict[str, Any]) -> dict[str, Any]:
    sizing = opts.get("sizing", "cash")
    return {**opts, "size": {"cash": 0.7, "units": 30.0, "notional": 2500.0}[sizing]}


def same_metrics(ours: dict[str, float], theirs: np.ndarray) -> None:
    expected = metrics_dict(theirs)
    for key in METRIC_KEYS:
        a, b = ours[key], expected[key]
        assert a == b or (math.isnan(a) and math.isnan(b)), (key, a, b)


def assert_same(result: Any, ref: reference.Reference) -> None:
    np.testing.assert_array_equal(result.trades, ref.trades)
    np.testing.assert_array_equal(result.equity, ref.equity)
    np.testing.assert_array_equal(result.cash, ref.cash)
    np.testing.assert_array_equal(result.position, ref.position)
    same_metrics(result.metrics, ref.metrics)


@EXAMPLES
@given(bars=bar_sets, pair=windows, opts=options, exponential=st.booleans())
def test_crossover_backtests_equal_the_previous_simulator(
    bars: tuple[int, int, int | None],
    pair: tuple[int, int],
    opts: dict[str, Any],
    exponential: bool,
) -> None:
    data = make_bars(*bars)
    opts = sized(opts)
    fast, slow = pair
    name = "ema_crossover" if exponential else "sma_crossover"
    result = run_backtest(data, name, {"fast": fast, "slow": slow}, **opts)
    assert_same(result, reference.run_crossover(data, fast, slow, opts, exponential=exponential))


@EXAMPLES
@given(bars=bar_sets, window=st.integers(2, 30), opts=options)
def test_signal_backtests_equal_the_previous_simulator(
    bars: tuple[int, int, int | None], window: int, opts: dict[str, Any]
) -> None:
    data = make_bars(*bars)
    opts = sized(opts)
    params = {"window": window, "lower": 40.0, "upper": 60.0}
    result = run_backtest(data, "rsi_reversion", params, **opts)
    signals = BAR_STRATEGIES["rsi_reversion"].signals(check_bars(data, ["close"]), params)
    assert_same(result, reference.run_signals(data, signals, opts))


@EXAMPLES
@given(
    bars=bar_sets,
    pair=windows,
    opts=options,
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_chunked_runs_equal_the_previous_simulator(
    bars: tuple[int, int, int | None],
    pair: tuple[int, int],
    opts: dict[str, Any],
    cuts: list[int],
) -> None:
    data = make_bars(*bars)
    opts = sized(opts)
    fast, slow = pair
    run = start_backtest(data, "sma_crossover", {"fast": fast, "slow": slow}, **opts)
    for cut in sorted(cuts):
        if cut > run.processed:
            run.step(cut - run.processed)
    assert_same(run.result(), reference.run_crossover(data, fast, slow, opts))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bars=bar_sets,
    fasts=st.lists(st.integers(1, 12), min_size=1, max_size=4, unique=True),
    slows=st.lists(st.integers(13, 40), min_size=1, max_size=4, unique=True),
    opts=options,
    exponential=st.booleans(),
)
def test_sweeps_equal_the_previous_simulator(
    bars: tuple[int, int, int | None],
    fasts: list[int],
    slows: list[int],
    opts: dict[str, Any],
    exponential: bool,
) -> None:
    data = make_bars(*bars)
    opts = sized(opts)
    name = "ema_crossover" if exponential else "sma_crossover"
    sweep = run_sweep(data, name, {"fast": fasts, "slow": slows}, **opts)
    for k, row in enumerate(sweep.rows()):
        p = row["params"]
        ref = reference.run_crossover(data, p["fast"], p["slow"], opts, exponential=exponential)
        same_metrics({key: sweep.metrics[key][k] for key in METRIC_KEYS}, ref.metrics)


def test_ties_between_the_averages_take_the_exact_comparison() -> None:
    """Flat prices make the two averages equal for long stretches: the crossings then hinge on
    equality, which the kernel decides with the divisions themselves."""
    close = np.repeat([100.0, 100.0, 101.0, 100.0, 99.0, 99.0, 100.0, 100.0], 40)
    close[::7] += 0.5
    data = {
        "ts": np.arange(close.size, dtype=np.int64) * MINUTE,
        "open": close, "high": close, "low": close, "close": close,
    }  # fmt: skip
    for fast, slow in [(1, 2), (3, 7), (5, 40), (7, 14)]:
        result = run_backtest(data, "sma_crossover", {"fast": fast, "slow": slow})
        assert_same(result, reference.run_crossover(data, fast, slow, {}))


def test_long_runs_take_the_sma_refreshes_and_long_stretches() -> None:
    """Thousands of bars: the running sums are rebuilt from the window at every
    1024 // window-th wrap (every wrap for windows of 1024 and more), long stretches run
    without a signal, and drawdowns deepen well after the first bars."""
    for seed, decimals in [(3, None), (4, 1)]:
        data = make_bars(9_000, seed, decimals)
        for fast, slow, opts in [
            (3, 7, {"fees": 0.001}),
            (10, 50, {"direction": "both", "fill": "next_open"}),
            (2, 1100, {"stop_loss": 0.02, "fees": 0.001}),
            (40, 1030, {"direction": "short", "max_bars": 700}),
        ]:
            expected = reference.run_crossover(data, fast, slow, opts)
            assert_same(
                run_backtest(data, "sma_crossover", {"fast": fast, "slow": slow}, **opts), expected
            )
            run = start_backtest(data, "sma_crossover", {"fast": fast, "slow": slow}, **opts)
            run.step(4_321)
            assert_same(run.result(), expected)
            sweep = run_sweep(data, "sma_crossover", {"fast": [fast], "slow": [slow]}, **opts)
            same_metrics({key: sweep.metrics[key][0] for key in METRIC_KEYS}, expected.metrics)
