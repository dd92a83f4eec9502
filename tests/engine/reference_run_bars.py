"""``engine.simulate.run_bars_nb`` as it was before the stretch kernels (issue 15), frozen:
the oracle that ``test_run_bars.py`` holds the current kernel to, on any input the kernel
takes, bar checks and chunks included, bit for bit.

Copied from ``engine/simulate.py``, ``engine/metrics.py``, ``engine/indicators.py`` and
``engine/records.py`` at commit ab142ea, with nothing imported from ``engine``: an edit there
can neither change this oracle nor leave its numba cache stale (numba stamps a cached kernel by
its own file only, and this file holds everything the kernel compiles in). Do not edit it to
follow the engine: it is the reference.
"""

# mypy: ignore-errors
# ruff: noqa

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, uintp


class DirectionT(NamedTuple):
    Long: int = 0
    Short: int = 1


Direction = DirectionT()


class TradeStatusT(NamedTuple):
    Open: int = 0
    Closed: int = 1


TradeStatus = TradeStatusT()


class ExitReasonT(NamedTuple):
    NoExit: int = 0  # still open at the last bar
    Signal: int = 1
    StopLoss: int = 2
    TakeProfit: int = 3
    MaxBars: int = 4
    Hours: int = 5
    Stopped: int = 6  # a live run closed its position when it was stopped


ExitReason = ExitReasonT()


trade_dt = np.dtype(
    [
        ("id", np.int64),
        ("entry_index", np.int64),
        ("exit_index", np.int64),  # -1 while open
        ("entry_ts", np.int64),  # ns
        ("exit_ts", np.int64),  # ns; the last bar's ts for an open trade
        ("entry_price", np.float64),
        ("exit_price", np.float64),  # last close for an open trade
        ("units", np.float64),
        ("direction", np.int8),  # Direction
        ("status", np.int8),  # TradeStatus
        ("exit_reason", np.int8),  # ExitReason
        ("layer", np.int32),  # 0 unless a layered strategy scaled in
        ("pnl", np.float64),  # net of fees
        ("return", np.float64),  # pnl / entry notional
        ("fees", np.float64),  # entry plus exit fees
    ],
    align=True,
)


class MetricsAcc(NamedTuple):
    """Everything the metrics need, folded bar by bar and trade by trade."""

    bars: int
    prev_equity: float  # equity after the last bar (the initial capital before the first)
    peak: float  # running peak of equity
    max_dd: float  # largest peak - equity so far, in money
    dd_num: float  # largest (peak - equity) / peak so far, kept as the fraction num / den
    dd_den: float
    ret_sum: float
    ret_sumsq: float
    neg_sumsq: float  # sum of squared negative returns
    exposed: int
    closed: int
    wins: int
    losses: int
    gross_profit: float
    gross_loss: float  # positive


@njit(cache=True, nogil=True)
def initial_acc_nb(capital: float) -> MetricsAcc:
    """Nothing folded yet: the capital is the previous equity and the peak."""
    return MetricsAcc(0, capital, capital, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0)


@njit(cache=True, nogil=True)
def acc_bar_nb(acc: MetricsAcc, equity: float, in_position: bool) -> MetricsAcc:
    """Fold one bar's closing equity; equals the pandas formulas in the module docstring.

    No division but the return's and no branch on the data: the sign of a return or a new peak
    would mispredict on every other bar of a live position. The deepest relative drawdown is
    kept as a fraction and compared by cross-multiplying.
    """
    prev = acc.prev_equity
    r = equity / prev - 1.0 if prev > 0.0 else 0.0
    down = min(r, 0.0)
    peak = max(acc.peak, equity)
    dd = peak - equity
    deeper = dd * acc.dd_den > acc.dd_num * peak and peak > 0.0
    return MetricsAcc(
        acc.bars + 1,
        equity,
        peak,
        max(acc.max_dd, dd),
        dd if deeper else acc.dd_num,
        peak if deeper else acc.dd_den,
        acc.ret_sum + r,
        acc.ret_sumsq + r * r,
        acc.neg_sumsq + down * down,
        acc.exposed + (1 if in_position else 0),
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True)
def acc_count_bars_nb(acc: MetricsAcc, count: int) -> MetricsAcc:
    """``acc_bar_nb`` for ``count`` flat bars whose equity equals the previous one: their
    returns are exactly zero and their drawdown the previous bar's, so folding them changes
    only the bar count."""
    return MetricsAcc(
        acc.bars + count,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True, inline="always")
def acc_held_bar_nb(acc: MetricsAcc, equity: float) -> tuple[MetricsAcc, bool]:
    """``acc_bar_nb`` of a bar with a position open, but for the deepest relative drawdown:
    returns whether this bar's is deeper, and the caller then takes it (``acc_deepest_nb``).

    It changes on few bars: a caller that branches there, out of its loop, keeps the blend of
    the fraction off the path from one bar to the next, which then holds only the return's
    division and the sums."""
    prev = acc.prev_equity
    r = equity / prev - 1.0 if prev > 0.0 else 0.0
    down = min(r, 0.0)
    peak = max(acc.peak, equity)
    dd = peak - equity
    deeper = dd * acc.dd_den > acc.dd_num * peak and peak > 0.0
    out = MetricsAcc(
        acc.bars + 1,
        equity,
        peak,
        max(acc.max_dd, dd),
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum + r,
        acc.ret_sumsq + r * r,
        acc.neg_sumsq + down * down,
        acc.exposed + 1,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )
    return out, deeper


@njit(cache=True, nogil=True, inline="always")
def acc_deepest_nb(acc: MetricsAcc) -> MetricsAcc:
    """The last bar folded holds the deepest relative drawdown (``acc_held_bar_nb`` said so)."""
    return MetricsAcc(
        acc.bars,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.peak - acc.prev_equity,
        acc.peak,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed,
        acc.wins,
        acc.losses,
        acc.gross_profit,
        acc.gross_loss,
    )


@njit(cache=True, nogil=True)
def acc_trade_nb(acc: MetricsAcc, pnl: float) -> MetricsAcc:
    """Fold one closed trade's net pnl."""
    wins = acc.wins
    losses = acc.losses
    gp = acc.gross_profit
    gl = acc.gross_loss
    if pnl > 0.0:
        wins += 1
        gp += pnl
    elif pnl < 0.0:
        losses += 1
        gl -= pnl
    return MetricsAcc(
        acc.bars,
        acc.prev_equity,
        acc.peak,
        acc.max_dd,
        acc.dd_num,
        acc.dd_den,
        acc.ret_sum,
        acc.ret_sumsq,
        acc.neg_sumsq,
        acc.exposed,
        acc.closed + 1,
        wins,
        losses,
        gp,
        gl,
    )


@njit(cache=True, nogil=True)
def _add_nb(total: float, comp: float, x: float) -> tuple[float, float]:
    """Neumaier's compensated addition: the rounding error of each step goes into `comp`."""
    t = total + x
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


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


_SIGNAL = ExitReason.Signal
_STOP_LOSS = ExitReason.StopLoss
_TAKE_PROFIT = ExitReason.TakeProfit
_MAX_BARS = ExitReason.MaxBars
_HOURS = ExitReason.Hours
_CLOSED = TradeStatus.Closed
_OPEN = TradeStatus.Open
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
) -> tuple[SimState, np.ndarray, int, int]:
    """Simulate bars ``state.i`` up to ``stop``; equals ``vbt.Portfolio.from_signals``.

    Each bar's signal flags come from ``signals[i]`` (``source`` Array), or, in the same loop,
    from the crossing of the ``fast`` over the ``slow`` moving average of the close: exactly
    ``cross_signals_nb`` of ``sma_1d_nb`` / ``ema_1d_nb`` (SmaCross, EmaCross; from bar 0
    only, over a positive finite close). One pass over the bars: the averages, the crossings,
    the orders, the per-bar outputs and the metrics.

    Per-bar outputs are written at their bar index when ``equity_out`` is not empty (a sweep
    passes empty arrays and keeps only the metrics, and no trades). Closed trades are written
    from ``trades[0]`` on, into a larger copy when it fills up. With ``check``, a bar whose
    timestamp is not above the previous one or whose close is not positive and finite stops
    the run before it is simulated. Returns the state, the trade array, the number of trades
    in it and the first bad bar (-1 when none).

    Most bars need neither the event logic nor a change of cash or position. Each turn of the
    loop finds the next bar that does (a signal, an order pending, a position to watch for
    stops, hours or max_bars) computing nothing but the averages, then writes and folds the
    bars before it in loops of their own, then runs the event logic on that bar. All of it is
    written out in this one function: an array handed to an inlined helper costs an atomic
    reference count pair per call, which here cost a third of the run.
    """
    store = equity_out.shape[0] > 0
    has_hours = hours_ok.shape[0] > 0
    has_stops = not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit))
    watch_position = has_stops or has_hours or cfg.max_bars > 0
    # Only stops and next-open fills read a bar's open, high and low: a load they do not need
    # misses the cache on most event bars.
    read_ohl = cfg.fill == Fill.NextOpen or has_stops
    from_array = source == SignalSource.Array
    exponential = source == SignalSource.EmaCross
    sma = source == SignalSource.SmaCross
    # The averages as sma_1d_nb / ema_1d_nb compute them, without their rings: the close is
    # finite, so the value leaving an SMA window is close[i - window].
    fast_f = float(fast)
    slow_f = float(slow)
    warm_up = max(fast, slow)  # from bar warm_up on, both windows are full
    fast_sum = slow_sum = 0.0  # SMA running sums; EMA seeds
    fast_ema = slow_ema = _NAN
    fast_alpha = 2.0 / (fast + 1) if not from_array else 0.0
    slow_alpha = 2.0 / (slow + 1) if not from_array else 0.0
    fast_every = max(1, _SMA_REFRESH_EVERY // fast) if sma else 1
    slow_every = max(1, _SMA_REFRESH_EVERY // slow) if sma else 1
    fast_refresh = fast if sma else -1  # the count of values at which a sum is next rebuilt
    slow_refresh = slow if sma else -1
    was = _UNORDERED  # the averages' order on the previous bar
    n = 0
    bad = -1
    i = state.i
    if i < 0 or stop > close.shape[0]:
        # Also tells the compiler that no index below is negative: no wraparound code per bar.
        raise ValueError("run_bars_nb: state.i and stop must lie within the bars")
    cash = state.cash
    position = state.position
    pending = state.pending_reason
    acc = state.acc
    # Trade records need up to two free slots per event bar. The array is grown out here:
    # reassigning it in the loops below would cost an atomic reference count per bar.
    capacity = trades.shape[0] if store else stop + 2
    while True:
        while i < stop and n + 2 <= capacity:
            # Bar i needs the event logic when an order is pending or a position is watched;
            # otherwise the next bar with signal flags does.
            forced = pending != 0 or (watch_position and position != 0.0)
            limit = i + 1 if forced else stop
            # 1. The averages from bar i up to the first bar with flags (taken) or to limit.
            j = i
            flags = 0
            while j < limit:
                # Most bars take the general rule's common branch to no flags: both windows
                # full, no SMA refresh due, the averages keeping their strict order. Their
                # loops test nothing else.
                if from_array:
                    while j < limit and signals[uintp(j)] == 0:
                        j += 1
                elif j >= warm_up and (was == _ABOVE or was == _BELOW):
                    if exponential:
                        while j < limit:
                            c = close[uintp(j)]
                            f = ((c - fast_ema) * fast_alpha) + fast_ema
                            s = ((c - slow_ema) * slow_alpha) + slow_ema
                            if not (f > s if was == _ABOVE else f < s):
                                break
                            fast_ema = f
                            slow_ema = s
                            j += 1
                    else:
                        # The order by _sma_order_nb's first test, up to the next refresh.
                        end = min(limit, fast_refresh - 1, slow_refresh - 1)
                        if was == _ABOVE:
                            while j < end:
                                c = close[uintp(j)]
                                f = fast_sum + (c - close[uintp(j - fast)])
                                s = slow_sum + (c - close[uintp(j - slow)])
                                if not (f * slow_f > s * fast_f * _ORDER_MARGIN):
                                    break
                                fast_sum = f
                                slow_sum = s
                                j += 1
                        else:
                            while j < end:
                                c = close[uintp(j)]
                                f = fast_sum + (c - close[uintp(j - fast)])
                                s = slow_sum + (c - close[uintp(j - slow)])
                                if not (s * fast_f > f * slow_f * _ORDER_MARGIN):
                                    break
                                fast_sum = f
                                slow_sum = s
                                j += 1
                if j >= limit:
                    break
                # Bar j by the general rule.
                if from_array:
                    flags = int(signals[uintp(j)])
                else:
                    c = close[uintp(j)]
                    seen = j + 1
                    if exponential:
                        fast_sum, fast_ema = _ema_step_nb(
                            seen, c, fast, fast_alpha, fast_sum, fast_ema
                        )
                        slow_sum, slow_ema = _ema_step_nb(
                            seen, c, slow, slow_alpha, slow_sum, slow_ema
                        )
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
                            for k in range(seen - fast, seen):
                                total, comp = _add_nb(total, comp, close[uintp(k)])
                            fast_sum = total + comp
                            fast_refresh = _next_refresh_nb(seen, fast, fast_every)
                        elif seen > fast:
                            fast_sum += c - close[uintp(j - fast)]
                        else:
                            fast_sum += c
                        if seen == slow_refresh:
                            total = comp = 0.0
                            for k in range(seen - slow, seen):
                                total, comp = _add_nb(total, comp, close[uintp(k)])
                            slow_sum = total + comp
                            slow_refresh = _next_refresh_nb(seen, slow, slow_every)
                        elif seen > slow:
                            slow_sum += c - close[uintp(j - slow)]
                        else:
                            slow_sum += c
                        if seen < warm_up:
                            now = _UNORDERED
                        else:
                            now = _sma_order_nb(fast_sum, fast_f, slow_sum, slow_f)
                    flags = _crossing_nb(was, now)
                    was = now
                if flags != 0:
                    break
                j += 1
            found = j
            # 2. With check, the bars up to the one found: a loop without exits, so that it
            # vectorises, then the search for the first bad one if there is one.
            if check:
                last = i + 1 if forced else min(found + 1, stop)
                ok = True
                for k in range(max(i, 1), last):
                    c = close[uintp(k)]
                    ok &= (c > 0.0) & (c < _INF) & (ts[uintp(k)] > ts[uintp(k - 1)])
                if i == 0 and last > 0:
                    ok &= (close[0] > 0.0) & (close[0] < _INF)
                if not ok:
                    for k in range(i, last):
                        c = close[uintp(k)]
                        if not (c > 0.0 and c < _INF) or (
                            k > 0 and ts[uintp(k)] <= ts[uintp(k - 1)]
                        ):
                            bad = k
                            break
                    found = bad
            # 3. The bars before it, through which cash and position stay as they are.
            quiet = found if not forced or bad >= 0 else i
            if i >= quiet:
                pass
            elif position == 0.0:
                # Flat: one equity for all; after the first bar the fold only counts (a zero
                # return, the same drawdown), unless the equity is NaN, which equals nothing.
                equity = cash + position * close[uintp(i)]
                if store:
                    for k in range(i, quiet):
                        u = uintp(k)
                        equity_out[u] = equity
                        cash_out[u] = cash
                        position_out[u] = position
                if equity == acc.prev_equity:
                    acc = acc_count_bars_nb(acc, quiet - i)
                elif not np.isnan(equity):
                    acc = acc_count_bars_nb(acc_bar_nb(acc, equity, False), quiet - i - 1)
                else:
                    for k in range(i, quiet):
                        acc = acc_bar_nb(acc, equity, False)
            else:
                if store:
                    for k in range(i, quiet):
                        u = uintp(k)
                        equity_out[u] = cash + position * close[u]
                        cash_out[u] = cash
                        position_out[u] = position
                # The deepest relative drawdown changes on few bars: the inner loop leaves
                # for it, so that no blend of it lies on the path from one bar to the next.
                k = i
                while k < quiet:
                    deeper = False
                    while k < quiet:
                        acc, deeper = acc_held_bar_nb(acc, cash + position * close[uintp(k)])
                        k += 1
                        if deeper:
                            break
                    if deeper:
                        acc = acc_deepest_nb(acc)
            i = quiet
            if i >= stop or bad >= 0:
                break
            # 4. Bar i: the event logic.
            c = close[uintp(i)]
            entry_ok = hours_ok[uintp(i)] if has_hours else True
            o = h = lo = c
            if read_ohl:
                o = open_[uintp(i)]
                h = high[uintp(i)]
                lo = low[uintp(i)]
            ts_i = ts[uintp(i)]
            state = SimState(
                i,
                cash,
                position,
                state.entry_index,
                state.entry_ts,
                state.entry_price,
                state.entry_ref,
                state.entry_fees,
                state.pending_target,
                pending,
                state.trade_id,
                acc,
            )
            state, first, second, m = _bar_events_nb(cfg, state, flags, o, h, lo, c, ts_i, entry_ok)
            for k in range(m if store else 0):
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
            equity = cash + position * c
            if store:
                u = uintp(i)
                equity_out[u] = equity
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
    out = SimState(
        i,
        cash,
        position,
        state.entry_index,
        state.entry_ts,
        state.entry_price,
        state.entry_ref,
        state.entry_fees,
        state.pending_target,
        pending,
        state.trade_id,
        acc,
    )
    return out, trades, n, bad
