"""The bar simulator: signals and OHLC in, trades, equity, cash, position and metrics out.

``simulate_nb`` equals vectorbt's ``Portfolio.from_signals`` bar for bar: all in by default,
``min_size=0``, stops with ``stop_exit_price="stopmarket"``; fill ``next_open`` is vectorbt with
the signals shifted one bar later and ``price=open`` (the tests hold the exact calls). It runs in
chunks: it stops after any bar and resumes from the :class:`SimState` it returned, with exactly
the one-pass result. The rules it follows:

* Signals are bit flags per bar (:data:`SignalFlag`): long entry, long exit, short entry, short
  exit, decided at the bar's close. ``direction`` keeps the long bits, the short bits or both.
  An entry and an exit of the same side on one bar cancel, as do a long and a short entry (both
  vectorbt's ``Ignore``). An entry opposite to the open position reverses it.
* Fill ``close``: orders fill at the signal bar's close. Fill ``next_open``: a decision taken at
  bar i's close fills at bar i+1's open (a decision on the very last bar never fills).
* Prices: buys pay ``price * (1 + slippage) + slippage_points``, sells get
  ``price * (1 - slippage) - slippage_points``; ``fees`` is a fraction of the traded value,
  charged on each side.
* Sizing (on each entry, from the cash after any reversal): ``cash`` spends that fraction of the
  cash, fees included, in fractional units (1.0 = all in, vectorbt's default); a short sells
  fraction * cash / (price * (1 + fees)) units. ``units`` buys that many units (a long is cut to
  what the cash buys); ``notional`` buys notional / quoted price units.
* Stops are measured from the quoted entry price (close or open, before slippage), in price
  points or as a fraction. They are checked against each bar's low and high from the bar after
  the entry (fill ``close``) or from the entry bar itself (fill ``next_open``, the low and high
  come after the open). The stop-loss is checked first, so a bar touching both levels exits at
  the stop-loss: the conservative reading of a bar whose path is unknown. A bar that opens
  beyond a level exits at the open. Under fill ``close`` a bar whose stop fired takes no signal
  (one order per bar, as vectorbt).
* ``max_bars``: a position is closed when it has been held that many bars, at the fill price of
  bar ``entry_index + max_bars``.
* Allowed hours (a mask per bar): entries only on allowed bars; an open position is closed on the
  first bar outside them, like an exit signal (reason Hours).
* A short is always covered in full, even when that takes the cash below zero (vectorbt would
  cover partially).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange, uintp

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine._rawmem import address_of, load1, load_f64, load_i64, store
from engine.indicators import _add_nb
from engine.metrics import (
    N_METRICS,
    MetricsAcc,
    acc_bar_nb,
    acc_count_bars_nb,
    acc_trade_nb,
    initial_acc_nb,
    metrics_vector_nb,
)
from engine.records import Direction, ExitReason, TradeStatus, trade_dt

__all__ = [
    "DirectionMode",
    "Fill",
    "SignalFlag",
    "SignalSource",
    "SimConfig",
    "SimState",
    "Sizing",
    "config_array",
    "decide_target",
    "first_not_positive_nb",
    "first_unsorted_nb",
    "held_curves",
    "initial_state",
    "initial_state_nb",
    "open_pnl_nb",
    "open_trade_record",
    "run_bars_nb",
    "state_from_dict",
    "state_to_dict",
    "sweep_crossings_nb",
    "sweep_row_nb",
    "sweep_signals_nb",
]


class SignalFlagT(NamedTuple):
    LongEntry: int = 1
    LongExit: int = 2
    ShortEntry: int = 4
    ShortExit: int = 8


SignalFlag = SignalFlagT()


class DirectionModeT(NamedTuple):
    Long: int = 0
    Short: int = 1
    Both: int = 2


DirectionMode = DirectionModeT()


class FillT(NamedTuple):
    Close: int = 0
    NextOpen: int = 1


Fill = FillT()


class SizingT(NamedTuple):
    Cash: int = 0
    Units: int = 1
    Notional: int = 2


Sizing = SizingT()


class SimConfig(NamedTuple):
    """Options fixed for a whole run; NaN turns a stop off, 0 turns max_bars off."""

    fill: int
    direction: int
    fees: float
    slippage: float
    slippage_points: float
    sizing: int
    size: float
    stop_loss: float
    take_profit: float
    stop_points: int  # 1: stops in price points, 0: fractions of the entry price
    max_bars: int
    initial_capital: float


class SimState(NamedTuple):
    """Everything a chunk hands to the next one."""

    i: int  # next bar to simulate
    cash: float
    position: float  # signed units
    entry_index: int  # -1 while flat
    entry_ts: int
    entry_price: float  # fill price, slippage included
    entry_ref: float  # quoted price the stops are measured from
    entry_fees: float
    pending_target: int  # next_open: side to hold after the next open (-1, 0, 1)
    pending_reason: int  # ExitReason of the pending order, 0 when none is pending
    trade_id: int  # id of the next closed trade
    acc: MetricsAcc


class ClosedTrade(NamedTuple):
    """A trade the event logic closed, before it is written as a ``trade_dt`` record."""

    id: int
    entry_index: int
    entry_ts: int
    entry_price: float
    exit_price: float
    units: float
    direction: int
    reason: int
    pnl: float
    fees: float


@njit(cache=True, nogil=True)
def initial_state_nb(capital: float) -> SimState:
    return SimState(0, capital, 0.0, -1, 0, 0.0, 0.0, 0.0, 0, 0, 0, initial_acc_nb(capital))


def initial_state(initial_capital: float) -> SimState:
    """The state before the first bar."""
    state: SimState = initial_state_nb(float(initial_capital))
    return state


def state_to_dict(state: SimState) -> dict[str, Any]:
    """The state as plain JSON-able numbers (``acc`` nested), for a checkpoint row."""
    out: dict[str, Any] = state._asdict()
    out["acc"] = state.acc._asdict()
    return out


_INT_FIELDS = frozenset(
    {"i", "entry_index", "entry_ts", "pending_target", "pending_reason", "trade_id"}
    | {"bars", "exposed", "closed", "wins", "losses"}  # MetricsAcc's
)


def state_from_dict(data: Mapping[str, Any]) -> SimState:
    """The inverse of ``state_to_dict``; also coerces every field to its kernel type, since a
    float where the kernel expects an int64 would make numba compile a new specialisation."""

    def typed(names: tuple[str, ...], values: Mapping[str, Any]) -> dict[str, Any]:
        return {k: int(values[k]) if k in _INT_FIELDS else float(values[k]) for k in names}

    acc = MetricsAcc(**typed(MetricsAcc._fields, data["acc"]))
    return SimState(**typed(SimState._fields[:-1], data), acc=acc)


_SIGNAL = ExitReason.Signal
_STOP_LOSS = ExitReason.StopLoss
_TAKE_PROFIT = ExitReason.TakeProfit
_MAX_BARS = ExitReason.MaxBars
_HOURS = ExitReason.Hours
_CLOSED = TradeStatus.Closed
_OPEN = TradeStatus.Open


def _field_offsets(dtype: np.dtype[Any]) -> tuple[int, ...]:
    fields = dtype.fields
    assert fields is not None
    return tuple(int(spec[1]) for spec in fields.values())


# Byte offsets of trade_dt's fields, in order, for the kernels that write records by address.
_TRADE_AT = _field_offsets(trade_dt)
_TRADE_SIZE = trade_dt.itemsize
_BULL = SignalFlag.LongEntry | SignalFlag.ShortExit  # a bullish crossing
_BEAR = SignalFlag.LongExit | SignalFlag.ShortEntry

# The event logic below takes and returns scalars and NamedTuples only: every array passed to a
# function costs an atomic incref/decref pair, which on a signal bar costs more than the logic.
# It is inlined into the bar loop (numba IR inlining): a call there returned its NamedTuples
# through the stack and made the loop spill the values every bar needs.


@njit(cache=True, nogil=True, inline="always")
def _entry_units_nb(cfg: SimConfig, side: int, quote: float, px: float, cash: float) -> float:
    """Units an entry buys (side 1) or sells short (side -1); vectorbt's buy_nb/sell_nb sizing.
    Zero when nothing can be bought: no cash, or slippage in points eating the whole price."""
    if px <= 0.0:
        return 0.0
    fees = cfg.fees
    if cfg.sizing == Sizing.Cash:
        limit = cash * cfg.size
        return limit / (1.0 + fees) / px if limit > 0.0 else 0.0
    units = cfg.size if cfg.sizing == Sizing.Units else cfg.size / quote
    if side > 0 and units * px * (1.0 + fees) > cash:
        return cash / (1.0 + fees) / px if cash > 0.0 else 0.0
    return units


@njit(cache=True, nogil=True, inline="always")
def _decide_nb(flags: int, side: int, direction: int, entry_ok: bool) -> tuple[int, int]:
    """Side to hold after this bar's signals, and the exit reason if that closes a trade."""
    le = (flags & SignalFlag.LongEntry) != 0
    lx = (flags & SignalFlag.LongExit) != 0
    se = (flags & SignalFlag.ShortEntry) != 0
    sx = (flags & SignalFlag.ShortExit) != 0
    if direction == DirectionMode.Long:
        se = False
        sx = False
    elif direction == DirectionMode.Short:
        le = False
        lx = False
    if le and lx:
        le = False
        lx = False
    if se and sx:
        se = False
        sx = False
    if le and se:
        le = False
        se = False
    if not entry_ok:
        le = False
        se = False
    if side > 0:
        if se:
            return -1, _SIGNAL
        if lx:
            return 0, _SIGNAL
        return 1, 0
    if side < 0:
        if le:
            return 1, _SIGNAL
        if sx:
            return 0, _SIGNAL
        return -1, 0
    if le:
        return 1, 0
    if se:
        return -1, 0
    return 0, 0


@njit(cache=True, nogil=True, inline="always")
def _execute_nb(
    cfg: SimConfig, state: SimState, target: int, quote: float, reason: int, i: int, ts_i: int
) -> tuple[SimState, ClosedTrade, bool]:
    """Move from the current position to the ``target`` side at ``quote``: close, then open.
    Returns the state, the trade it closed and whether it closed one."""
    fees = cfg.fees
    slip = cfg.slippage
    slip_pts = cfg.slippage_points
    cash = state.cash
    position = state.position
    entry_index = state.entry_index
    entry_ts = state.entry_ts
    entry_price = state.entry_price
    entry_ref = state.entry_ref
    entry_fees = state.entry_fees
    trade_id = state.trade_id
    acc = state.acc
    trade = ClosedTrade(-1, -1, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)
    closed = position != 0.0
    if closed:
        units = abs(position)
        if position > 0.0:
            px = quote * (1.0 - slip) - slip_pts
            value = units * px
            fee = value * fees
            cash = cash + (value - fee)
            diff = value - units * entry_price
        else:
            px = quote * (1.0 + slip) + slip_pts
            value = units * px
            fee = value * fees
            cash = cash - (value + fee)
            diff = units * entry_price - value
        pnl = diff - entry_fees - fee
        acc = acc_trade_nb(acc, pnl)
        trade = ClosedTrade(
            trade_id,
            entry_index,
            entry_ts,
            entry_price,
            px,
            units,
            Direction.Long if position > 0.0 else Direction.Short,
            reason,
            pnl,
            entry_fees + fee,
        )
        trade_id += 1
        position = 0.0
        entry_index = -1
    if target != 0:
        if target > 0:
            px = quote * (1.0 + slip) + slip_pts
        else:
            px = quote * (1.0 - slip) - slip_pts
        units = _entry_units_nb(cfg, target, quote, px, cash)
        if units > 0.0:
            if target > 0:
                if cfg.sizing == Sizing.Cash:
                    spend = cash * cfg.size
                    fee = spend - spend / (1.0 + fees)
                    cash = cash - spend
                else:
                    value = units * px
                    fee = value * fees
                    cash = cash - (value + fee)
                position = units
            else:
                value = units * px
                fee = value * fees
                cash = cash + (value - fee)
                position = -units
            entry_index = i
            entry_ts = ts_i
            entry_price = px
            entry_ref = quote
            entry_fees = fee
    out = SimState(
        i,
        cash,
        position,
        entry_index,
        entry_ts,
        entry_price,
        entry_ref,
        entry_fees,
        state.pending_target,
        state.pending_reason,
        trade_id,
        acc,
    )
    return out, trade, closed


@njit(cache=True, nogil=True, inline="always")
def _stop_exit_nb(
    cfg: SimConfig, side: int, ref: float, o: float, h: float, lo: float, gap_ok: bool
) -> tuple[int, float]:
    """Which stop a bar hits and at what quote; the stop-loss is checked first."""
    sl = cfg.stop_loss
    tp = cfg.take_profit
    points = cfg.stop_points != 0
    if side > 0:
        if not np.isnan(sl):
            level = ref - sl if points else ref * (1.0 - sl)
            if gap_ok and o <= level:
                return _STOP_LOSS, o
            if lo <= level:
                return _STOP_LOSS, level
        if not np.isnan(tp):
            level = ref + tp if points else ref * (1.0 + tp)
            if gap_ok and o >= level:
                return _TAKE_PROFIT, o
            if h >= level:
                return _TAKE_PROFIT, level
    else:
        if not np.isnan(sl):
            level = ref + sl if points else ref * (1.0 + sl)
            if gap_ok and o >= level:
                return _STOP_LOSS, o
            if h >= level:
                return _STOP_LOSS, level
        if not np.isnan(tp):
            level = ref - tp if points else ref * (1.0 - tp)
            if gap_ok and o <= level:
                return _TAKE_PROFIT, o
            if lo <= level:
                return _TAKE_PROFIT, level
    return 0, 0.0


@njit(cache=True, nogil=True, inline="always")
def _signal_orders_nb(
    cfg: SimConfig,
    state: SimState,
    flags: int,
    c: float,
    ts_i: int,
    entry_ok: bool,
    next_open: bool,
) -> tuple[SimState, ClosedTrade, bool]:
    """The orders bar ``state.i``'s signal ``flags`` make at its close ``c``: filled there, or
    pending for the next open under ``next_open``. Returns the state, the trade it closed and
    whether it closed one."""
    i = state.i
    trade = ClosedTrade(-1, -1, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)
    closed = False
    side = 1 if state.position > 0.0 else (-1 if state.position < 0.0 else 0)
    target, reason = _decide_nb(flags, side, cfg.direction, entry_ok)
    if target == side and side != 0:
        fill_i = i + 1 if next_open else i
        if not entry_ok:
            target = 0
            reason = _HOURS
        elif cfg.max_bars > 0 and fill_i - state.entry_index >= cfg.max_bars:
            target = 0
            reason = _MAX_BARS
    if target != side:
        if reason == 0:
            reason = _SIGNAL
        if next_open:
            state = SimState(
                i,
                state.cash,
                state.position,
                state.entry_index,
                state.entry_ts,
                state.entry_price,
                state.entry_ref,
                state.entry_fees,
                target,
                reason,
                state.trade_id,
                state.acc,
            )
        else:
            state, trade, closed = _execute_nb(cfg, state, target, c, reason, i, ts_i)
    return state, trade, closed


@njit(cache=True, nogil=True, inline="always")
def _bar_events_nb(
    cfg: SimConfig,
    state: SimState,
    flags: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    ts_i: int,
    entry_ok: bool,
) -> tuple[SimState, ClosedTrade, ClosedTrade, int]:
    """Bar ``state.i`` before its mark to market: the pending open order, the stops, then the
    signals at the close. Returns the state and up to two trades it closed, with their count."""
    i = state.i
    next_open = cfg.fill == Fill.NextOpen
    first = ClosedTrade(-1, -1, 0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)
    second = first
    k = 0
    # 1. next_open: the order decided at the previous close fills at this open.
    if state.pending_reason != 0:
        target = state.pending_target
        reason = state.pending_reason
        state = SimState(
            i,
            state.cash,
            state.position,
            state.entry_index,
            state.entry_ts,
            state.entry_price,
            state.entry_ref,
            state.entry_fees,
            0,
            0,
            state.trade_id,
            state.acc,
        )
        side = 1 if state.position > 0.0 else (-1 if state.position < 0.0 else 0)
        if target != side:
            state, trade, closed = _execute_nb(cfg, state, target, o, reason, i, ts_i)
            if closed:
                first = trade
                k = 1
    # 2. Stops, against this bar's range.
    stopped = False
    has_stops = not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit))
    if (
        has_stops
        and state.position != 0.0
        and (i > state.entry_index or (next_open and i == state.entry_index))
    ):
        side = 1 if state.position > 0.0 else -1
        reason, quote = _stop_exit_nb(cfg, side, state.entry_ref, o, h, lo, i > state.entry_index)
        if reason != 0:
            state, trade, closed = _execute_nb(cfg, state, 0, quote, reason, i, ts_i)
            if k == 0:
                first = trade
            else:
                second = trade
            k += 1
            stopped = True
    # 3. Signals at the close; under fill "close" a stopped bar takes none.
    if not (stopped and not next_open):
        state, trade, closed = _signal_orders_nb(cfg, state, flags, c, ts_i, entry_ok, next_open)
        if closed:
            if k == 0:
                first = trade
            else:
                second = trade
            k += 1
    return state, first, second, k


class SignalSourceT(NamedTuple):
    """Where ``run_bars_nb`` takes each bar's signal flags from."""

    Array: int = 0  # the ``signals`` argument
    SmaCross: int = 1  # the crossing of two simple moving averages of the close
    EmaCross: int = 2  # the same with exponential ones


SignalSource = SignalSourceT()

_NAN = np.nan
_INF = np.inf
# sma_1d_nb rebuilds its running sum at the wraps of its ring that are multiples of this.
_SMA_REFRESH_EVERY = 1024


_UNORDERED = 0  # an average still NaN (warming up)
_ABOVE = 1
_BELOW = 2
_EQUAL = 3
# Quotients whose dividends cross-multiplied differ by more than this factor compare the same
# way once rounded: each product is within 2**-53 of its exact value, and the quotients then
# differ by more than 2**-48 - 3 * 2**-53, far more than their own roundings can close.
_ORDER_MARGIN = 1.0 + 2.0**-48


@njit(cache=True, nogil=True)
def _sma_order_nb(fast_sum: float, fast: float, slow_sum: float, slow: float) -> int:
    """How ``fast_sum / fast`` compares with ``slow_sum / slow`` once both are rounded, as
    ``sma_1d_nb``'s outputs compare, for positive sums: by cross-multiplying (two products
    instead of two divisions) unless the two are too close to tell, then by the divisions."""
    a = fast_sum * slow
    b = slow_sum * fast
    if a > b * _ORDER_MARGIN:
        return _ABOVE
    if b > a * _ORDER_MARGIN:
        return _BELOW
    x = fast_sum / fast
    y = slow_sum / slow
    if x > y:
        return _ABOVE
    if x < y:
        return _BELOW
    return _EQUAL


@njit(cache=True, nogil=True)
def _next_refresh_nb(seen: int, window: int, every: int) -> int:
    """The first count of values above ``seen`` at which ``sma_1d_nb`` rebuilds its running
    sum from its ring: at its first wrap, then at every ``every``-th."""
    if seen < window:
        return window
    period = window * every
    return (seen // period + 1) * period


@njit(cache=True, nogil=True, inline="always")
def _ema_step_nb(
    seen: int, c: float, window: int, alpha: float, seed: float, ema: float
) -> tuple[float, float]:
    """One value of ``ema_1d_nb``: the seed sums the first window - 1 values."""
    if seen < window:
        seed += c
    elif seen == window:
        ema = (seed + c) / window
    else:
        ema = ((c - ema) * alpha) + ema
    return seed, ema


@njit(cache=True, nogil=True, inline="always")
def _crossing_nb(was: int, now: int) -> int:
    """``cross_signals_nb``'s flags from the averages' order on the previous bar and this one."""
    if now == _ABOVE and (was == _BELOW or was == _EQUAL):
        return _BULL
    if now == _BELOW and (was == _ABOVE or was == _EQUAL):
        return _BEAR
    return 0


@njit(cache=True, nogil=True)
def _grown_nb(trades: np.ndarray, used: int) -> np.ndarray:
    grown = np.empty(2 * trades.shape[0] + 16, dtype=trade_dt)
    grown[:used] = trades[:used]
    return grown


class _Windows(NamedTuple):
    """The two averages' fixed parameters."""

    fast: int
    slow: int
    fast_f: float
    slow_f: float
    fast_alpha: float
    slow_alpha: float
    fast_every: int  # sma_1d_nb's refresh period, in wraps of its ring
    slow_every: int
    warm_up: int  # from bar warm_up on, both windows are full


class _Averages(NamedTuple):
    """The averages as ``sma_1d_nb`` / ``ema_1d_nb`` compute them, without their rings: the
    close is finite, so the value leaving an SMA window is ``close[i - window]``."""

    fast_sum: float  # SMA running sums; EMA seeds
    slow_sum: float
    fast_ema: float
    slow_ema: float
    fast_refresh: int  # the count of values at which an SMA sum is next rebuilt
    slow_refresh: int
    was: int  # the averages' order on the previous bar


@njit(cache=True, nogil=True)
def _windows_nb(source: int, fast: int, slow: int) -> _Windows:
    sma = source == SignalSource.SmaCross
    averaged = source != SignalSource.Array
    return _Windows(
        fast,
        slow,
        float(fast),
        float(slow),
        2.0 / (fast + 1) if averaged else 0.0,
        2.0 / (slow + 1) if averaged else 0.0,
        max(1, _SMA_REFRESH_EVERY // fast) if sma else 1,
        max(1, _SMA_REFRESH_EVERY // slow) if sma else 1,
        max(fast, slow),
    )


@njit(cache=True, nogil=True)
def _no_averages_nb(source: int, fast: int, slow: int) -> _Averages:
    sma = source == SignalSource.SmaCross
    return _Averages(0.0, 0.0, _NAN, _NAN, fast if sma else -1, slow if sma else -1, _UNORDERED)


@njit(cache=True, nogil=True, inline="always")
def _bar_flags_nb(
    source: int, w: _Windows, avg: _Averages, close_at: int, signals_at: int, i: int, c: float
) -> tuple[int, _Averages]:
    """Bar ``i``'s signal flags by the general rule (its close ``c``), and the averages after
    it: ``signals[i]``, or ``cross_signals_nb`` of ``sma_1d_nb`` / ``ema_1d_nb`` computed a
    bar at a time. The arrays come as addresses (``_rawmem``)."""
    if source == SignalSource.Array:
        return int(load1(signals_at + i)), avg
    fast_sum = avg.fast_sum
    slow_sum = avg.slow_sum
    fast_ema = avg.fast_ema
    slow_ema = avg.slow_ema
    fast_refresh = avg.fast_refresh
    slow_refresh = avg.slow_refresh
    seen = i + 1
    if source == SignalSource.EmaCross:
        fast_sum, fast_ema = _ema_step_nb(seen, c, w.fast, w.fast_alpha, fast_sum, fast_ema)
        slow_sum, slow_ema = _ema_step_nb(seen, c, w.slow, w.slow_alpha, slow_sum, slow_ema)
        if fast_ema > slow_ema:
            now = _ABOVE
        elif fast_ema < slow_ema:
            now = _BELOW
        elif fast_ema == slow_ema:
            now = _EQUAL
        else:
            now = _UNORDERED
    else:
        if seen == fast_refresh:
            # sma_1d_nb rebuilds its sum from the ring: compensated, in order.
            total = comp = 0.0
            for k in range(seen - w.fast, seen):
                total, comp = _add_nb(total, comp, load_f64(close_at + 8 * k))
            fast_sum = total + comp
            fast_refresh = _next_refresh_nb(seen, w.fast, w.fast_every)
        elif seen > w.fast:
            fast_sum += c - load_f64(close_at + 8 * (i - w.fast))
        else:
            fast_sum += c
        if seen == slow_refresh:
            total = comp = 0.0
            for k in range(seen - w.slow, seen):
                total, comp = _add_nb(total, comp, load_f64(close_at + 8 * k))
            slow_sum = total + comp
            slow_refresh = _next_refresh_nb(seen, w.slow, w.slow_every)
        elif seen > w.slow:
            slow_sum += c - load_f64(close_at + 8 * (i - w.slow))
        else:
            slow_sum += c
        if seen < w.warm_up:
            now = _UNORDERED
        else:
            now = _sma_order_nb(fast_sum, w.fast_f, slow_sum, w.slow_f)
    flags = _crossing_nb(avg.was, now)
    return flags, _Averages(fast_sum, slow_sum, fast_ema, slow_ema, fast_refresh, slow_refresh, now)


@njit(cache=True, nogil=True, inline="always")
def _holds_nb(
    source: int,
    w: _Windows,
    above: bool,
    c: float,
    at: int,
    signal_at: int,
    fast_avg: float,
    slow_avg: float,
) -> tuple[bool, float, float]:
    """Whether a bar with close ``c`` (at address ``at``) has no signal flags by the common
    branch of the general rule, with both windows full, no SMA refresh due and the averages in
    the strict order ``above`` (fast over slow) or below; and the averages after it (SMA sums
    or EMAs). Its SMA test is ``_sma_order_nb``'s first, which needs no division."""
    if source == SignalSource.SmaCross:
        f = fast_avg + (c - load_f64(at - 8 * w.fast))
        s = slow_avg + (c - load_f64(at - 8 * w.slow))
        a = f * w.slow_f
        b = s * w.fast_f
        if above:
            return a > b * _ORDER_MARGIN, f, s
        return b > a * _ORDER_MARGIN, f, s
    if source == SignalSource.EmaCross:
        f = ((c - fast_avg) * w.fast_alpha) + fast_avg
        s = ((c - slow_avg) * w.slow_alpha) + slow_avg
        if above:
            return f > s, f, s
        return f < s, f, s
    return load1(signal_at) == 0, fast_avg, slow_avg


@njit(cache=True, nogil=True, inline="always")
def _quiet_bars_nb(
    source: int,
    w: _Windows,
    start: int,
    end: int,
    check: bool,
    above: bool,
    fast_avg: float,
    slow_avg: float,
    cash: float,
    position: float,
    acc: MetricsAcc,
    close_at: int,
    ts_at: int,
    signals_at: int,
    outputs_at: tuple[int, int, int],
) -> tuple[int, float, float, MetricsAcc]:
    """Bars ``start`` (> 0) up to ``end``, or up to the first that ``_holds_nb`` does not pass
    or that fails the check: their averages, check, outputs and fold, cash and position
    unchanged. Returns that bar, the averages after the bars before it and the accumulator.

    One loop per bar does it all, so that leaving it is the only branch that mispredicts."""
    equity_at, cash_at, position_at = outputs_at
    store_bars = equity_at != 0
    store_holding = cash_at != 0
    # The check: a timestamp above the previous one and a positive close. A close that is not
    # finite fails _holds_nb of the averages (any comparison with NaN, or of two infinities,
    # is false), and then the general rule's check.
    finite = source != SignalSource.Array
    ts_prev = load_i64(ts_at + 8 * start - 8)
    j = start
    if position == 0.0:
        equity = cash + position * load_f64(close_at + 8 * start)  # every bar's
        while j < end:
            at = close_at + 8 * j
            c = load_f64(at)
            if check:
                t = load_i64(ts_at + 8 * j)
                if not (c > 0.0 and t > ts_prev and (finite or c < _INF)):
                    break
                ts_prev = t
            holds, f, s = _holds_nb(source, w, above, c, at, signals_at + j, fast_avg, slow_avg)
            if not holds:
                break
            fast_avg = f
            slow_avg = s
            if store_bars:
                store(equity_at + 8 * j, equity)
                if store_holding:
                    store(cash_at + 8 * j, cash)
                    store(position_at + 8 * j, position)
            j += 1
        # After the first bar the fold only counts (a zero return, the same drawdown), unless
        # the equity is NaN, which equals nothing.
        if j == start:
            pass
        elif equity == acc.prev_equity:
            acc = acc_count_bars_nb(acc, j - start)
        elif not np.isnan(equity):
            acc = acc_count_bars_nb(acc_bar_nb(acc, equity, False), j - start - 1)
        else:
            for _ in range(start, j):
                acc = acc_bar_nb(acc, equity, False)
        return j, fast_avg, slow_avg, acc
    # A position: acc_bar_nb bar by bar, on locals. The deepest relative drawdown changes on
    # few bars: the loop leaves for it, so that no blend of it lies on the path from one bar to
    # the next. The counts are added at the end.
    prev = acc.prev_equity
    peak = acc.peak
    max_dd = acc.max_dd
    dd_num = acc.dd_num
    dd_den = acc.dd_den
    ret_sum = acc.ret_sum
    ret_sumsq = acc.ret_sumsq
    neg_sumsq = acc.neg_sumsq
    deeper = True
    while deeper:
        deeper = False
        while j < end:
            at = close_at + 8 * j
            c = load_f64(at)
            if check:
                t = load_i64(ts_at + 8 * j)
                if not (c > 0.0 and t > ts_prev and (finite or c < _INF)):
                    break
                ts_prev = t
            holds, f, s = _holds_nb(source, w, above, c, at, signals_at + j, fast_avg, slow_avg)
            if not holds:
                break
            fast_avg = f
            slow_avg = s
            equity = cash + position * c
            r = equity / prev - 1.0 if prev > 0.0 else 0.0
            down = min(r, 0.0)
            peak = max(peak, equity)
            dd = peak - equity
            max_dd = max(max_dd, dd)
            ret_sum = ret_sum + r
            ret_sumsq = ret_sumsq + r * r
            neg_sumsq = neg_sumsq + down * down
            prev = equity
            if store_bars:
                store(equity_at + 8 * j, equity)
                if store_holding:
                    store(cash_at + 8 * j, cash)
                    store(position_at + 8 * j, position)
            j += 1
            if dd * dd_den > dd_num * peak and peak > 0.0:
                deeper = True
                break
        if deeper:
            dd_num = peak - prev
            dd_den = peak
    count = j - start
    acc = MetricsAcc(
        acc.bars + count, prev, peak, max_dd, dd_num, dd_den, ret_sum, ret_sumsq, neg_sumsq,
        acc.exposed + count, acc.closed, acc.wins, acc.losses, acc.gross_profit,
        acc.gross_loss,
    )  # fmt: skip
    return j, fast_avg, slow_avg, acc


@njit(cache=True, nogil=True, inline="always")
def _store_trade_nb(at: int, t: ClosedTrade, exit_index: int, exit_ts: int) -> None:
    """``t`` as the ``trade_dt`` record at address ``at``."""
    store(at + _TRADE_AT[0], np.int64(t.id))
    store(at + _TRADE_AT[1], np.int64(t.entry_index))
    store(at + _TRADE_AT[2], np.int64(exit_index))
    store(at + _TRADE_AT[3], np.int64(t.entry_ts))
    store(at + _TRADE_AT[4], np.int64(exit_ts))
    store(at + _TRADE_AT[5], np.float64(t.entry_price))
    store(at + _TRADE_AT[6], np.float64(t.exit_price))
    store(at + _TRADE_AT[7], np.float64(t.units))
    store(at + _TRADE_AT[8], np.int8(t.direction))
    store(at + _TRADE_AT[9], np.int8(_CLOSED))
    store(at + _TRADE_AT[10], np.int8(t.reason))
    store(at + _TRADE_AT[11], np.int32(0))
    store(at + _TRADE_AT[12], np.float64(t.pnl))
    store(at + _TRADE_AT[13], np.float64(t.pnl / (t.units * t.entry_price)))
    store(at + _TRADE_AT[14], np.float64(t.fees))


@njit(cache=True, nogil=True)
def _stretch_nb(
    source: int,
    w: _Windows,
    avg: _Averages,
    cfg: SimConfig,
    state: SimState,
    stop: int,
    check: bool,
    capacity: int,
    n: int,
    arrays_at: tuple[int, int, int, int, int, int],
    outputs_at: tuple[int, int, int],
) -> tuple[SimState, _Averages, int]:
    """``run_bars_nb`` from bar ``state.i`` on, for as long as no bar is forced (an order
    pending at its open, a position to watch for stops, hours or max_bars): the averages, the
    check, the signal orders at the close, the trades, the per-bar outputs and the fold. It
    stops before a forced bar, a bad bar (which the caller then refuses), at ``stop``, or when
    fewer than two of the ``capacity`` trade records are free (``n`` are taken). Returns the
    state, the averages and the number of trade records.

    Between two signals most bars need nothing but their averages, check, outputs and fold:
    ``_quiet_bars_nb`` runs them in one loop per bar, inlined once per source with that
    source's constants. This is a function of its own, apart from the forced bars, so that the
    compiler keeps those loops' sums and pointers in registers: inside ``run_bars_nb``, with
    the stops, the pending orders and the resumption, it spilled them to the stack (a third
    slower). The arrays come as addresses (``arrays_at``: close, ts, signals, hours, trades,
    entry cash by trade id),
    since a function taking arrays increments and decrements their reference counts around
    each call, a dozen atomic instructions, and some runs call this once per trade.
    """
    close_at, ts_at, signals_at, hours_at, trades_at, entries_at = arrays_at
    equity_at, cash_at, position_at = outputs_at
    store_bars = equity_at != 0
    store_holding = cash_at != 0
    has_hours = hours_at != 0
    has_stops = not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit))
    watch_position = has_stops or has_hours or cfg.max_bars > 0
    next_open = cfg.fill == Fill.NextOpen
    from_array = source == SignalSource.Array
    i = state.i
    cash = state.cash
    position = state.position
    pending = state.pending_reason
    acc = state.acc
    while i < stop and n + 2 <= capacity:
        if pending != 0 or (watch_position and position != 0.0):
            break
        # 1. The quiet bars from i on, while the averages keep a strict order (both windows
        # full, no SMA refresh due) or the signals are zero.
        if i > 0 and (from_array or (i >= w.warm_up and (avg.was == _ABOVE or avg.was == _BELOW))):
            end = stop
            if source == SignalSource.SmaCross:
                end = min(stop, avg.fast_refresh - 1, avg.slow_refresh - 1)
            above = avg.was == _ABOVE
            # One loop per source, each with its own constants.
            if source == SignalSource.SmaCross:
                i, f, s, acc = _quiet_bars_nb(
                    SignalSource.SmaCross, w, i, end, check, above, avg.fast_sum, avg.slow_sum,
                    cash, position, acc, close_at, ts_at, signals_at, outputs_at,
                )  # fmt: skip
                avg = _Averages(f, s, avg.fast_ema, avg.slow_ema, avg.fast_refresh,
                                avg.slow_refresh, avg.was)  # fmt: skip
            elif source == SignalSource.EmaCross:
                i, f, s, acc = _quiet_bars_nb(
                    SignalSource.EmaCross, w, i, end, check, above, avg.fast_ema, avg.slow_ema,
                    cash, position, acc, close_at, ts_at, signals_at, outputs_at,
                )  # fmt: skip
                avg = _Averages(avg.fast_sum, avg.slow_sum, f, s, avg.fast_refresh,
                                avg.slow_refresh, avg.was)  # fmt: skip
            else:
                i, _, _, acc = _quiet_bars_nb(
                    SignalSource.Array, w, i, end, check, above, 0.0, 0.0, cash, position, acc,
                    close_at, ts_at, signals_at, outputs_at,
                )  # fmt: skip
            if i >= stop:
                break
        # 2. Bar i by the general rule: its check, its flags, the orders they make.
        c = load_f64(close_at + 8 * i)
        if check and not (
            c > 0.0
            and c < _INF
            and (i == 0 or load_i64(ts_at + 8 * i) > load_i64(ts_at + 8 * i - 8))
        ):
            break
        flags, avg = _bar_flags_nb(source, w, avg, close_at, signals_at, i, c)
        if flags != 0:
            ts_i = load_i64(ts_at + 8 * i)
            entry_ok = load1(hours_at + i) != 0 if has_hours else True
            state = SimState(
                i, cash, position, state.entry_index, state.entry_ts, state.entry_price,
                state.entry_ref, state.entry_fees, state.pending_target, pending,
                state.trade_id, acc,
            )  # fmt: skip
            state, trade, closed = _signal_orders_nb(
                cfg, state, flags, c, ts_i, entry_ok, next_open
            )
            if closed and store_bars:
                _store_trade_nb(trades_at + n * _TRADE_SIZE, trade, i, ts_i)
                n += 1
            cash = state.cash
            position = state.position
            pending = state.pending_reason
            acc = state.acc
            if entries_at != 0 and position != 0.0 and state.entry_index == i:
                store(entries_at + 8 * state.trade_id, cash)
        equity = cash + position * c
        if store_bars:
            store(equity_at + 8 * i, equity)
            if store_holding:
                store(cash_at + 8 * i, cash)
                store(position_at + 8 * i, position)
        if position == 0.0 and equity == acc.prev_equity:
            acc = acc_count_bars_nb(acc, 1)
        else:
            acc = acc_bar_nb(acc, equity, position != 0.0)
        i += 1
    out = SimState(
        i, cash, position, state.entry_index, state.entry_ts, state.entry_price, state.entry_ref,
        state.entry_fees, state.pending_target, pending, state.trade_id, acc,
    )  # fmt: skip
    return out, avg, n


@njit(cache=True, nogil=True)
def run_bars_nb(
    source: int,
    signals: np.ndarray,
    fast: int,
    slow: int,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg: SimConfig,
    state: SimState,
    stop: int,
    check: bool,
    equity_out: np.ndarray,
    cash_out: np.ndarray,
    position_out: np.ndarray,
    trades: np.ndarray,
    entry_cash: np.ndarray,
) -> tuple[SimState, np.ndarray, int, int]:
    """Simulate bars ``state.i`` up to ``stop``; equals ``vbt.Portfolio.from_signals``.

    Each bar's signal flags come from ``signals[i]`` (``source`` Array), or, in the same loop,
    from the crossing of the ``fast`` over the ``slow`` moving average of the close: exactly
    ``cross_signals_nb`` of ``sma_1d_nb`` / ``ema_1d_nb`` (SmaCross, EmaCross; from bar 0
    only, over a positive finite close). One pass over the bars: the averages, the crossings,
    the orders, the per-bar outputs and the metrics.

    Per-bar outputs are written at their bar index when ``equity_out`` is not empty (a sweep
    passes empty arrays and keeps only the metrics, and no trades); ``cash_out`` and
    ``position_out`` may be empty while it is not: the per-bar equity alone, the other two
    follow from it, the trades and ``entry_cash`` (``held_curves``). When not empty,
    ``entry_cash[k]`` receives the cash right after the position that closes as trade
    ``state.trade_id + k`` was opened (one opening per bar at most: ``stop - state.i``
    entries are room enough). Closed trades are written from ``trades[0]`` on, into a larger
    copy when it fills up. With ``check``, a bar whose
    timestamp is not above the previous one or whose close is not positive and finite stops
    the run before it is simulated. Returns the state, the trade array, the number of trades
    in it and the first bad bar (-1 when none).

    The bars that need no forced event run in ``_stretch_nb``, most of them in one loop per
    bar; this function runs the others, a bar at a time: an order pending at the open, stops,
    hours and max_bars to watch while a position is open. Without ``check`` the bars must be
    good (the callers check them first): a bad one gives unspecified results.
    """
    store_bars = equity_out.shape[0] > 0
    store_holding = store_bars and cash_out.shape[0] > 0
    has_hours = hours_ok.shape[0] > 0
    has_stops = not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit))
    watch_position = has_stops or has_hours or cfg.max_bars > 0
    # Only stops and next-open fills read a bar's open, high and low: a load they do not need
    # misses the cache on most event bars.
    read_ohl = cfg.fill == Fill.NextOpen or has_stops
    w = _windows_nb(source, fast, slow)
    avg = _no_averages_nb(source, fast, slow)
    n = int(np.int64(0))  # not the literal 0: a call typed with it would compile twice
    bad = -1
    i = state.i
    if i < 0 or stop > close.shape[0]:
        # Also tells the compiler that no index below is negative: no wraparound code per bar.
        raise ValueError("run_bars_nb: state.i and stop must lie within the bars")
    if source == SignalSource.Array and signals.shape[0] < stop:
        raise ValueError("run_bars_nb: signals must cover the bars up to stop")
    cash = state.cash
    position = state.position
    pending = state.pending_reason
    acc = state.acc
    signals_at = address_of(signals) if source == SignalSource.Array else 0
    # entry_cash by trade id: the entry of trade k at address entries_at + 8 * k.
    entries_at = address_of(entry_cash) - 8 * state.trade_id if entry_cash.shape[0] > 0 else 0
    arrays_at = (
        address_of(close), address_of(ts), signals_at,
        address_of(hours_ok) if has_hours else 0, address_of(trades), entries_at,
    )  # fmt: skip
    outputs_at = (0, 0, 0)
    if store_holding:
        outputs_at = (address_of(equity_out), address_of(cash_out), address_of(position_out))
    elif store_bars:
        outputs_at = (address_of(equity_out), 0, 0)
    # Trade records need up to two free slots per event bar; without outputs none are kept.
    capacity = trades.shape[0] if store_bars else stop + 2
    while True:
        while i < stop and n + 2 <= capacity:
            forced = pending != 0 or (watch_position and position != 0.0)
            if not forced:
                state = SimState(
                    i, cash, position, state.entry_index, state.entry_ts, state.entry_price,
                    state.entry_ref, state.entry_fees, state.pending_target, pending,
                    state.trade_id, acc,
                )  # fmt: skip
                state, avg, n = _stretch_nb(
                    source, w, avg, cfg, state, stop, check, capacity, n, arrays_at, outputs_at
                )
                i = state.i
                cash = state.cash
                position = state.position
                pending = state.pending_reason
                acc = state.acc
                if i >= stop or n + 2 > capacity:
                    break
                forced = pending != 0 or (watch_position and position != 0.0)
            # Bar i, forced (or refused by the stretch's check): its check, its flags, then
            # the pending order at its open, the stops and the signals at its close.
            c = close[uintp(i)]
            if check and not (c > 0.0 and c < _INF and (i == 0 or ts[uintp(i)] > ts[uintp(i - 1)])):
                bad = i
                break
            flags, avg = _bar_flags_nb(source, w, avg, arrays_at[0], signals_at, i, c)
            entry_ok = hours_ok[uintp(i)] if has_hours else True
            o = h = lo = c
            if read_ohl:
                o = open_[uintp(i)]
                h = high[uintp(i)]
                lo = low[uintp(i)]
            ts_i = ts[uintp(i)]
            state = SimState(
                i, cash, position, state.entry_index, state.entry_ts, state.entry_price,
                state.entry_ref, state.entry_fees, state.pending_target, pending,
                state.trade_id, acc,
            )  # fmt: skip
            state, first, second, m = _bar_events_nb(cfg, state, flags, o, h, lo, c, ts_i, entry_ok)
            for k in range(m if store_bars else 0):
                t = first if k == 0 else second
                rec = trades[n]
                rec["id"] = t.id
                rec["entry_index"] = t.entry_index
                rec["exit_index"] = i
                rec["entry_ts"] = t.entry_ts
                rec["exit_ts"] = ts_i
                rec["entry_price"] = t.entry_price
                rec["exit_price"] = t.exit_price
                rec["units"] = t.units
                rec["direction"] = t.direction
                rec["status"] = _CLOSED
                rec["exit_reason"] = t.reason
                rec["layer"] = 0
                rec["pnl"] = t.pnl
                rec["return"] = t.pnl / (t.units * t.entry_price)
                rec["fees"] = t.fees
                n += 1
            cash = state.cash
            position = state.position
            pending = state.pending_reason
            acc = state.acc
            if entries_at != 0 and position != 0.0 and state.entry_index == i:
                store(entries_at + 8 * state.trade_id, cash)
            equity = cash + position * c
            if store_bars:
                u = uintp(i)
                equity_out[u] = equity
                if store_holding:
                    cash_out[u] = cash
                    position_out[u] = position
            if position == 0.0 and equity == acc.prev_equity:
                acc = acc_count_bars_nb(acc, 1)
            else:
                acc = acc_bar_nb(acc, equity, position != 0.0)
            i += 1
        if i >= stop or bad >= 0:
            break
        trades = _grown_nb(trades, n)
        capacity = trades.shape[0]
        arrays_at = (
            arrays_at[0], arrays_at[1], arrays_at[2], arrays_at[3], address_of(trades), entries_at,
        )  # fmt: skip
    out = SimState(
        i, cash, position, state.entry_index, state.entry_ts, state.entry_price, state.entry_ref,
        state.entry_fees, state.pending_target, pending, state.trade_id, acc,
    )  # fmt: skip
    return out, trades, n, bad


@njit(cache=True, nogil=True)
def open_pnl_nb(state: SimState, cfg: SimConfig, last_close: float) -> float:
    """Pnl of the open position marked to ``last_close``, net of its entry fees (vectorbt's
    open-trade pnl); 0 when flat."""
    if state.position == 0.0:
        return 0.0
    units = abs(state.position)
    diff = units * last_close - units * state.entry_price
    if state.position < 0.0:
        diff = -diff
    return diff - state.entry_fees


def open_trade_record(
    state: SimState, cfg: SimConfig, ts: np.ndarray, close: np.ndarray
) -> np.ndarray:
    """The open position as a one-record ``trade_dt`` array (empty when flat), marked to the
    close of the last simulated bar, as vectorbt reports an open trade."""
    out = np.zeros(0 if state.position == 0.0 else 1, dtype=trade_dt)
    if state.position == 0.0:
        return out
    last = state.i - 1
    units = abs(state.position)
    pnl = open_pnl_nb(state, cfg, float(close[last]))
    rec = out[0]
    rec["id"] = state.trade_id
    rec["entry_index"] = state.entry_index
    rec["exit_index"] = -1
    rec["entry_ts"] = state.entry_ts
    rec["exit_ts"] = ts[last]
    rec["entry_price"] = state.entry_price
    rec["exit_price"] = close[last]
    rec["units"] = units
    rec["direction"] = Direction.Long if state.position > 0.0 else Direction.Short
    rec["status"] = _OPEN
    rec["exit_reason"] = ExitReason.NoExit
    rec["layer"] = 0
    rec["pnl"] = pnl
    rec["return"] = pnl / (units * state.entry_price)
    rec["fees"] = state.entry_fees
    return out


def held_curves(
    equity: np.ndarray, trades: np.ndarray, entry_cash: np.ndarray, first_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """The per-bar cash and position of a run from bar 0 whose kernel wrote the equity alone
    (``run_bars_nb`` with ``cash_out`` and ``position_out`` empty): exactly the arrays it would
    have written. A bar with no position held at its close has its equity as cash (cash plus
    0 times a positive close) and position 0; a bar within a trade, from its entry bar to the
    bar before its exit (to the last bar if it is open), has the cash right after the entry
    (``entry_cash``, by trade id from ``first_id``) and the trade's signed units.

    ``trades`` holds every trade of the run, the open one included (``trade_dt``)."""
    n = equity.shape[0]
    ends = np.where(trades["status"] == _OPEN, n, trades["exit_index"])
    units = trades["units"]
    signed = np.where(trades["direction"] == Direction.Long, units, -units)
    ids = np.ascontiguousarray(trades["id"], dtype=np.int64) - first_id
    cash = np.empty(n)
    position = np.empty(n)
    _held_curves_nb(
        equity, np.ascontiguousarray(trades["entry_index"], dtype=np.int64),
        np.ascontiguousarray(ends, dtype=np.int64), np.ascontiguousarray(signed),
        entry_cash[ids] if ids.shape[0] else np.empty(0), cash, position,
    )  # fmt: skip
    return cash, position


@njit(cache=True, nogil=True)
def _held_curves_nb(
    equity: np.ndarray,
    entries: np.ndarray,
    ends: np.ndarray,
    units: np.ndarray,
    entry_cash: np.ndarray,
    cash: np.ndarray,
    position: np.ndarray,
) -> None:
    """``held_curves``' fill: trade k holds bars ``entries[k]`` to ``ends[k] - 1`` with
    ``units[k]`` after ``entry_cash[k]``; the bars between trades are flat."""
    at = 0
    for k in range(entries.shape[0] + 1):
        start = entries[k] if k < entries.shape[0] else equity.shape[0]
        for i in range(at, start):
            cash[i] = equity[i]
            position[i] = 0.0
        if k == entries.shape[0]:
            break
        at = max(start, ends[k])
        for i in range(start, at):
            cash[i] = entry_cash[k]
            position[i] = units[k]


_CHECK_BLOCK = 4096


@njit(cache=True, nogil=True)
def first_unsorted_nb(ts: np.ndarray) -> int:
    """The first index whose timestamp is not above the previous one, -1 if none; equals
    ``np.flatnonzero(np.diff(ts) <= 0)[0] + 1`` without the temporaries. Blocks without an
    early exit let the compiler vectorise the scan."""
    n = ts.shape[0]
    for start in range(1, n, _CHECK_BLOCK):
        stop = min(n, start + _CHECK_BLOCK)
        bad = 0
        for i in range(start, stop):
            bad |= ts[i] <= ts[i - 1]
        if bad:
            for i in range(start, stop):
                if ts[i] <= ts[i - 1]:
                    return i
    return -1


@njit(cache=True, nogil=True)
def first_not_positive_nb(a: np.ndarray) -> int:
    """The first index holding a price that is not a positive finite number, -1 if none;
    equals ``np.flatnonzero(~((a > 0) & (a < np.inf)))[0]`` without the temporaries."""
    n = a.shape[0]
    for start in range(0, n, _CHECK_BLOCK):
        stop = min(n, start + _CHECK_BLOCK)
        bad = 0
        for i in range(start, stop):
            x = a[i]
            bad |= not (x > 0.0 and x < np.inf)
        if bad:
            for i in range(start, stop):
                x = a[i]
                if not (x > 0.0 and x < np.inf):
                    return i
    return -1


def config_array(cfg: SimConfig) -> np.ndarray:
    """``cfg`` as float64s, for parallel kernels (a prange body cannot capture a NamedTuple)."""
    return np.array([float(v) for v in cfg], dtype=np.float64)


@njit(cache=True, nogil=True)
def _config_nb(a: np.ndarray) -> SimConfig:
    return SimConfig(
        int(a[0]),
        int(a[1]),
        a[2],
        a[3],
        a[4],
        int(a[5]),
        a[6],
        a[7],
        a[8],
        int(a[9]),
        int(a[10]),
        a[11],
    )


@njit(cache=True, nogil=True)
def sweep_row_nb(
    source: int,
    signals: np.ndarray,
    fast: int,
    slow: int,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg_array: np.ndarray,
    out: np.ndarray,
) -> None:
    """One sweep row: ``run_bars_nb`` from the initial state over every bar, keeping nothing
    but the metrics, written into ``out`` (``metrics_vector_nb``)."""
    cfg = _config_nb(cfg_array)
    n = close.shape[0]
    no_f8 = np.empty(0)
    end, _, _, _ = run_bars_nb(
        source, signals, fast, slow, open_, high, low, close, ts, hours_ok, cfg,
        initial_state_nb(cfg.initial_capital), n, False, no_f8, no_f8, no_f8,
        np.empty(0, dtype=trade_dt), no_f8,
    )  # fmt: skip
    unrealized = open_pnl_nb(end, cfg, close[n - 1]) if n > 0 else 0.0
    ts_first = ts[0] if n > 0 else 0
    ts_last = ts[n - 1] if n > 0 else 0
    out[:] = metrics_vector_nb(end.acc, cfg.initial_capital, ts_first, ts_last, unrealized)


@njit(cache=True, nogil=True, parallel=True)
def sweep_signals_nb(
    signals: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg_array: np.ndarray,
) -> np.ndarray:
    """Metrics of one run per row of ``signals`` (2-D, one row per parameter combination), in
    parallel over rows; row k equals ``run_bars_nb`` on ``signals[k]`` from the initial state
    (``cfg_array`` is ``config_array(cfg)``)."""
    out = np.empty((signals.shape[0], N_METRICS))
    for row in prange(signals.shape[0]):
        sweep_row_nb(
            SignalSource.Array, signals[row], 0, 0, open_, high, low, close, ts, hours_ok,
            cfg_array, out[row],
        )  # fmt: skip
    return out


@njit(cache=True, nogil=True, parallel=True)
def sweep_crossings_nb(
    source: int,
    fast: np.ndarray,
    slow: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg_array: np.ndarray,
) -> np.ndarray:
    """Metrics of the crossover of the ``fast[k]`` over the ``slow[k]`` average (``source``
    SmaCross or EmaCross) for every k, in parallel over k: row k equals ``run_bars_nb`` of
    that pair from the initial state. Each row computes its own two averages in its loop, so
    nothing of size bars x combinations is ever stored."""
    out = np.empty((fast.shape[0], N_METRICS))
    no_signals = np.empty(0, dtype=np.uint8)
    for k in prange(fast.shape[0]):
        sweep_row_nb(
            source, no_signals, fast[k], slow[k], open_, high, low, close, ts, hours_ok,
            cfg_array, out[k],
        )  # fmt: skip
    return out


def decide_target(flags: int, side: int, direction: int, entry_ok: bool) -> tuple[int, int]:
    """The simulator's own rule, for a caller outside the bar loop (a live run): the side to
    hold after a bar's signal ``flags`` when holding ``side`` (-1, 0, 1), and the exit reason
    when that closes a trade (0: none)."""
    target, reason = _decide_nb(flags, side, direction, entry_ok)
    return int(target), int(reason)
