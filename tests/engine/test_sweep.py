"""Parameter sweeps: every combination equals its own backtest; ranking, table and bad grids."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from engine import sim_sweep
from engine.backtest import run_backtest, run_sweep, top_n
from engine.metrics import METRIC_KEYS

MINUTE = 60_000_000_000


def make_bars(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.003, n))
    high = np.maximum(open_, close) * 1.004
    low = np.minimum(open_, close) * 0.996
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 7 * MINUTE
    return {
        "ts": ts,
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
        "prediction": rng.random(n),
    }


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_each_combination_equals_its_backtest(
    bars: dict[str, np.ndarray], strategy: str, grid: dict[str, Any], **options: Any
) -> Any:
    result = run_sweep(bars, strategy, grid, **options)
    for row in result.rows():
        alone = run_backtest(bars, strategy, row["params"], **options).metrics
        assert all(same(row["metrics"][k], alone[k]) for k in METRIC_KEYS), row["params"]
    return result


@pytest.mark.parametrize(
    "options",
    [
        {"fees": 0.001},
        {"direction": "both", "fill": "next_open", "stop_loss": 0.01, "take_profit": 0.02},
        {
            "direction": "short",
            "allowed_hours": list(range(8, 20)),
            "max_bars": 30,
            "sizing": "units",
            "size": 20.0,
        },
    ],
)
def test_crossover_sweep_equals_one_backtest_per_combination(options: dict[str, Any]) -> None:
    bars = make_bars(3000, 1)
    grid = {"fast": [3, 5, 10, 20], "slow": [10, 20, 40]}
    result = assert_each_combination_equals_its_backtest(bars, "sma_crossover", grid, **options)
    valid = [(f, s) for f, s in itertools.product(grid["fast"], grid["slow"]) if f < s]
    assert list(zip(result.params["fast"], result.params["slow"], strict=True)) == valid
    assert [(p["fast"], p["slow"]) for p in result.skipped] == [(10, 10), (20, 10), (20, 20)]


def test_threshold_sweep_over_seed_001_axes() -> None:
    bars = make_bars(2000, 2)
    grid = {
        "entry_threshold": [0.5, 0.7],
        "allowed_hours": [[9, 10, 11], [12, 13, 14], None],
        "top_pct": [5.0, 50.0, 100.0],
    }
    result = assert_each_combination_equals_its_backtest(bars, "threshold", grid, direction="both")
    assert len(result) == 18 and not result.skipped
    assert result.params["allowed_hours"][:3] == [[9, 10, 11]] * 3


THRESHOLD_OPTIONS = [
    {},
    {"fees": 0.001, "direction": "both"},
    {"direction": "both", "fill": "next_open", "stop_loss": 0.01, "take_profit": 0.02},
    {
        "direction": "short",
        "allowed_hours": list(range(8, 20)),
        "max_bars": 30,
        "sizing": "units",
        "size": 20.0,
    },
    {"direction": "long", "fill": "next_open", "sizing": "notional", "size": 5000.0},
]


@pytest.mark.parametrize("options", THRESHOLD_OPTIONS)
def test_threshold_sweep_kernel_equals_one_backtest_per_combination(
    options: dict[str, Any],
) -> None:
    """engine.sweep_threshold computes each bar's flags in its own loop and counts flat
    stretches: every combination still equals run_backtest of its signals."""
    bars = make_bars(2001, 5)  # the top 10 percent's cut-off is a prediction: ties
    bars["prediction"] = np.round(np.convolve(bars["prediction"], np.ones(6) / 6, "same"), 2)
    grid = {
        "entry_threshold": [0.45, 0.5, 0.6],
        "exit_threshold": [0.3, 0.44],
        "allowed_hours": [[9, 10, 11], [0, 5, 23], list(range(24)), None],
        "top_pct": [10.0, 100.0],
    }
    result = assert_each_combination_equals_its_backtest(bars, "threshold", grid, **options)
    assert len(result) == 48 and result.metrics["total_trades"].sum() > 0
    assert np.isin(bars["prediction"], [0.3, 0.44, 0.45, 0.5, 0.6]).sum() > 50


def test_threshold_sweep_on_float32_nan_and_other_columns() -> None:
    bars = make_bars(1500, 6)
    bars["ts"] = bars["ts"] - bars["ts"][700]  # negative timestamps: floor hours
    score = bars["prediction"].astype(np.float32)
    score[::17] = np.nan
    bars["score"] = score
    grid = {
        "column": ["prediction", "score"],
        "entry_threshold": [0.55, 0.8],
        "exit_threshold": [0.2],
        "allowed_hours": [[22, 23, 0, 1], None],
        "top_pct": [3.3, 20.0, 100.0],
    }
    result = assert_each_combination_equals_its_backtest(bars, "threshold", grid, direction="both")
    assert len(result) == 24


def test_hour_of_day_and_allowed_bars_kernels() -> None:
    from engine.sweep_threshold import HOUR_NS, allowed_bars_nb, hour_of_day_nb

    rng = np.random.default_rng(7)
    ts = np.sort(rng.integers(-(10**15), 10**15, 5000))
    hour = hour_of_day_nb(ts)
    np.testing.assert_array_equal(hour, (ts // HOUR_NS) % 24)
    pred = rng.random(5000)
    sets = np.array([0b111 << 9, 1 | 1 << 23, (1 << 24) - 1, 0], dtype=np.int64)
    starts, index, values = allowed_bars_nb(hour, pred, sets)
    for s, bits in enumerate(sets):
        expected = np.flatnonzero((int(bits) >> hour.astype(np.int64)) & 1)
        np.testing.assert_array_equal(index[starts[s] : starts[s + 1]], expected)
        np.testing.assert_array_equal(values[starts[s] : starts[s + 1]], pred[expected])


def test_ema_rsi_and_bollinger_sweeps() -> None:
    bars = make_bars(1500, 3)
    assert_each_combination_equals_its_backtest(
        bars, "ema_crossover", {"fast": [4, 8], "slow": [16, 30]}
    )
    assert_each_combination_equals_its_backtest(
        bars, "rsi_reversion", {"window": [7, 14], "lower": [25, 35]}
    )
    assert_each_combination_equals_its_backtest(
        bars, "bollinger_breakout", {"nstd": [1.5, 2.5]}, direction="both"
    )


def test_batches_give_the_same_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = make_bars(1000, 4)
    grid = {"window": [3, 4, 5, 6, 7]}
    whole = run_sweep(bars, "rsi_reversion", grid, fees=0.001)
    monkeypatch.setattr(sim_sweep, "_BATCH_BYTES", 3 * 1000)  # 3 signal rows per batch
    batched = run_sweep(bars, "rsi_reversion", grid, fees=0.001)
    assert batched.metrics["processed"].tolist() == [1000] * 5
    for key in METRIC_KEYS:
        np.testing.assert_array_equal(whole.metrics[key], batched.metrics[key])


def test_a_runner_strategy_sweeps_through_its_runner() -> None:
    rng = np.random.default_rng(5)
    close = 15_000.0 + np.cumsum(rng.normal(0.0, 4.0, 3000))
    bars = {"ts": np.arange(3000, dtype=np.int64) * 10**9, "close": close}
    grid = {"exit_strategy_key": ["10_10", "20_10"], "units": [1.0, 2.0]}
    assert_each_combination_equals_its_backtest(bars, "max_points", grid)


def test_top_n_ranks_by_any_metric_with_nan_last() -> None:
    result = run_sweep(
        make_bars(1500, 6), "sma_crossover", {"fast": [2, 3, 5, 8], "slow": [13, 21]}, fees=0.001
    )
    for by in ("total_return", "sharpe_ratio", "max_drawdown"):
        values = result.metrics[by]
        best = top_n(result, 3, by)
        assert [row["metrics"][by] for row in best] == sorted(values, reverse=True)[:3]
        worst = result.top(2, by, ascending=True)
        assert [row["metrics"][by] for row in worst] == sorted(values)[:2]
    result.metrics["sharpe_ratio"][0] = np.nan
    ranked = result.top(len(result), "sharpe_ratio")
    assert math.isnan(ranked[-1]["metrics"]["sharpe_ratio"])
    with pytest.raises(ValueError, match="by must name a metric, got 'sharpe'"):
        result.top(3, "sharpe")
    with pytest.raises(ValueError, match="n must be a non-negative integer, got -1"):
        result.top(-1)


def test_table_is_a_structured_array_of_params_then_metrics() -> None:
    result = run_sweep(
        make_bars(500, 7), "threshold", {"top_pct": [10.0, 100.0], "allowed_hours": [[1, 2], None]}
    )
    table = result.table()
    assert table.dtype.names == (
        "column",
        "entry_threshold",
        "exit_threshold",
        "allowed_hours",
        "top_pct",
        *METRIC_KEYS,
    )
    assert table["top_pct"].dtype == np.float64 and table["total_trades"].dtype == np.int64
    assert table["allowed_hours"].tolist() == [[1, 2], None, [1, 2], None]
    np.testing.assert_array_equal(table["sharpe_ratio"], result.metrics["sharpe_ratio"])


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        (
            {"fast": [3], "speed": [1]},
            r"unknown parameter 'speed' in grid for strategy 'sma_crossover'",
        ),
        ({"fast": []}, r"grid\['fast'\] must be a non-empty sequence of values, got \[\]"),
        ({"fast": 5}, r"grid\['fast'\] must be a non-empty sequence of values, got 5"),
        ({}, r"grid must map parameter names to sequences of values, got \{\}"),
        (
            {"fast": [50, 60], "slow": [20, 50]},
            r"grid has no valid combination for strategy 'sma_crossover': all 4",
        ),
        ({"fast": [3, 2.5]}, r"params\['fast'\] of sma_crossover must be an integer, got 2.5"),
    ],
)
def test_bad_grids_are_refused(grid: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run_sweep(make_bars(100, 0), "sma_crossover", grid)


def test_bad_options_and_bars_are_refused_before_the_sweep() -> None:
    with pytest.raises(ValueError, match="unknown option 'fee'"):
        run_sweep(make_bars(100, 0), "sma_crossover", {"fast": [3]}, fee=0.1)  # type: ignore[call-arg]
    bars = make_bars(100, 0)
    bars["close"][50] = 0.0
    with pytest.raises(
        ValueError, match=r"ohlcv\['close'\] must be positive and finite, got 0.0 at bar 50"
    ):
        run_sweep(bars, "sma_crossover", {"fast": [3]})
    with pytest.raises(ValueError, match="unknown strategy 'smacross'"):
        run_sweep(bars, "smacross", {"fast": [3]})


def _quantile_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    holes = rng.normal(size=3000)
    holes[rng.random(3000) < 0.2] = np.nan
    holes[rng.random(3000) < 0.05] = -np.inf
    return [
        rng.normal(size=20_000) * 1e-7,
        np.round(rng.normal(size=5000) * 3) / 3,  # ties
        rng.integers(0, 3, 999).astype(np.float64),
        holes,
        np.full(7, 1.5),
        np.array([2.0]),
        np.where(rng.random(300) < 0.5, -0.0, 0.0),
        np.array([-1e308, 1e308, 5e-324, 1e-320, 0.0] * 40),  # a range too wide to subtract
        np.array([5e-324, 1e-323, 0.0, 1.5e-323] * 9),  # too narrow to divide by
        np.array([np.nan, np.inf]),
        rng.random(4321).astype(np.float32),
    ]


@pytest.mark.parametrize("values", _quantile_cases())
def test_cutoffs_equal_np_quantile(values: np.ndarray) -> None:
    from engine.sweep_threshold import _cutoffs

    tops = [0.0, 1e-9, 3.3, 5.0, 10.0, 15.0, 50.0, 99.9999, 100.0]
    finite = values[np.isfinite(values)]
    got = _cutoffs(values, tops)
    for top in tops:
        expected = (
            float(np.quantile(finite, 1.0 - top / 100.0)) if top < 100 and finite.size else -np.inf
        )
        assert got[top] == expected or (math.isnan(got[top]) and math.isnan(expected)), top
