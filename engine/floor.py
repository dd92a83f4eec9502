"""The layered "floor" strategy: enter on an SMA cross, add a layer at each retracement floor.

Rules, in full, are in ``docs/engine-strategies.md`` ("floor") and in the plain-Python reference
of ``tests/engine/test_floor.py``. Every decision is taken on a bar's close and filled at that
close or at the next bar's open; a basket of up to ``max_layers`` layers exits as a whole at a
take-profit from its average entry or a stop below (above, short) its newest layer. The kernel
carries its state (SMA window, open layers, a pending next-open order), so a run fed in chunks
equals the one-pass run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
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
    "FLOOR_PARAMS",
    "FloorChunk",
    "FloorConfig",
    "FloorSimulator",
    "FloorState",
    "Pending",
    "check_bars",
    "floor_config",
    "initial_floor_state",
    "run_floor",
    "simulate_floor_nb",
]


class PendingT(NamedTuple):
    """A decision taken at a close that fills at the next bar's open (``fill="next_open"``)."""

    Nothing: int = 0
    Open: int = 1
    Add: int = 2
    Exit: int = 3


Pending = PendingT()


class FloorConfig(NamedTuple):
    """Kernel constants. Distances are price units, or fractions when ``percent``."""

    window: int
    percent: bool
    retracement: float
    take_profit: float
    stop_loss: float  # 0: no stop
    layer_units: np.ndarray  # float64, one per layer; its length is max_layers
    trade_long: bool
    trade_short: bool
    fees: float
    slippage: float
    next_open: bool


class FloorState(NamedTuple):
    """Everything needed to resume after the last bar seen; arrays are never mutated in place."""

    n_bars: int
    last_ts: int
    last_close: float
    cash: float
    position: float
    closes: np.ndarray  # ring buffer of the last `window` closes
    n_closes: int
    prev_close: float
    prev_sma: float  # nan until the SMA exists
    side: int  # Direction of the open basket
    n_layers: int  # 0: flat
    retracement_count: int
    ref: float  # the floor the next retracement is measured from
    layer_price: np.ndarray
    layer_units: np.ndarray
    layer_fee: np.ndarray
    layer_index: np.ndarray
    layer_ts: np.ndarray
    pending: int  # Pending
    pending_side: int
    pending_reason: int  # ExitReason of a pending exit
    next_trade_id: int


class FloorChunk(NamedTuple):
    trades: np.ndarray  # trade_dt, layers closed in the chunk
    retracements: np.ndarray  # int32 per trade: the basket's retracement_count at its exit
    events: np.ndarray  # event_dt
    equity: np.ndarray
    cash: np.ndarray
    position: np.ndarray


_NO_TS = -(2**63)


def initial_floor_state(cfg: FloorConfig, initial_capital: float) -> FloorState:
    m = cfg.layer_units.shape[0]
    nan = math.nan
    return FloorState(
        0, _NO_TS, nan, float(initial_capital), 0.0, np.zeros(cfg.window), 0, nan, nan,
        Direction.Long, 0, 0, nan, np.zeros(m), np.zeros(m), np.zeros(m),
        np.full(m, -1, np.int64), np.full(m, _NO_TS, np.int64), Pending.Nothing, Direction.Long,
        ExitReason.NoExit, 0,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def _event_nb(
    events: np.ndarray, k: int, index: int, ts: int, kind: int, side: int, price: float,
    units: float, layer: int, retracements: int,
) -> None:  # fmt: skip
    ev = events[k]
    ev["bar_index"] = index
    ev["ts"] = ts
    ev["kind"] = kind
    ev["direction"] = side
    ev["price"] = price
    ev["units"] = units
    ev["layer"] = layer
    ev["retracement_count"] = retracements


@njit(cache=True, nogil=True)
def _level_nb(base: float, dist: float, percent: bool, up: bool) -> float:
    """``base`` moved by ``dist`` price units, or by the fraction ``dist`` of itself."""
    if percent:
        return base * (1.0 + dist) if up else base * (1.0 - dist)
    return base + dist if up else base - dist


@njit(cache=True, nogil=True)
def _fill_nb(
    action: int, act_side: int, reason: int, base: float, gi: int, t: int, cfg: FloorConfig,
    side: int, n_layers: int, retr: int, cash: float, position: float, trade_id: int,
    l_price: np.ndarray, l_units: np.ndarray, l_fee: np.ndarray, l_index: np.ndarray,
    l_ts: np.ndarray, trades: np.ndarray, trade_retr: np.ndarray, nt: int, events: np.ndarray,
    ne: int,
) -> tuple[int, int, int, float, float, float, int, int, int]:  # fmt: skip
    """Fill an open, add or exit at ``base`` (slippage against the trader); writes the layer
    arrays, trades and events and returns (side, n_layers, retr, ref, cash, position, trade_id,
    nt, ne). ``ref`` is nan after an exit: a flat basket has no floor."""
    buy = (act_side == Direction.Long) != (action == Pending.Exit)
    fill = base + cfg.slippage if buy else base - cfg.slippage
    if action == Pending.Exit:
        units_out = 0.0
        for k in range(n_layers):
            u = l_units[k]
            fee = fill * u * cfg.fees
            if side == Direction.Long:
                cash += fill * u - fee
                pnl = (fill - l_price[k]) * u - l_fee[k] - fee
            else:
                cash -= fill * u + fee
                pnl = (l_price[k] - fill) * u - l_fee[k] - fee
            units_out += u
            tr = trades[nt]
            tr["id"] = trade_id
            tr["entry_index"] = l_index[k]
            tr["exit_index"] = gi
            tr["entry_ts"] = l_ts[k]
            tr["exit_ts"] = t
            tr["entry_price"] = l_price[k]
            tr["exit_price"] = fill
            tr["units"] = u
            tr["direction"] = side
            tr["status"] = TradeStatus.Closed
            tr["exit_reason"] = reason
            tr["layer"] = k + 1
            tr["pnl"] = pnl
            tr["return"] = pnl / (l_price[k] * u)
            tr["fees"] = l_fee[k] + fee
            trade_retr[nt] = retr
            nt += 1
            trade_id += 1
        _event_nb(events, ne, gi, t, EventKind.Exit, side, fill, units_out, n_layers, retr)
        return side, 0, retr, np.nan, cash, 0.0, trade_id, nt, ne + 1
    if action == Pending.Open:
        side = act_side
        n_layers = 0
        retr = 0
    u = cfg.layer_units[n_layers]
    fee = fill * u * cfg.fees
    if side == Direction.Long:
        cash -= fill * u + fee
        position += u
    else:
        cash += fill * u - fee
        position -= u
    l_price[n_layers] = fill
    l_units[n_layers] = u
    l_fee[n_layers] = fee
    l_index[n_layers] = gi
    l_ts[n_layers] = t
    n_layers += 1
    kind = EventKind.Entry if n_layers == 1 else EventKind.ScaleIn
    _event_nb(events, ne, gi, t, kind, side, fill, u, n_layers, retr)
    return side, n_layers, retr, fill, cash, position, trade_id, nt, ne + 1


@njit(cache=True, nogil=True)
def simulate_floor_nb(
    ts: np.ndarray,
    open_: np.ndarray,
    close: np.ndarray,
    cfg: FloorConfig,
    state: FloorState,
    equity: np.ndarray,
    cash_out: np.ndarray,
    pos_out: np.ndarray,
) -> tuple[FloorState, np.ndarray, np.ndarray, np.ndarray]:
    """Run the floor rules over one chunk of bars, starting from ``state``.

    Equivalent to ``reference_floor`` in ``tests/engine/test_floor.py``. Writes equity, cash and
    signed position per bar into the output arrays; returns the new state, the layer trades
    closed in the chunk, each one's basket retracement count, and the events.
    """
    n = close.shape[0]
    m = cfg.layer_units.shape[0]
    # at most one fill per bar, so closed layers are those carried in plus one per bar
    trades = np.empty(n + m, dtype=trade_dt)
    trade_retr = np.empty(n + m, dtype=np.int32)
    events = np.empty(2 * n, dtype=event_dt)  # a fill and a signal per bar at most
    nt = 0
    ne = 0

    offset = state.n_bars
    cash = state.cash
    position = state.position
    closes = state.closes.copy()
    n_closes = state.n_closes
    prev_close = state.prev_close
    prev_sma = state.prev_sma
    side = state.side
    n_layers = state.n_layers
    retr = state.retracement_count
    ref = state.ref
    l_price = state.layer_price.copy()
    l_units = state.layer_units.copy()
    l_fee = state.layer_fee.copy()
    l_index = state.layer_index.copy()
    l_ts = state.layer_ts.copy()
    pending = state.pending
    pending_side = state.pending_side
    pending_reason = state.pending_reason
    trade_id = state.next_trade_id
    w = cfg.window

    for j in range(n):
        gi = offset + j
        t = ts[j]
        c = close[j]
        # 1. what the previous close decided under fill="next_open" fills at this open
        if pending != Pending.Nothing:
            side, n_layers, retr, ref, cash, position, trade_id, nt, ne = _fill_nb(
                pending, pending_side, pending_reason, open_[j], gi, t, cfg, side, n_layers,
                retr, cash, position, trade_id, l_price, l_units, l_fee, l_index, l_ts, trades,
                trade_retr, nt, events, ne,
            )  # fmt: skip
            pending = Pending.Nothing
        # 2. the SMA of the closes up to and including this bar, oldest first
        closes[n_closes % w] = c
        n_closes += 1
        sma = np.nan
        if n_closes >= w:
            s = 0.0
            for k in range(w):
                s += closes[(n_closes + k) % w]
            sma = s / w
        # 3. this close's decision: exits before retracements, entries only when flat
        action = Pending.Nothing
        act_side = side
        reason = ExitReason.NoExit
        if n_layers > 0:
            long = side == Direction.Long
            num = 0.0
            den = 0.0
            for k in range(n_layers):
                num += l_units[k] * l_price[k]
                den += l_units[k]
            avg = num / den
            last = l_price[n_layers - 1]
            if cfg.stop_loss > 0.0:
                stop = _level_nb(last, cfg.stop_loss, cfg.percent, not long)
                if (c <= stop) if long else (c >= stop):
                    reason = ExitReason.StopLoss
            if reason == ExitReason.NoExit:
                target = _level_nb(avg, cfg.take_profit, cfg.percent, long)
                if (c >= target) if long else (c <= target):
                    reason = ExitReason.TakeProfit
            if reason != ExitReason.NoExit:
                action = Pending.Exit
            else:
                floor = _level_nb(ref, cfg.retracement, cfg.percent, not long)
                if (c <= floor) if long else (c >= floor):
                    retr += 1
                    if n_layers < m:
                        action = Pending.Add
                        _event_nb(events, ne, gi, t, EventKind.Signal, side, c,
                                  cfg.layer_units[n_layers], n_layers + 1, retr)  # fmt: skip
                        ne += 1
                    else:
                        ref = c  # no layer left: the floor moves without one
        elif not np.isnan(sma) and not np.isnan(prev_sma):
            if cfg.trade_long and prev_close <= prev_sma and c > sma:
                action = Pending.Open
                act_side = Direction.Long
            elif cfg.trade_short and prev_close >= prev_sma and c < sma:
                action = Pending.Open
                act_side = Direction.Short
            if action == Pending.Open:
                retr = 0
                _event_nb(events, ne, gi, t, EventKind.Signal, act_side, c,
                          cfg.layer_units[0], 1, 0)  # fmt: skip
                ne += 1
        prev_close = c
        prev_sma = sma
        # 4. fill it at this close, or hold it for the next open
        if action != Pending.Nothing:
            if cfg.next_open:
                pending, pending_side, pending_reason = action, act_side, reason
            else:
                side, n_layers, retr, ref, cash, position, trade_id, nt, ne = _fill_nb(
                    action, act_side, reason, c, gi, t, cfg, side, n_layers, retr, cash,
                    position, trade_id, l_price, l_units, l_fee, l_index, l_ts, trades,
                    trade_retr, nt, events, ne,
                )  # fmt: skip
        equity[j] = cash + position * c
        cash_out[j] = cash
        pos_out[j] = position

    last_ts = state.last_ts
    last_close = state.last_close
    if n > 0:
        last_ts = ts[n - 1]
        last_close = close[n - 1]
    new_state = FloorState(
        offset + n, last_ts, last_close, cash, position, closes, n_closes, prev_close, prev_sma,
        side, n_layers, retr, ref, l_price, l_units, l_fee, l_index, l_ts, pending, pending_side,
        pending_reason, trade_id,
    )  # fmt: skip
    return new_state, trades[:nt], trade_retr[:nt], events[:ne]


# --------------------------------------------------------------------------- parameters

FLOOR_PARAMS: list[ParamSpec] = [
    {
        "name": "sma_window",
        "type": "int",
        "default": 20,
        "bounds": (2, None),
        "description": "bars in the simple moving average of closes; a close crossing it opens "
        "the first layer (above: long, below: short)",
    },
    {
        "name": "unit",
        "type": "str",
        "default": "percent",
        "bounds": None,
        "description": "'percent' or 'points' (price units): how retracement, take_profit and "
        "stop_loss are measured",
    },
    {
        "name": "retracement",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "adverse move from the newest layer's entry that adds the next layer; > 0 "
        "(and < 100 in percent)",
    },
    {
        "name": "max_layers",
        "type": "int",
        "default": 4,
        "bounds": (1, 100),
        "description": "most layers a basket holds, the first included",
    },
    {
        "name": "take_profit",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "favourable move from the basket's unit-weighted average entry that exits "
        "every layer; > 0 (and < 100 in percent)",
    },
    {
        "name": "stop_loss",
        "type": "float",
        "default": 0.0,
        "bounds": (0.0, None),
        "description": "adverse move from the newest layer's entry that exits every layer; 0 "
        "disables it (< 100 in percent)",
    },
    {
        "name": "units",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "units of the first layer; > 0",
    },
    {
        "name": "scale",
        "type": "float",
        "default": 1.0,
        "bounds": (0.0, None),
        "description": "layer k holds units * scale**(k - 1); 1 keeps layers equal, 2 doubles "
        "each; > 0",
    },
    {
        "name": "layer_units",
        "type": "str",
        "default": "",
        "bounds": None,
        "description": "explicit units per layer as '_'-separated numbers, at least max_layers "
        "of them (e.g. '1_1_2_3'); overrides units and scale; '' uses them",
    },
]

_PARAM_NAMES = tuple(p["name"] for p in FLOOR_PARAMS)
_OPTIONS = ("fees", "slippage", "initial_capital", "direction", "fill")
_DIRECTIONS = ("long", "short", "both")
_FILLS = ("close", "next_open")
_UNITS = ("percent", "points")


def _number(name: str, value: object, *, zero_ok: bool = False, below: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a number, got {value!r}")  # noqa: TRY004
    v = float(value)
    if not (v > 0 or (zero_ok and v == 0)) or not v < below:
        low = ">= 0" if zero_ok else "> 0"
        high = f" and < {below:g}" if below < math.inf else ""
        raise ValueError(f"{name} must be {low}{high}, got {value!r}")
    return v


def _integer(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
    v = int(value)
    if v < low or (high is not None and v > high):
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {span}, got {value!r}")
    return v


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return str(value)


def _layer_units(raw: object, units: object, scale: object, max_layers: int) -> np.ndarray:
    """Sizes per layer: an explicit "u1_u2_..." string (the registry's type for lists) or
    sequence, else units * scale**(k - 1) for layer k."""
    if raw is None or raw == "":
        u = _number("units", units)
        q = _number("scale", scale)
        try:
            sizes = np.array([u * q**k for k in range(max_layers)])
        except OverflowError:
            sizes = np.array([math.inf])
        if not np.all(np.isfinite(sizes)):
            raise ValueError(f"units * scale**k overflows for units={units!r}, scale={scale!r}")
        return sizes
    if isinstance(raw, str):
        parts = raw.split("_")
        try:
            values: list[object] = [float(x) for x in parts]
        except ValueError:
            raise ValueError(f"layer_units must be '_'-separated numbers, got {raw!r}") from None
    elif isinstance(raw, Sequence | np.ndarray):
        values = list(raw)
    else:
        msg = f"layer_units must be a string like '1_1_2' or a sequence, got {raw!r}"
        raise ValueError(msg)  # noqa: TRY004
    # a longer ladder is fine, so one ladder can serve a sweep over max_layers
    if len(values) < max_layers:
        raise ValueError(
            f"layer_units must hold at least max_layers={max_layers} sizes, got {len(values)} "
            f"in {raw!r}"
        )
    return np.array([_number("layer_units item", v) for v in values[:max_layers]])


def floor_config(params: Mapping[str, Any], options: Mapping[str, Any]) -> FloorConfig:
    """Validate parameters and options (defaults from FLOOR_PARAMS) into the kernel's config."""
    unknown = sorted(set(params) - set(_PARAM_NAMES))
    if unknown:
        raise ValueError(f"unknown floor parameter {unknown[0]!r}; accepted: {_PARAM_NAMES}")
    bad = sorted(set(options) - set(_OPTIONS))
    if bad:
        raise ValueError(f"unknown floor option {bad[0]!r}; accepted: {_OPTIONS}")
    p = {spec["name"]: params.get(spec["name"], spec["default"]) for spec in FLOOR_PARAMS}
    percent = _choice("unit", p["unit"], _UNITS) == "percent"
    cap = 100.0 if percent else math.inf
    max_layers = _integer("max_layers", p["max_layers"], 1, 100)
    layer_units = _layer_units(p["layer_units"], p["units"], p["scale"], max_layers)
    scale_dist = 100.0 if percent else 1.0
    fees = _number("fees", options.get("fees", 0.0), zero_ok=True, below=1.0)
    direction = _choice("direction", options.get("direction", "long"), _DIRECTIONS)
    return FloorConfig(
        window=_integer("sma_window", p["sma_window"], 2),
        percent=percent,
        retracement=_number("retracement", p["retracement"], below=cap) / scale_dist,
        take_profit=_number("take_profit", p["take_profit"], below=cap) / scale_dist,
        stop_loss=_number("stop_loss", p["stop_loss"], zero_ok=True, below=cap) / scale_dist,
        layer_units=layer_units,
        trade_long=direction != "short",
        trade_short=direction != "long",
        fees=fees,
        slippage=_number("slippage", options.get("slippage", 0.0), zero_ok=True),
        next_open=_choice("fill", options.get("fill", "close"), _FILLS) == "next_open",
    )


def check_bars(
    ts: ArrayLike, open_: ArrayLike, close: ArrayLike, *, after_ts: int = _NO_TS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (int64 ts, float64 open, float64 close) or raise ValueError naming the argument."""
    t = np.asarray(ts)
    if t.ndim != 1:
        raise ValueError(f"ts must be one-dimensional, got shape {t.shape}")
    if t.dtype.kind == "M":
        t = t.astype("datetime64[ns]").view(np.int64)
    elif t.dtype.kind in "iu" or t.size == 0:
        t = t.astype(np.int64, copy=False)
    else:
        raise ValueError(f"ts must be int64 nanoseconds, got dtype {t.dtype}")
    prices = []
    for name, column in (("open", open_), ("close", close)):
        a = np.asarray(column)
        if a.shape != t.shape:
            raise ValueError(
                f"{name} must have one value per ts, got shape {a.shape} for ts {t.shape}"
            )
        if a.size and a.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        a = a.astype(np.float64, copy=False)
        bad = np.flatnonzero(~(np.isfinite(a) & (a > 0)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} must be finite and > 0, got {name}[{i}]={float(a[i])!r}")
        prices.append(np.ascontiguousarray(a))
    if t.size:
        if t[0] <= after_ts:
            raise ValueError(
                f"ts must move forward across chunks, got ts[0]={int(t[0])} after {after_ts}"
            )
        back = np.flatnonzero(np.diff(t) <= 0)
        if back.size:
            i = int(back[0])
            raise ValueError(
                f"ts must be strictly increasing, got ts[{i + 1}]={int(t[i + 1])} "
                f"after ts[{i}]={int(t[i])}"
            )
    return np.ascontiguousarray(t), prices[0], prices[1]


# --------------------------------------------------------------------------- object API


class FloorSimulator:
    """Feeds bars chunk by chunk; ``state`` after any chunk resumes the run exactly."""

    def __init__(
        self,
        params: Mapping[str, Any],
        *,
        state: FloorState | None = None,
        **options: Any,
    ) -> None:
        self.config = floor_config(params, options)
        self.initial_capital = _number("initial_capital", options.get("initial_capital", 10_000.0))
        self.state = (
            initial_floor_state(self.config, self.initial_capital)
            if state is None
            else self._restore(state)
        )

    def _restore(self, state: FloorState) -> FloorState:
        """A checkpoint may come back with lists for arrays; its shapes must fit this config."""
        s = FloorState(*state)
        m = self.config.layer_units.shape[0]
        arrays = {
            "closes": (np.float64, self.config.window),
            "layer_price": (np.float64, m),
            "layer_units": (np.float64, m),
            "layer_fee": (np.float64, m),
            "layer_index": (np.int64, m),
            "layer_ts": (np.int64, m),
        }
        fixed: dict[str, Any] = {}
        for name, (dtype, size) in arrays.items():
            a = np.array(getattr(s, name), dtype=dtype)
            if a.shape != (size,):
                raise ValueError(f"state.{name} must hold {size} values, got shape {a.shape}")
            fixed[name] = a
        return s._replace(**fixed)

    def feed(self, ts: ArrayLike, open_: ArrayLike, close: ArrayLike) -> FloorChunk:
        t, o, c = check_bars(ts, open_, close, after_ts=self.state.last_ts)
        n = c.shape[0]
        equity, cash, position = np.empty(n), np.empty(n), np.empty(n)
        self.state, trades, retr, events = self._run(t, o, c, equity, cash, position)
        return FloorChunk(trades, retr, events, equity, cash, position)

    def _run(
        self, t: np.ndarray, o: np.ndarray, c: np.ndarray, equity: np.ndarray, cash: np.ndarray,
        position: np.ndarray,
    ) -> tuple[FloorState, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        state, trades, retr, events = simulate_floor_nb(
            t, o, c, self.config, self.state, equity, cash, position
        )
        return FloorState(*state), trades.copy(), retr.copy(), events.copy()

    def open_trades(self) -> tuple[np.ndarray, np.ndarray]:
        """Open layers marked to the last close (exit fees unpaid, as vectorbt reports them),
        with the basket's retracement count."""
        s = self.state
        k = s.n_layers
        out = np.zeros(k, dtype=trade_dt)
        sign = 1.0 if s.side == Direction.Long else -1.0
        for i in range(k):
            price, units, fee = s.layer_price[i], s.layer_units[i], s.layer_fee[i]
            pnl = (s.last_close - price) * units * sign - fee
            out[i] = (
                s.next_trade_id + i, s.layer_index[i], -1, s.layer_ts[i], s.last_ts, price,
                s.last_close, units, s.side, TradeStatus.Open, ExitReason.NoExit, i + 1, pnl,
                pnl / (price * units), fee,
            )  # fmt: skip
        return out, np.full(k, s.retracement_count, dtype=np.int32)


_CHUNK = 1 << 16  # bars per kernel call inside run_floor: bounds the record buffers


def run_floor(
    ohlcv: Mapping[str, np.ndarray], params: Mapping[str, Any], **options: Any
) -> BacktestResult:
    """Registry runner for the floor strategy (rules: docs/engine-strategies.md, "floor").

    Options: fees (fraction per side), slippage (price units against the trader),
    initial_capital, direction ("long" by default, "short", "both"), fill ("close" or
    "next_open"). One trade record per layer; ``extras["retracement_count"]`` holds each
    record's basket retracement count, as seed 003 reports it beside ``layer_number``.
    """
    sim = FloorSimulator(params, **options)
    for key in ("ts", "open", "close"):
        if key not in ohlcv:
            raise ValueError(f"ohlcv is missing {key!r}")
    for key, column in ohlcv.items():
        if len(column) != len(ohlcv["ts"]):
            raise ValueError(
                f"ohlcv columns must have the same length, got {key!r} of {len(column)} "
                f"and 'ts' of {len(ohlcv['ts'])}"
            )
    t, o, c = check_bars(ohlcv["ts"], ohlcv["open"], ohlcv["close"])
    n = c.shape[0]
    equity, cash, position = np.empty(n), np.empty(n), np.empty(n)
    trades: list[np.ndarray] = []
    retracements: list[np.ndarray] = []
    events: list[np.ndarray] = [np.empty(0, dtype=event_dt)]
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        sim.state, tr, rc, ev = sim._run(t[a:b], o[a:b], c[a:b], equity[a:b], cash[a:b],
                                         position[a:b])  # fmt: skip
        trades.append(tr)
        retracements.append(rc)
        events.append(ev)
    open_trades, open_retr = sim.open_trades()
    all_trades = np.concatenate([*trades, open_trades])
    return BacktestResult(
        trades=all_trades,
        equity=equity,
        cash=cash,
        position=position,
        metrics=backtest_metrics(t, equity, position, all_trades, sim.initial_capital),
        events=np.concatenate(events),
        extras={
            "retracement_count": np.concatenate([*retracements, open_retr]),
            "state": sim.state._asdict(),
        },
    )
