"""Public entry points: ``run_backtest``, the chunked ``start_backtest``, ``run_sweep`` and the
``STRATEGIES`` registry.

The registry holds two kinds of entries. A :class:`~engine.strategies.BarStrategy` gives a
signal function that the generic bar simulator (``engine.simulate``) runs. A
:class:`RunnerStrategy` names, as ``"module:attribute"`` paths, a runner with the signature
``runner(ohlcv, params, **options) -> BacktestResult`` and its parameter schema; the module is
imported the first time the entry is used, so ``floor`` and ``max_points`` cost nothing until
someone runs them.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Unpack

import numpy as np

from engine._rawmem import scratch
from engine.metrics import metrics_dict, metrics_vector_nb
from engine.records import BacktestResult, trade_dt
from engine.sim_options import BacktestOptions, check_bars, check_params, sim_config
from engine.sim_sweep import SweepResult, expand_grid, sweep_bars, sweep_runner, top_n
from engine.simulate import (
    Fill,
    SignalSource,
    SimConfig,
    SimState,
    held_curves,
    initial_state,
    open_pnl_nb,
    open_trade_record,
    run_bars_nb,
    state_from_dict,
    state_to_dict,
)
from engine.strategies import BAR_STRATEGIES, BarStrategy, ParamSpec, hours_mask

__all__ = [
    "STRATEGIES",
    "BacktestChunk",
    "BacktestOptions",
    "BacktestRun",
    "RunnerStrategy",
    "StrategyUnavailableError",
    "SweepResult",
    "describe_strategies",
    "get_strategy",
    "run_backtest",
    "run_sweep",
    "start_backtest",
    "top_n",
    "warm_up",
]

Runner = Callable[..., BacktestResult]


class StrategyUnavailableError(RuntimeError):
    """A registered strategy whose module is not installed in this deployment."""


@dataclass(frozen=True)
class RunnerStrategy:
    """A strategy with its own simulator, imported on first use."""

    name: str
    description: str
    runner_path: str  # "module:function"
    params_path: str  # "module:attribute" holding a sequence of ParamSpec

    def _resolve(self, path: str) -> Any:
        module_name, _, attribute = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            raise StrategyUnavailableError(
                f"strategy {self.name!r} needs module {module_name!r} ({path}), which is not "
                "installed in this build"
            ) from exc
        try:
            return getattr(module, attribute)
        except AttributeError as exc:
            raise StrategyUnavailableError(
                f"strategy {self.name!r} needs {path}, but {module_name} has no {attribute!r}"
            ) from exc

    @property
    def runner(self) -> Runner:
        runner: Runner = self._resolve(self.runner_path)
        return runner

    @property
    def params(self) -> tuple[ParamSpec, ...]:
        return tuple(self._resolve(self.params_path))


StrategyEntry = BarStrategy | RunnerStrategy

STRATEGIES: Mapping[str, StrategyEntry] = {
    **BAR_STRATEGIES,
    "floor": RunnerStrategy(
        "floor",
        "Layered entries that scale in on retracements, reporting layer and retracement count.",
        "engine.floor:run_floor",
        "engine.floor:FLOOR_PARAMS",
    ),
    "max_points": RunnerStrategy(
        "max_points",
        "Seed 002's Max bot: point-measured pullback entries with take-profit and stop in points.",
        "engine.ticks:run_max_points",
        "engine.ticks:MAX_POINTS_PARAMS",
    ),
}


def get_strategy(name: Any) -> StrategyEntry:
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name]


def describe_strategies() -> list[dict[str, Any]]:
    """Every strategy with its parameter schema, for the REST and GraphQL listings."""
    return [
        {"name": s.name, "description": s.description, "params": [dict(p) for p in s.params]}
        for s in STRATEGIES.values()
    ]


class BacktestChunk(NamedTuple):
    """What one ``BacktestRun.step`` simulated: bars ``start`` to ``stop`` (exclusive)."""

    start: int
    stop: int
    trades: np.ndarray  # trade_dt, trades closed within the chunk
    ts: np.ndarray
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray
    metrics: dict[str, float]  # the checkpoint after the chunk's last bar


class BacktestRun:
    """A bar-simulator backtest run in chunks: ``step`` as often as wanted, then ``result``.

    Chunks give exactly the one-pass result. The ``state`` after any step is a NamedTuple of
    numbers that resumes the run (``start_backtest(..., state=...)``), in this process or
    another, with the metrics exact; a resumed run holds only the bars it simulated itself.
    """

    def __init__(
        self,
        bars: Mapping[str, np.ndarray],
        signals: np.ndarray,
        cfg: SimConfig,
        hours_ok: np.ndarray,
        state: SimState | None = None,
    ) -> None:
        self._ts = bars["ts"]
        self._close = bars["close"]
        self._open = bars.get("open", self._close)
        self._high = bars.get("high", self._close)
        self._low = bars.get("low", self._close)
        self._signals = signals
        self._cfg = cfg
        self._hours_ok = hours_ok
        if state is None:
            self._state = initial_state(cfg.initial_capital)
        else:
            self._state = state_from_dict(state_to_dict(state))  # exact field types
        n = self._ts.shape[0]
        if not 0 <= self._state.i <= n:
            raise ValueError(f"state.i must be within the {n} bars, got {self._state.i}")
        self._equity = np.empty(n)
        self._cash = np.empty(n)
        self._position = np.empty(n)
        first = self._state.i
        for curve in (self._equity, self._cash, self._position):
            curve[:first] = np.nan
        self._trades: list[np.ndarray] = []

    @property
    def state(self) -> SimState:
        return self._state

    @property
    def total(self) -> int:
        return int(self._ts.shape[0])

    @property
    def processed(self) -> int:
        return int(self._state.i)

    @property
    def done(self) -> bool:
        return self._state.i >= self.total

    def step(self, n_bars: int | None = None) -> BacktestChunk:
        """Simulate the next ``n_bars`` bars (all remaining when None)."""
        start = self._state.i
        stop = self.total if n_bars is None else min(self.total, start + max(0, int(n_bars)))
        self._state, buffer, written, _ = run_bars_nb(
            SignalSource.Array, self._signals, 0, 0, self._open, self._high, self._low,
            self._close, self._ts, self._hours_ok, self._cfg, self._state, stop, False,
            self._equity, self._cash, self._position, _trade_buffer(stop - start), _NO_CASH,
        )  # fmt: skip
        trades = _joined_trades([buffer[:written]])
        self._trades.append(trades)
        window = slice(start, stop)
        return BacktestChunk(
            start, stop, trades, self._ts[window], self._equity[window], self._cash[window],
            self._position[window], self.metrics(),
        )  # fmt: skip

    def metrics(self) -> dict[str, float]:
        """The metrics of the bars simulated so far (an open position marked to the last one)."""
        return _metrics(self._state, self._cfg, self._ts, self._close)

    def open_trade(self) -> np.ndarray:
        """The open position as a ``trade_dt`` record (empty when flat)."""
        return open_trade_record(self._state, self._cfg, self._ts, self._close)

    def result(self) -> BacktestResult:
        """Run the remaining bars and return the whole backtest; an open position is the last
        trade, status Open, marked to the last close."""
        if not self.done:
            self.step()
        trades = _joined_trades([*self._trades, self.open_trade()])
        return BacktestResult(
            trades=trades,
            equity=self._equity,
            cash=self._cash,
            position=self._position,
            metrics=self.metrics(),
        )


def _joined_trades(parts: Sequence[np.ndarray]) -> np.ndarray:
    """``np.concatenate`` of ``trade_dt`` arrays, copied as bytes. ``trade_dt`` holds a padding
    byte, and numpy copies records with padding field by field: 0.5 ms for 14,000 trades,
    twenty times the byte copy."""
    out = np.empty(sum(part.shape[0] for part in parts), dtype=trade_dt)
    raw = out.view(np.uint8)
    at = 0
    for part in parts:
        size = part.shape[0] * trade_dt.itemsize
        raw[at : at + size] = np.ascontiguousarray(part, dtype=trade_dt).view(np.uint8)
        at += size
    return out


def _with_open_trade(
    buffer: np.ndarray, written: int, state: SimState, cfg: SimConfig, ts: np.ndarray,
    close: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """The ``written`` closed trades at the start of the kernel's ``buffer`` and the open
    position's record after them, in the buffer itself when it has room and they fill at least
    half of it (no copy of the trades), else in an array of their own."""
    open_trade = open_trade_record(state, cfg, ts, close)
    total = written + open_trade.shape[0]
    if total > buffer.shape[0] or 2 * total < buffer.shape[0]:
        return _joined_trades([buffer[:written], open_trade])
    buffer[written:total] = open_trade
    return buffer[:total]


_NO_CASH = np.empty(0)  # run_bars_nb's cash_out, position_out or entry_cash, not kept


def _trade_buffer(n_bars: int) -> np.ndarray:
    """Room for the trades of ``n_bars`` bars at a trade every 64 bars; the kernel grows it."""
    return np.empty(16 + n_bars // 64, dtype=trade_dt)


def _metrics(
    state: SimState, cfg: SimConfig, ts: np.ndarray, close: np.ndarray
) -> dict[str, float]:
    """The metrics after ``state.i`` bars, an open position marked to the last close."""
    n = state.i
    last_close = float(close[n - 1]) if n else 0.0
    unrealized = open_pnl_nb(state, cfg, last_close) if n else 0.0
    ts_first = int(ts[0]) if n else 0
    ts_last = int(ts[n - 1]) if n else 0
    vector = metrics_vector_nb(state.acc, cfg.initial_capital, ts_first, ts_last, unrealized)
    return metrics_dict(vector)


def _price_columns(cfg: SimConfig) -> list[str]:
    columns = ["close"]
    if cfg.fill == Fill.NextOpen:
        columns.append("open")
    if not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit)):
        columns += ["open", "high", "low"]
    return list(dict.fromkeys(columns))


def prepare(
    ohlcv: Mapping[str, Any],
    strategy: BarStrategy,
    params: Mapping[str, Any] | None,
    options: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any], SimConfig, np.ndarray]:
    """Checked bars, parameters, kernel config and hours mask; raises before any work."""
    cfg, hours = sim_config(options)
    values = check_params(strategy.name, strategy.params, params)
    if strategy.check is not None:
        strategy.check(values)
    bars = check_bars(ohlcv, _price_columns(cfg))
    return bars, values, cfg, hours_mask(bars["ts"], hours)


def start_backtest(
    ohlcv: Mapping[str, Any],
    strategy: str,
    params: Mapping[str, Any] | None = None,
    *,
    state: SimState | None = None,
    **options: Unpack[BacktestOptions],
) -> BacktestRun:
    """A chunked run of a bar strategy (options as :func:`run_backtest`); ``state`` resumes a
    run from a checkpoint taken on the same input."""
    entry = get_strategy(strategy)
    if not isinstance(entry, BarStrategy):
        raise ValueError(  # noqa: TRY004 - a strategy name the chunked API cannot take
            f"strategy {strategy!r} runs in its own simulator and has no chunked run; "
            "use run_backtest"
        )
    bars, values, cfg, hours_ok = prepare(ohlcv, entry, params, options)
    return BacktestRun(bars, entry.signals(bars, values), cfg, hours_ok, state)


def run_backtest(
    ohlcv: Mapping[str, Any],
    strategy: str,
    params: Mapping[str, Any] | None = None,
    **options: Unpack[BacktestOptions],
) -> BacktestResult:
    """Backtest ``strategy`` with ``params`` (defaults from its schema) on ``ohlcv``.

    ``ohlcv`` maps ``ts`` (int64 ns, strictly increasing) and ``open``, ``high``, ``low``,
    ``close`` (positive) to equal-length arrays; other columns (``volume``, predictions) ride
    along. Options and defaults (rules in ``engine.simulate``):

    * ``fill="close"``: or ``"next_open"``, the order decided at a close fills at the next open.
    * ``fees=0.0``: fraction of traded value per side. ``slippage=0.0`` with
      ``slippage_unit="fraction"`` (of the price) or ``"points"`` (price units).
    * ``initial_capital=10_000.0``; ``direction="long"``, ``"short"`` or ``"both"``.
    * ``sizing="cash"`` with ``size=1.0`` (fraction of cash per entry, fees included: all in,
      fractional units), ``"units"`` (``size`` units) or ``"notional"`` (``size`` money).
    * ``stop_loss=None``, ``take_profit=None`` with ``stop_unit="fraction"`` (of the entry
      price) or ``"points"``; the stop-loss wins on a bar touching both.
    * ``max_bars=None``: close a position held that many bars.
    * ``allowed_hours=None``: UTC hours in which entries are allowed; positions close outside.

    Runner strategies (``floor``, ``max_points``) receive exactly the options given.
    """
    entry = get_strategy(strategy)
    if isinstance(entry, RunnerStrategy):
        return entry.runner(ohlcv, dict(params or {}), **options)
    cfg, hours = sim_config(options)
    values = check_params(entry.name, entry.params, params)
    if entry.check is not None:
        entry.check(values)
    columns = _price_columns(cfg)
    # A kernel computing its signals from the close checks the timestamps and the close as it
    # goes: one pass over the bars. Stops and next-open fills check their columns before.
    scan = entry.one_pass is None or columns != ["close"]
    bars = check_bars(ohlcv, columns, scan=scan)
    if entry.one_pass is None:
        signals = entry.signals(bars, values)
        source, fast, slow = SignalSource.Array, 0, 0
    else:
        signals = np.empty(0, dtype=np.uint8)
        source, fast, slow = entry.one_pass(values)
    return _run_once(ohlcv, bars, columns, (source, signals, fast, slow), not scan, cfg, hours)


def _run_once(
    ohlcv: Mapping[str, Any],
    bars: dict[str, np.ndarray],
    columns: list[str],
    signal_source: tuple[int, np.ndarray, int, int],
    check: bool,
    cfg: SimConfig,
    hours: Sequence[int] | None,
) -> BacktestResult:
    """``BacktestRun(...).result()`` in one kernel call: the same arrays, trades and metrics.
    ``signal_source`` is ``run_bars_nb``'s (source, signals, fast, slow).

    The kernel writes the per-bar equity alone; the cash and position curves, which few
    callers read, follow from it, the trades and the cash after each entry on first access
    (``held_curves``): written bar by bar they were a tenth of the run."""
    source, signals, fast, slow = signal_source
    ts = bars["ts"]
    close = bars["close"]
    n = ts.shape[0]
    equity = np.empty(n)
    # Room for an entry per bar, of which a run uses a few pages: memory committed as written.
    entry_cash = scratch(8 * n).view(np.float64)
    state, buffer, written, bad = run_bars_nb(
        source, signals, fast, slow, bars.get("open", close), bars.get("high", close),
        bars.get("low", close), close, ts, hours_mask(ts, hours), cfg,
        initial_state(cfg.initial_capital), n, check, equity, _NO_CASH, _NO_CASH,
        _trade_buffer(n), entry_cash,
    )  # fmt: skip
    if bad >= 0:
        check_bars(ohlcv, columns)  # raises the refusal a scan before the run would have
        raise AssertionError(f"run_bars_nb refused bar {bad}, which check_bars accepts")
    trades = _with_open_trade(buffer, written, state, cfg, ts, close)
    held = _HeldCurves(equity, trades, entry_cash)
    return BacktestResult(
        trades=trades,
        equity=equity,
        cash=held.cash,
        position=held.position,
        metrics=_metrics(state, cfg, ts, close),
    )


class _HeldCurves:
    """The cash and position curves of a run from bar 0, made together when either is first
    read (``held_curves``)."""

    def __init__(self, equity: np.ndarray, trades: np.ndarray, entry_cash: np.ndarray) -> None:
        self._inputs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = (
            equity, trades, entry_cash
        )  # fmt: skip
        self._curves: tuple[np.ndarray, np.ndarray] | None = None

    def _made(self) -> tuple[np.ndarray, np.ndarray]:
        if self._curves is None:
            assert self._inputs is not None
            self._curves = held_curves(*self._inputs, 0)
            self._inputs = None
        return self._curves

    def cash(self) -> np.ndarray:
        return self._made()[0]

    def position(self) -> np.ndarray:
        return self._made()[1]


def run_sweep(
    ohlcv: Mapping[str, Any],
    strategy: str,
    grid: Mapping[str, Sequence[Any]],
    **options: Unpack[BacktestOptions],
) -> SweepResult:
    """Metrics of every combination of ``grid`` (parameter name -> values; the others keep
    their defaults), options as :func:`run_backtest`, shared by all combinations.

    Bar strategies run their combinations in parallel (numba ``prange``) over one copy of the
    bars, keeping only the metrics. Combinations that break a rule between parameters (a fast
    window not below the slow one) are left out and listed in ``SweepResult.skipped``; a grid
    with no valid combination is a ``ValueError``. ``result.top(n, by=...)`` ranks them.
    """
    entry = get_strategy(strategy)
    combos, skipped = expand_grid(strategy, entry.params, grid, entry_check(entry))
    if isinstance(entry, RunnerStrategy):
        return sweep_runner(entry.name, entry.runner, ohlcv, combos, skipped, options)
    bars, _, cfg, hours_ok = prepare(ohlcv, entry, combos[0], options)
    return sweep_bars(entry, bars, cfg, hours_ok, combos, skipped)


def entry_check(entry: StrategyEntry) -> Callable[[Mapping[str, Any]], None] | None:
    return entry.check if isinstance(entry, BarStrategy) else None


def warm_up(strategies: Sequence[str] | None = None) -> float:
    """Load (or compile, the first time on a machine) every kernel a backtest or sweep of
    ``strategies`` (default: all bar strategies) uses, so that no request pays for it; for
    workers to call at start. Returns the seconds it took.

    Every kernel has one signature (C-contiguous float64 bars, int64 ns times), so a tiny run
    covers any later size and options.
    """
    started = time.perf_counter()
    names = list(BAR_STRATEGIES) if strategies is None else list(strategies)
    n = 64
    close = 100.0 + np.sin(np.arange(n) / 3.0)
    bars = {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close + 1.0, "low": close - 1.0, "close": close,
        "prediction": np.cos(np.arange(n) / 4.0),
    }  # fmt: skip
    busy: dict[str, Any] = {"fill": "next_open", "direction": "both", "stop_loss": 0.01,
                            "max_bars": 5, "allowed_hours": list(range(12))}  # fmt: skip
    for name in names:
        entry = get_strategy(name)
        run_backtest(bars, name, {})
        if isinstance(entry, BarStrategy):
            run_backtest(bars, name, {}, **busy)
            first = entry.params[0]
            if first["type"] in {"int", "float"}:
                run_sweep(bars, name, {first["name"]: [first["default"]]})
    return time.perf_counter() - started
