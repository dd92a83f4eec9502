"""A worker's warm-up loads every kernel a backtest job calls, so the first job compiles nothing
(a crossover's chunked run once compiled its averages on the first request: half a second)."""

from __future__ import annotations

import sys

import numpy as np
from numba.core.dispatcher import Dispatcher

from engine.backtest import start_backtest
from engine.strategies import BAR_STRATEGIES
from hub.executions import _warm_backtest_kernels
from hub.executions.curves import stored_sizes


def compiled() -> dict[str, int]:
    """How many signatures each engine kernel has compiled (or loaded) so far."""
    out = {}
    for name, module in list(sys.modules.items()):
        if name == "engine" or name.startswith("engine."):
            for attr, value in vars(module).items():
                if isinstance(value, Dispatcher):
                    out[f"{name}.{attr}"] = len(value.signatures)
    return out


def test_a_backtest_job_compiles_nothing_after_the_warm_up() -> None:
    _warm_backtest_kernels()
    before = compiled()
    n = 5_000
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    bars = {
        "ts": 1_600_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
        "prediction": rng.normal(0.0, 1.0, n),
    }  # fmt: skip
    for name in BAR_STRATEGIES:
        run = start_backtest(bars, name, {}, fees=0.001, initial_capital=10_000.0)
        equity = []
        while not run.done:
            equity.append(run.step(1_000).equity)
        run.open_trade()
        curve = np.concatenate(equity)
        assert len(stored_sizes((np.arange(1, n + 1), bars["ts"], curve))) == 3
    assert compiled() == before
