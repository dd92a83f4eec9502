"""Walk-forward never trains on a fold it predicts: poisoning the labels of later folds leaves
every earlier fold's predictions unchanged, bit for bit; and the sweep's kernels equal single
backtests config by config."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backtest import run_backtest
from engine.features import feature_matrix, parse_features
from hub.research import evaluate
from hub.research.training import design, feature_columns, fold_bounds, lgb_params, walk_forward

HORIZON = 4
SPLITS = 4


def matrix(n: int = 1500, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    spread = np.abs(rng.normal(0, 0.3, n))
    bars = {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close + spread, "low": close - spread, "close": close,
        "volume": rng.integers(1, 100, n).astype(np.float64),
    }  # fmt: skip
    return feature_matrix(bars, parse_features(["close", "returns", "RSI", "MACD", "BB"]), HORIZON)


def predicted(m: dict[str, np.ndarray], target: np.ndarray) -> object:
    x = design(m, feature_columns(list(m)))
    return walk_forward(
        x, target, splits=SPLITS, horizon=HORIZON, params=lgb_params(0.1, 7, 10), rounds=30
    )


@pytest.mark.parametrize("poisoned_from_fold", [2, 3, 4])
def test_poisoning_later_folds_leaves_earlier_predictions_alone(poisoned_from_fold: int) -> None:
    m = matrix()
    target = m["target"]
    clean = predicted(m, target)
    bounds = fold_bounds(len(target), SPLITS)
    start = int(bounds[poisoned_from_fold])
    poisoned = target.copy()
    poisoned[start:] = -poisoned[start:] * 5.0  # every later label flipped
    dirty = predicted(m, poisoned)
    earlier = clean.fold < poisoned_from_fold  # type: ignore[attr-defined]
    np.testing.assert_array_equal(clean.rows, dirty.rows)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        clean.prediction[earlier],  # type: ignore[attr-defined]
        dirty.prediction[earlier],  # type: ignore[attr-defined]
    )
    # ...and the poison reaches the folds trained after it: the test can see a leak.
    later = clean.fold > poisoned_from_fold  # type: ignore[attr-defined]
    if later.any():
        assert not np.array_equal(clean.prediction[later], dirty.prediction[later])  # type: ignore[attr-defined]


def test_the_labels_just_before_a_fold_are_purged() -> None:
    """A training row's target reaches ``horizon`` bars ahead: the rows whose target ends
    inside the predicted fold are left out of its training."""
    m = matrix()
    target = m["target"]
    clean = predicted(m, target)
    bounds = fold_bounds(len(target), SPLITS)
    poisoned = target.copy()
    k = 2
    poisoned[int(bounds[k]) - HORIZON : int(bounds[k])] *= -100.0
    dirty = predicted(m, poisoned)
    fold = clean.fold == k  # type: ignore[attr-defined]
    np.testing.assert_array_equal(clean.prediction[fold], dirty.prediction[fold])  # type: ignore[attr-defined]


def test_sweep_equals_single_backtests_config_by_config() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    data = {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close * 1.002, "low": close * 0.998, "close": close,
        "prediction": rng.random(n),
    }  # fmt: skip
    configs = evaluate.grid_configs(
        [0.5, 0.6, 0.7, 0.8], [[9, 10, 11], [12, 13, 14], None], [5.0, 50.0, None]
    )
    assert len(configs) == 36
    swept = evaluate.sweep_metrics(data, configs, 0.4)
    for config, metrics in zip(configs, swept, strict=True):
        single, trades = evaluate.single_metrics(data, config, 0.4)
        assert metrics == pytest.approx(single, nan_ok=True), config
        params = evaluate.strategy_params(
            config["threshold"], 0.4, config["allowed_hours"], config["top_pct"]
        )
        direct = run_backtest(data, "threshold", params)
        assert metrics["trades"] == int(direct.metrics["total_trades"]) == len(trades)


def test_gates_per_risk_profile() -> None:
    from hub.research.model import GATES

    strong = {"sharpe": 1.5, "trades": 40, "max_drawdown": -0.05, "win_rate": 0.6}
    assert all(not GATES[p].judge(strong) for p in ("Conservative", "Balanced", "Aggressive"))
    middling = {"sharpe": 0.8, "trades": 25, "max_drawdown": -0.15, "win_rate": 0.46}
    assert GATES["Balanced"].judge(middling) == [] and GATES["Aggressive"].judge(middling) == []
    assert GATES["Conservative"].judge(middling) == [
        "sharpe 0.8 below 1.0",
        "trades 25 below 30",
        "max_drawdown -0.15 deeper than -0.1",
        "win_rate 0.46 below 0.5",
    ]
    weak = {"sharpe": None, "trades": 3, "max_drawdown": -0.5, "win_rate": None}
    reasons = GATES["Aggressive"].judge(weak)
    assert reasons == [
        "sharpe n/a below 0.5",
        "trades 3 below 10",
        "max_drawdown -0.5 deeper than -0.35",
        "win_rate n/a below 0.0",
    ]
