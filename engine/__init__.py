"""Numba kernels over numpy arrays: backtests, sweeps, indicators, metrics, downsampling, ILP
(encoding and parsing).

The public entry points are imported lazily so that ``import engine`` does not load (or
compile) every kernel module; each module's kernels load from numba's on-disk cache the
first time one of its names is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "run_backtest": "engine.backtest",
    "run_sweep": "engine.backtest",
    "STRATEGIES": "engine.backtest",
    "start_backtest": "engine.backtest",
    "BacktestRun": "engine.backtest",
    "describe_strategies": "engine.backtest",
    "top_n": "engine.backtest",
    "SweepResult": "engine.backtest",
    "backtest_metrics": "engine.metrics",
    "BacktestResult": "engine.records",
    "trade_dt": "engine.records",
    "event_dt": "engine.records",
    "encode_ilp": "engine.ilp",
    "parse_ilp": "engine.ilp_parse",
    "lttb": "engine.downsample",
    "minmax": "engine.downsample",
    "resample_ohlcv": "engine.downsample",
    "simulate_ticks": "engine.ticks",
}

__all__ = [
    "STRATEGIES",
    "BacktestResult",
    "BacktestRun",
    "SweepResult",
    "backtest_metrics",
    "describe_strategies",
    "encode_ilp",
    "event_dt",
    "lttb",
    "minmax",
    "parse_ilp",
    "resample_ohlcv",
    "run_backtest",
    "run_sweep",
    "simulate_ticks",
    "start_backtest",
    "top_n",
    "trade_dt",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
