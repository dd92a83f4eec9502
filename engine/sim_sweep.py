"""Parameter sweeps: a grid of combinations, their metrics as a table, the top N by any metric.

Bar strategies build their signals in batches (a crossover computes each distinct window's
average once for the whole batch) and simulate every combination in parallel with
``sweep_signals_nb``, keeping only the metrics. Batches are capped at 32 MiB of signals so a
long series with a large grid never holds every signal row at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.metrics import METRIC_KEYS
from engine.records import BacktestResult
from engine.sim_options import check_params
from engine.simulate import SimConfig, config_array, sweep_signals_nb
from engine.strategies import BarStrategy, ParamSpec

__all__ = ["SweepResult", "expand_grid", "sweep_bars", "sweep_runner", "top_n"]

_BATCH_BYTES = 32 << 20
_INT_METRICS = frozenset({"processed", "total_trades", "winning_trades", "losing_trades"})


@dataclass(frozen=True)
class SweepResult:
    """One entry per valid combination, in grid order (the last grid key varies fastest)."""

    strategy: str
    params: dict[str, list[Any]]  # parameter name -> value per combination
    metrics: dict[str, np.ndarray]  # metric name -> value per combination
    skipped: list[dict[str, Any]] = field(default_factory=list)  # broke a cross-parameter rule

    def __len__(self) -> int:
        return len(next(iter(self.params.values()), []))

    def row(self, k: int) -> dict[str, Any]:
        """Combination ``k``: ``{"params": {...}, "metrics": {...}}``."""
        return {
            "params": {name: values[k] for name, values in self.params.items()},
            "metrics": {
                name: int(values[k]) if name in _INT_METRICS else float(values[k])
                for name, values in self.metrics.items()
            },
        }

    def rows(self) -> list[dict[str, Any]]:
        return [self.row(k) for k in range(len(self))]

    def order(self, by: str = "sharpe_ratio", *, ascending: bool = False) -> np.ndarray:
        """Combination indices ranked by metric ``by``; NaN ranks last, ties keep grid order."""
        if by not in self.metrics:
            raise ValueError(f"by must name a metric, got {by!r}; metrics: {list(self.metrics)}")
        values = self.metrics[by].astype(np.float64)
        key = values if ascending else -values
        return np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")

    def top(
        self, n: int = 10, by: str = "sharpe_ratio", *, ascending: bool = False
    ) -> list[dict[str, Any]]:
        """The best ``n`` combinations by ``by`` (largest first unless ``ascending``)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return [self.row(int(k)) for k in self.order(by, ascending=ascending)[:n]]

    def table(self) -> np.ndarray:
        """The sweep as a numpy structured array: parameter columns, then metric columns."""
        columns: list[tuple[str, np.ndarray]] = []
        for name, values in self.params.items():
            if all(isinstance(v, int) for v in values):
                columns.append((name, np.asarray(values, dtype=np.int64)))
            elif all(isinstance(v, float) for v in values):
                columns.append((name, np.asarray(values, dtype=np.float64)))
            else:
                column = np.empty(len(values), dtype=object)
                column[:] = values
                columns.append((name, column))
        columns += [(name, np.asarray(values)) for name, values in self.metrics.items()]
        out = np.empty(len(self), dtype=[(name, array.dtype) for name, array in columns])
        for name, array in columns:
            out[name] = array
        return out


def top_n(
    result: SweepResult, n: int = 10, by: str = "sharpe_ratio", *, ascending: bool = False
) -> list[dict[str, Any]]:
    """``result.top(n, by, ascending=...)``."""
    return result.top(n, by, ascending=ascending)


def expand_grid(
    strategy: str,
    schema: Sequence[ParamSpec],
    grid: Mapping[str, Sequence[Any]],
    check: Callable[[Mapping[str, Any]], None] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Checked parameter sets of every grid combination, and those the cross-parameter rule
    refuses; any value of the wrong type or out of bounds is a ``ValueError``."""
    if not isinstance(grid, Mapping) or not grid:
        raise ValueError(f"grid must map parameter names to sequences of values, got {grid!r}")
    names = [p["name"] for p in schema]
    for key, values in grid.items():
        if key not in names:
            raise ValueError(
                f"unknown parameter {key!r} in grid for strategy {strategy!r}; it takes {names}"
            )
        if (
            isinstance(values, str | bytes)
            or not isinstance(values, Sequence | np.ndarray)
            or len(values) == 0
        ):
            raise ValueError(
                f"grid[{key!r}] must be a non-empty sequence of values, got {values!r}"
            )
    keys = list(grid)
    combos: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for values in itertools.product(*(list(grid[k]) for k in keys)):
        params = check_params(strategy, schema, dict(zip(keys, values, strict=True)))
        if check is not None:
            try:
                check(params)
            except ValueError:
                skipped.append(params)
                continue
        combos.append(params)
    if not combos:
        raise ValueError(
            f"grid has no valid combination for strategy {strategy!r}: all {len(skipped)} break "
            f"a rule between parameters, e.g. {skipped[0]!r}"
        )
    return combos, skipped


def _result(
    strategy: str,
    names: Sequence[str],
    combos: list[dict[str, Any]],
    matrix: np.ndarray,
    skipped: list[dict[str, Any]],
) -> SweepResult:
    metrics = {
        key: matrix[:, j].astype(np.int64) if key in _INT_METRICS else matrix[:, j].copy()
        for j, key in enumerate(METRIC_KEYS)
    }
    params = {name: [c[name] for c in combos] for name in names}
    return SweepResult(strategy, params, metrics, skipped)


def sweep_bars(
    strategy: BarStrategy,
    bars: Mapping[str, np.ndarray],
    cfg: SimConfig,
    hours_ok: np.ndarray,
    combos: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
) -> SweepResult:
    close = bars["close"]
    open_ = bars.get("open", close)
    high = bars.get("high", close)
    low = bars.get("low", close)
    n = close.shape[0]
    cfg_array = config_array(cfg)
    if strategy.sweep is not None:
        matrix = strategy.sweep(bars, combos, cfg_array, hours_ok)
    else:
        batch = max(1, min(len(combos), _BATCH_BYTES // max(n, 1)))
        parts = []
        for start in range(0, len(combos), batch):
            part = combos[start : start + batch]
            signals = np.zeros((len(part), n), dtype=np.uint8)
            for k, params in enumerate(part):
                signals[k] = strategy.signals(bars, params)
            parts.append(
                sweep_signals_nb(signals, open_, high, low, close, bars["ts"], hours_ok, cfg_array)
            )
        matrix = np.concatenate(parts)
    names = [p["name"] for p in strategy.params]
    return _result(strategy.name, names, combos, matrix, skipped)


def sweep_runner(
    strategy: str,
    runner: Callable[..., BacktestResult],
    ohlcv: Mapping[str, Any],
    combos: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    options: Mapping[str, Any],
) -> SweepResult:
    """A strategy with its own simulator: its runner once per combination, in turn."""
    matrix = np.full((len(combos), len(METRIC_KEYS)), np.nan)
    for k, params in enumerate(combos):
        metrics = runner(ohlcv, params, **options).metrics
        matrix[k] = [float(metrics.get(key, np.nan)) for key in METRIC_KEYS]
    return _result(strategy, list(combos[0]), combos, matrix, skipped)
