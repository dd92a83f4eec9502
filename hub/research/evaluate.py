"""The engine's ``threshold`` strategy on walk-forward predictions, in the research domain's
terms: which params a config means, the bars with their predictions, the metrics as Sigma Lab
reports them, and a sweep's grid evaluated with the engine's sweep kernels."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

STRATEGY = "threshold"


def below(value: float) -> float:
    return math.nextafter(value, -math.inf)


def strategy_params(
    entry: float, exit_: float, allowed_hours: Sequence[int] | None, top_pct: float | None
) -> dict[str, Any]:
    """The ``threshold`` strategy's params: enter at or above ``entry`` (among the top
    ``top_pct`` percent of predictions, when given), exit at or below the model's exit
    threshold, or just below ``entry`` when that is not below it."""
    return {
        "column": "prediction",
        "entry_threshold": float(entry),
        "exit_threshold": float(exit_) if exit_ < entry else below(float(entry)),
        "allowed_hours": None if allowed_hours is None else [int(h) for h in allowed_hours],
        "top_pct": 100.0 if top_pct is None else float(top_pct),
    }


def joined(
    bars: Mapping[str, np.ndarray], ts: np.ndarray, prediction: np.ndarray
) -> dict[str, np.ndarray]:
    """The bars (``ts`` int64 ns) that have a finite prediction, with it as ``prediction``."""
    keep = np.isfinite(prediction)
    _, in_bars, in_pred = np.intersect1d(
        bars["ts"], ts[keep], assume_unique=True, return_indices=True
    )
    out = {name: np.ascontiguousarray(column[in_bars]) for name, column in bars.items()}
    out["prediction"] = np.ascontiguousarray(prediction[keep][in_pred], dtype=np.float64)
    return out


def finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def research_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Sigma Lab's metrics from the engine's: fractions where the engine gives percent, the
    drawdown negative (-0.08 is an 8% fall)."""
    drawdown = finite(metrics["max_drawdown_pct"])
    return {
        "sharpe": finite(metrics["sharpe_ratio"]),
        "cum_ret": _fraction(metrics["total_return"]),
        "max_drawdown": None if drawdown is None else -abs(drawdown) / 100.0,
        "win_rate": _fraction(metrics["win_rate"]),
        "trades": int(metrics["total_trades"]),
        "sortino": finite(metrics["sortino_ratio"]),
        "profit_factor": finite(metrics["profit_factor"]),
        "exposure": _fraction(metrics["exposure"]),
    }


def _fraction(percent: Any) -> float | None:
    value = finite(percent)
    return None if value is None else value / 100.0


def grid_configs(
    thresholds: Sequence[float],
    hours: Sequence[Sequence[int] | None],
    top_pcts: Sequence[float | None],
) -> list[dict[str, Any]]:
    """Every config of the grid, thresholds varying slowest (the order configs are numbered)."""
    return [
        {
            "threshold": float(t),
            "allowed_hours": None if h is None else list(h),
            "top_pct": None if p is None else float(p),
        }
        for t, h, p in itertools.product(thresholds, hours, top_pcts)
    ]


def sweep_metrics(
    data: Mapping[str, np.ndarray], configs: Sequence[Mapping[str, Any]], exit_: float
) -> list[dict[str, Any]]:
    """Each config's metrics, from one call of the ``threshold`` strategy's sweep over
    ``data`` (``engine.sweep_threshold``: no signal array per config, what configs share
    computed once). The tests hold every config equal to ``run_backtest`` of the same
    params."""
    from engine.backtest import get_strategy, prepare
    from engine.metrics import METRIC_KEYS
    from engine.sim_options import check_params
    from engine.simulate import config_array
    from engine.sweep_threshold import sweep_threshold

    entry = get_strategy(STRATEGY)
    combos = [
        check_params(
            STRATEGY,
            entry.params,
            strategy_params(c["threshold"], exit_, c["allowed_hours"], c["top_pct"]),
        )
        for c in configs
    ]
    check = getattr(entry, "check", None)
    for params in combos:
        if check is not None:
            check(params)
    bars, _, cfg, hours_ok = prepare(data, entry, combos[0], {})  # type: ignore[arg-type]
    matrix = sweep_threshold(bars, combos, config_array(cfg), hours_ok)
    return [research_metrics(dict(zip(METRIC_KEYS, row, strict=True))) for row in matrix]


def single_result(data: Mapping[str, np.ndarray], config: Mapping[str, Any], exit_: float) -> Any:
    """One config through ``run_backtest``: the engine's whole result."""
    from engine.backtest import run_backtest

    params = strategy_params(config["threshold"], exit_, config["allowed_hours"], config["top_pct"])
    return run_backtest(data, STRATEGY, params)


def single_metrics(
    data: Mapping[str, np.ndarray], config: Mapping[str, Any], exit_: float
) -> tuple[dict[str, Any], np.ndarray]:
    """One config through ``run_backtest``: its metrics and its trades (``trade_dt``)."""
    result = single_result(data, config, exit_)
    return research_metrics(result.metrics), result.trades
