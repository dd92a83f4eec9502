"""Tick simulator for the ORCA "Max bot": point-measured pullback entries, TP/SL exits.

A setup per side runs an impulse -> pullback -> confirmation machine on tick prices; the
definitions of ``point_key`` ("A_B_C_D") and ``exit_strategy_key`` ("TP_SL") are written out in
``docs/engine-strategies.md`` and mirrored by the pure-Python reference in
``tests/engine/test_ticks.py``. The kernel carries all of its state in a ``TickState``, so a
stream can be fed in any number of chunks and gives exactly the one-pass result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.metrics import backtest_metrics
from engine.records import (
    BacktestResult,
    Direction,
    EventKind,
    ExitReason,
    TradeStatus,
    event_dt,
    trade_dt,
)

if TYPE_CHECKING:
    from engine.strategies import ParamSpec

__all__ = [
    "MAX_POINTS_PARAMS",
    "ExitKey",
    "PointKey",
    "SetupPhase",
    "TickChunk",
    "TickConfig",
    "TickSimulator",
    "TickState",
    "advance_setup_nb",
    "check_ticks",
    "initial_tick_state",
    "open_trade_record",
    "parse_exit_strategy_key",
    "parse_point_key",
    "run_max_points",
    "simulate_ticks",
    "simulate_ticks_nb",
    "tick_config",
]


class SetupPhaseT(NamedTuple):
    Seek: int = 0  # tracking the reference extreme, waiting for the impulse
    Armed: int = 1  # impulse seen, tracking the swing extreme, waiting for the pullback
    Pullback: int = 2  # pullback in the zone, waiting for the confirmation bounce


SetupPhase = SetupPhaseT()


class PointKey(NamedTuple):
    """``point_key`` "A_B_C_D", in points."""

    impulse: float  # A
    pullback: float  # B
    confirm: float  # C
    tolerance: float  # D


class ExitKey(NamedTuple):
    """``exit_strategy_key`` "TP_SL", in points."""

    take_profit: float
    stop_loss: float


class TickConfig(NamedTuple):
    """Kernel constants; distances are already in price units (points * point_size)."""

    impulse: float
    pullback: float
    max_pullback: float
    confirm: float
    take_profit: float
    stop_loss: float
    trade_long: bool
    trade_short: bool
    units: float
    fees: float
    slippage: float


class TickState(NamedTuple):
    """Everything the kernel needs to resume after the last tick it saw.

    Setup extremes are stored as prices; ``nan`` means "not set yet".
    """

    n_ticks: int  # ticks consumed so far: the global index of the next tick
    last_ts: int
    last_price: float
    cash: float
    position: float  # signed units
    in_trade: bool
    trade_direction: int  # Direction, meaningful while in_trade
    entry_index: int
    entry_ts: int
    entry_price: float
    entry_fee: float
    next_trade_id: int
    long_phase: int
    long_ref: float
    long_ext: float
    long_pull: float
    short_phase: int
    short_ref: float
    short_ext: float
    short_pull: float


class TickChunk(NamedTuple):
    """What one ``feed`` produced: trades closed and events inside the chunk, curves per tick."""

    trades: np.ndarray  # trade_dt, closed only
    events: np.ndarray  # event_dt
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray


_NO_TS = -(2**63)


def initial_tick_state(initial_capital: float) -> TickState:
    nan = math.nan
    return TickState(
        0, _NO_TS, nan, float(initial_capital), 0.0, False, Direction.Long, -1, _NO_TS, nan, 0.0,
        0, SetupPhase.Seek, nan, nan, nan, SetupPhase.Seek, nan, nan, nan,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def advance_setup_nb(
    phase: int, ref: float, ext: float, pull: float, y: float, cfg: TickConfig
) -> tuple[int, float, float, float, bool]:
    """Advance one side's setup by one tick in signed price space (y = price long, -price short).

    Working in signed space lets one machine serve both sides; negation is exact in IEEE 754,
    so the short side compares exactly the differences a mirrored implementation would.
    Returns the new (phase, ref, ext, pull, triggered).
    """
    nan = np.nan
    if phase == SetupPhase.Seek:
        if np.isnan(ref) or y < ref:
            ref = y
        if y - ref >= cfg.impulse:
            return SetupPhase.Armed, ref, y, nan, False
        return phase, ref, ext, pull, False
    if phase == SetupPhase.Armed:
        ext = max(ext, y)
        if ext - y >= cfg.pullback:
            if ext - y > cfg.max_pullback:
                return SetupPhase.Seek, y, nan, nan, False
            return SetupPhase.Pullback, ref, ext, y, False
        return phase, ref, ext, pull, False
    pull = min(pull, y)
    if ext - pull > cfg.max_pullback:
        return SetupPhase.Seek, y, nan, nan, False
    if y - pull >= cfg.confirm:
        return phase, ref, ext, pull, True
    return phase, ref, ext, pull, False


@njit(cache=True, nogil=True)
def _write_event_nb(
    events: np.ndarray, k: int, index: int, ts: int, kind: int, direction: int, price: float,
    units: float,
) -> None:  # fmt: skip
    ev = events[k]
    ev["bar_index"] = index
    ev["ts"] = ts
    ev["kind"] = kind
    ev["direction"] = direction
    ev["price"] = price
    ev["units"] = units
    ev["layer"] = 0
    ev["retracement_count"] = 0


@njit(cache=True, nogil=True)
def simulate_ticks_nb(
    ts: np.ndarray,
    price: np.ndarray,
    cfg: TickConfig,
    state: TickState,
    equity: np.ndarray,
    cash_out: np.ndarray,
    pos_out: np.ndarray,
) -> tuple[TickState, np.ndarray, np.ndarray]:
    """Run the point-key rules over one chunk of ticks, starting from ``state``.

    Equivalent to ``reference_simulate`` in ``tests/engine/test_ticks.py``. Writes equity, cash
    and signed position per tick into the three output arrays (callers pass views of one
    preallocated curve) and returns the state after the last tick, the trades closed in the
    chunk and its events.
    """
    n = price.shape[0]
    # A trade closed here needs its exit tick here, and every one but a carried-in trade also its
    # entry tick; entries never share a tick with an exit, so at most (n + 1) // 2 trades close.
    trades = np.empty((n + 1) // 2 + 1, dtype=trade_dt)
    events = np.empty(n, dtype=event_dt)
    nt = 0
    ne = 0

    offset = state.n_ticks
    cash = state.cash
    position = state.position
    in_trade = state.in_trade
    tdir = state.trade_direction
    entry_index = state.entry_index
    entry_ts = state.entry_ts
    entry_price = state.entry_price
    entry_fee = state.entry_fee
    trade_id = state.next_trade_id
    l_phase, l_ref, l_ext, l_pull = (
        state.long_phase,
        state.long_ref,
        state.long_ext,
        state.long_pull,
    )
    # the short setup runs on -price: see advance_setup_nb
    s_phase, s_ref, s_ext, s_pull = (
        state.short_phase, -state.short_ref, -state.short_ext, -state.short_pull,
    )  # fmt: skip
    units = cfg.units

    for j in range(n):
        x = price[j]
        t = ts[j]
        gi = offset + j
        if in_trade:
            if tdir == Direction.Long:
                gain = x - entry_price
                loss = entry_price - x
            else:
                gain = entry_price - x
                loss = x - entry_price
            reason = ExitReason.NoExit
            if gain >= cfg.take_profit:
                reason = ExitReason.TakeProfit
            elif loss >= cfg.stop_loss:
                reason = ExitReason.StopLoss
            if reason != ExitReason.NoExit:
                if tdir == Direction.Long:
                    fill = x - cfg.slippage
                    exit_fee = fill * units * cfg.fees
                    cash += fill * units - exit_fee
                    pnl = (fill - entry_price) * units - entry_fee - exit_fee
                else:
                    fill = x + cfg.slippage
                    exit_fee = fill * units * cfg.fees
                    cash -= fill * units + exit_fee
                    pnl = (entry_price - fill) * units - entry_fee - exit_fee
                position = 0.0
                in_trade = False
                tr = trades[nt]
                tr["id"] = trade_id
                tr["entry_index"] = entry_index
                tr["exit_index"] = gi
                tr["entry_ts"] = entry_ts
                tr["exit_ts"] = t
                tr["entry_price"] = entry_price
                tr["exit_price"] = fill
                tr["units"] = units
                tr["direction"] = tdir
                tr["status"] = TradeStatus.Closed
                tr["exit_reason"] = reason
                tr["layer"] = 0
                tr["pnl"] = pnl
                tr["return"] = pnl / (entry_price * units)
                tr["fees"] = entry_fee + exit_fee
                nt += 1
                trade_id += 1
                _write_event_nb(events, ne, gi, t, EventKind.Exit, tdir, fill, units)
                ne += 1
                # both setups restart from the exit tick's price
                l_phase, l_ref, l_ext, l_pull = SetupPhase.Seek, x, np.nan, np.nan
                s_phase, s_ref, s_ext, s_pull = SetupPhase.Seek, -x, np.nan, np.nan
        else:
            go_long = False
            go_short = False
            if cfg.trade_long:
                l_phase, l_ref, l_ext, l_pull, go_long = advance_setup_nb(
                    l_phase, l_ref, l_ext, l_pull, x, cfg
                )
            if cfg.trade_short:
                s_phase, s_ref, s_ext, s_pull, go_short = advance_setup_nb(
                    s_phase, s_ref, s_ext, s_pull, -x, cfg
                )
            if go_long or go_short:
                tdir = Direction.Long if go_long else Direction.Short
                if tdir == Direction.Long:
                    entry_price = x + cfg.slippage
                    entry_fee = entry_price * units * cfg.fees
                    cash -= entry_price * units + entry_fee
                    position = units
                else:
                    entry_price = x - cfg.slippage
                    entry_fee = entry_price * units * cfg.fees
                    cash += entry_price * units - entry_fee
                    position = -units
                in_trade = True
                entry_index = gi
                entry_ts = t
                _write_event_nb(events, ne, gi, t, EventKind.Entry, tdir, entry_price, units)
                ne += 1
                l_phase, l_ref, l_ext, l_pull = SetupPhase.Seek, np.nan, np.nan, np.nan
                s_phase, s_ref, s_ext, s_pull = SetupPhase.Seek, np.nan, np.nan, np.nan
        equity[j] = cash + position * x
        cash_out[j] = cash
        pos_out[j] = position

    last_ts = state.last_ts
    last_price = state.last_price
    if n > 0:
        last_ts = ts[n - 1]
        last_price = price[n - 1]
    new_state = TickState(
        offset + n, last_ts, last_price, cash, position, in_trade, tdir, entry_index, entry_ts,
        entry_price, entry_fee, trade_id, l_phase, l_ref, l_ext, l_pull,
        s_phase, -s_ref, -s_ext, -s_pull,
    )  # fmt: skip
    return new_state, trades[:nt], events[:ne]


# --------------------------------------------------------------------------- object API

_KEY_PART = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CHUNK = 1 << 18  # ticks per kernel call inside simulate_ticks: bounds the record buffers
_DIRECTIONS = ("long", "short", "both")


def _parse_key(text: object, name: str, labels: tuple[str, ...]) -> tuple[float, ...]:
    shape = "_".join(labels)
    if not isinstance(text, str):
        # ValueError, not TypeError: every bad argument reaches the API caller as one type
        raise ValueError(f"{name} must be a string like {shape!r}, got {text!r}")  # noqa: TRY004
    parts = text.split("_")
    if len(parts) != len(labels) or not all(_KEY_PART.fullmatch(p) for p in parts):
        raise ValueError(
            f"{name} must be {len(labels)} '_'-separated numbers {shape}, got {text!r}"
        )
    values = tuple(float(p) for p in parts)
    for label, value in zip(labels, values, strict=True):
        if value < 0:
            raise ValueError(f"{name} {label} must not be negative, got {value:g} in {text!r}")
    return values


def parse_point_key(point_key: object) -> PointKey:
    """Parse "A_B_C_D" (impulse, pullback, confirm, tolerance in points); A, B, C > 0, D >= 0."""
    key = PointKey(*_parse_key(point_key, "point_key", ("A", "B", "C", "D")))
    for label, value in zip("ABC", key[:3], strict=True):
        if value == 0:
            raise ValueError(f"point_key {label} must be > 0, got 0 in {point_key!r}")
    return key


def parse_exit_strategy_key(exit_strategy_key: object) -> ExitKey:
    """Parse "TP_SL" (take-profit and stop-loss in points, both > 0)."""
    key = ExitKey(*_parse_key(exit_strategy_key, "exit_strategy_key", ("TP", "SL")))
    for label, value in zip(("TP", "SL"), key, strict=True):
        if value == 0:
            raise ValueError(
                f"exit_strategy_key {label} must be > 0, got 0 in {exit_strategy_key!r}"
            )
    return key


def _positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def tick_config(
    *,
    point_key: str,
    exit_strategy_key: str,
    point_size: float = 1.0,
    direction: str = "both",
    fees: float = 0.0,
    slippage: float = 0.0,
    units: float = 1.0,
) -> TickConfig:
    """Validate the rule parameters and turn points into price distances once."""
    pk = parse_point_key(point_key)
    ek = parse_exit_strategy_key(exit_strategy_key)
    ps = _positive("point_size", point_size)
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
    fee = _positive("fees", fees, allow_zero=True)
    if fee >= 1:
        raise ValueError(f"fees is a fraction per side and must be < 1, got {fees!r}")
    return TickConfig(
        impulse=pk.impulse * ps,
        pullback=pk.pullback * ps,
        max_pullback=(pk.pullback + pk.tolerance) * ps,
        confirm=pk.confirm * ps,
        take_profit=ek.take_profit * ps,
        stop_loss=ek.stop_loss * ps,
        trade_long=direction != "short",
        trade_short=direction != "long",
        units=_positive("units", units),
        fees=fee,
        slippage=_positive("slippage", slippage, allow_zero=True),
    )


def check_ticks(
    ts: ArrayLike, price: ArrayLike, *, after_ts: int = _NO_TS
) -> tuple[np.ndarray, np.ndarray]:
    """Return (int64 ts, float64 price) or raise ValueError naming the argument and value.

    Ticks may share a timestamp (several prints in one nanosecond) but never go back in time,
    also across chunks (``after_ts`` is the last timestamp already consumed).
    """
    t = np.asarray(ts)
    p = np.asarray(price)
    if t.ndim != 1:
        raise ValueError(f"ts must be one-dimensional, got shape {t.shape}")
    if p.ndim != 1:
        raise ValueError(f"price must be one-dimensional, got shape {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise ValueError(
            f"ts and price must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    if t.dtype.kind == "M":
        t = t.astype("datetime64[ns]").view(np.int64)
    elif t.dtype.kind in "iu" or t.size == 0:
        t = t.astype(np.int64, copy=False)
    else:
        raise ValueError(f"ts must be int64 nanoseconds, got dtype {t.dtype}")
    if p.dtype.kind not in "iuf" and p.size:
        raise ValueError(f"price must be numeric, got dtype {p.dtype}")
    p = p.astype(np.float64, copy=False)
    bad = np.flatnonzero(~(np.isfinite(p) & (p > 0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"price must be finite and > 0, got price[{i}]={float(p[i])!r}")
    if t.size:
        if t[0] < after_ts:
            raise ValueError(
                f"ts must not go back in time across chunks, got ts[0]={int(t[0])} after {after_ts}"
            )
        back = np.flatnonzero(np.diff(t) < 0)
        if back.size:
            i = int(back[0])
            raise ValueError(
                f"ts must be sorted ascending, got ts[{i + 1}]={int(t[i + 1])} < ts[{i}]={int(t[i])}"
            )
    return np.ascontiguousarray(t), np.ascontiguousarray(p)


def open_trade_record(state: TickState, units: float) -> np.ndarray:
    """The position still open after the last tick, as vectorbt reports it: marked to the last
    price, exit fee not yet paid."""
    out = np.zeros(1 if state.in_trade else 0, dtype=trade_dt)
    if not state.in_trade:
        return out
    sign = 1.0 if state.trade_direction == Direction.Long else -1.0
    pnl = (state.last_price - state.entry_price) * units * sign - state.entry_fee
    out[0] = (
        state.next_trade_id, state.entry_index, -1, state.entry_ts, state.last_ts,
        state.entry_price, state.last_price, units, state.trade_direction, TradeStatus.Open,
        ExitReason.NoExit, 0, pnl, pnl / (state.entry_price * units), state.entry_fee,
    )  # fmt: skip
    return out


class TickSimulator:
    """Feeds a tick stream chunk by chunk; ``state`` after any chunk resumes the run exactly.

    A worker feeds chunks to report progress, checkpoints ``state`` (a NamedTuple of scalars,
    ``state._asdict()`` serialises it) and can stop between any two chunks.
    """

    def __init__(
        self,
        *,
        point_key: str,
        exit_strategy_key: str,
        point_size: float = 1.0,
        direction: str = "both",
        fees: float = 0.0,
        slippage: float = 0.0,
        initial_capital: float = 10_000.0,
        units: float = 1.0,
        state: TickState | None = None,
    ) -> None:
        self.config = tick_config(
            point_key=point_key, exit_strategy_key=exit_strategy_key, point_size=point_size,
            direction=direction, fees=fees, slippage=slippage, units=units,
        )  # fmt: skip
        capital = _positive("initial_capital", initial_capital)
        self.state = initial_tick_state(capital) if state is None else TickState(*state)

    def feed(self, ts: ArrayLike, price: ArrayLike) -> TickChunk:
        t, p = check_ticks(ts, price, after_ts=self.state.last_ts)
        n = p.shape[0]
        equity = np.empty(n)
        cash = np.empty(n)
        position = np.empty(n)
        self.state, trades, events = self._run(t, p, equity, cash, position)
        return TickChunk(trades, events, equity, cash, position)

    def _run(
        self, t: np.ndarray, p: np.ndarray, equity: np.ndarray, cash: np.ndarray,
        position: np.ndarray,
    ) -> tuple[TickState, np.ndarray, np.ndarray]:  # fmt: skip
        state, trades, events = simulate_ticks_nb(
            t, p, self.config, self.state, equity, cash, position
        )
        return TickState(*state), trades.copy(), events.copy()

    def open_trades(self) -> np.ndarray:
        return open_trade_record(self.state, self.config.units)


def simulate_ticks(
    ts: ArrayLike,
    price: ArrayLike,
    *,
    point_key: str,
    exit_strategy_key: str,
    point_size: float = 1.0,
    direction: str = "both",
    fees: float = 0.0,
    slippage: float = 0.0,
    initial_capital: float = 10_000.0,
    units: float = 1.0,
) -> BacktestResult:
    """Backtest the Max bot's point rules over a tick stream (definitions: docs/engine-strategies.md).

    Trades are indexed in tick space; equity, cash and position have one value per tick; a
    position open after the last tick is an open trade marked to the last price.
    """
    sim = TickSimulator(
        point_key=point_key, exit_strategy_key=exit_strategy_key, point_size=point_size,
        direction=direction, fees=fees, slippage=slippage, initial_capital=initial_capital,
        units=units,
    )  # fmt: skip
    t, p = check_ticks(ts, price)
    n = p.shape[0]
    equity = np.empty(n)
    cash = np.empty(n)
    position = np.empty(n)
    trades: list[np.ndarray] = []
    events: list[np.ndarray] = []
    # Internal chunks keep the kernel's worst-case record buffers small; by the chunking
    # guarantee the result is the one-pass result.
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        sim.state, tr, ev = sim._run(
            t[start:stop], p[start:stop], equity[start:stop], cash[start:stop],
            position[start:stop],
        )  # fmt: skip
        trades.append(tr)
        events.append(ev)
    trades.append(sim.open_trades())
    all_trades = np.concatenate(trades)
    all_events = np.concatenate(events) if events else np.empty(0, dtype=event_dt)
    return BacktestResult(
        trades=all_trades,
        equity=equity,
        cash=cash,
        position=position,
        metrics=backtest_metrics(t, equity, position, all_trades, float(initial_capital)),
        events=all_events,
        extras={
            "point_key": parse_point_key(point_key)._asdict(),
            "exit_strategy_key": parse_exit_strategy_key(exit_strategy_key)._asdict(),
            "state": sim.state._asdict(),
        },
    )


# --------------------------------------------------------------------------- registry runner


MAX_POINTS_PARAMS: list[ParamSpec] = [
    {
        "name": "point_key",
        "type": "str",
        "default": "15_7_5_2",
        "bounds": None,
        "description": "A_B_C_D in points: impulse A arms a setup, a pullback of B to B+D from "
        "the swing extreme qualifies it, a bounce of C off the pullback extreme enters",
    },
    {
        "name": "exit_strategy_key",
        "type": "str",
        "default": "15_15",
        "bounds": None,
        "description": "TP_SL in points from the entry fill: take-profit and stop-loss",
    },
    {
        "name": "point_size",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "price units per point (1.0 for NQ and ES index points); must be > 0",
    },
    {
        "name": "units",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "units per trade; pnl is price difference * units, so pass contracts * "
        "multiplier for currency pnl; must be > 0",
    },
]

_RUNNER_OPTIONS = ("fees", "slippage", "initial_capital", "direction", "fill")


def run_max_points(
    ohlcv: Mapping[str, np.ndarray], params: Mapping[str, Any], **options: Any
) -> BacktestResult:
    """Registry runner: the tick rules on bars, one tick per bar at its close.

    A bar does not say in which order its high and low traded, so only the close is used.
    Fills are at the close of the bar that triggers them; ``fill="next_open"`` is refused
    because the tick rules fill on the triggering tick.
    """
    unknown = sorted(set(params) - {p["name"] for p in MAX_POINTS_PARAMS})
    if unknown:
        raise ValueError(f"unknown max_points parameter {unknown[0]!r}")
    bad = sorted(set(options) - set(_RUNNER_OPTIONS))
    if bad:
        raise ValueError(f"unknown max_points option {bad[0]!r}; accepted: {_RUNNER_OPTIONS}")
    fill = options.get("fill", "close")
    if fill != "close":
        raise ValueError(
            f"fill must be 'close' for max_points (ticks fill on the tick), got {fill!r}"
        )
    for key in ("ts", "close"):
        if key not in ohlcv:
            raise ValueError(f"ohlcv is missing {key!r}")
    for key, column in ohlcv.items():
        if len(column) != len(ohlcv["ts"]):
            raise ValueError(
                f"ohlcv columns must have the same length, got {key!r} of {len(column)} "
                f"and 'ts' of {len(ohlcv['ts'])}"
            )
    values = {p["name"]: params.get(p["name"], p["default"]) for p in MAX_POINTS_PARAMS}
    ts, close = check_ticks(ohlcv["ts"], ohlcv["close"])
    repeated = np.flatnonzero(np.diff(ts) == 0)
    if repeated.size:
        i = int(repeated[0]) + 1
        raise ValueError(f"ts must be strictly increasing for bars, got ts[{i}]={int(ts[i])} twice")
    return simulate_ticks(
        ts,
        close,
        point_key=values["point_key"],
        exit_strategy_key=values["exit_strategy_key"],
        point_size=values["point_size"],
        units=values["units"],
        direction=options.get("direction", "both"),
        fees=options.get("fees", 0.0),
        slippage=options.get("slippage", 0.0),
        initial_capital=options.get("initial_capital", 10_000.0),
    )
