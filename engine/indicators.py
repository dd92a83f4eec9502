"""Indicator kernels: batch ``*_1d_nb`` over float64 arrays and incremental ``*_update_nb``.

A live feed that calls ``*_update_nb`` value by value reproduces the batch output bit for bit
(the tests compare them bit for bit): most batch kernels are a loop over their update kernel;
the windowed ones (SMA, WMA, rolling std, Bollinger) spell the same arithmetic out in their
loop, because a state or a call carrying the ring buffer costs several times more per value.
Each kernel's docstring names the reference it equals. Conventions shared by all of them:

* Output arrays are float64 with NaN during warm-up (the TA-Lib lookback).
* Leading NaNs are skipped the way the ``ta-lib`` wrapper skips them: the warm-up starts at the
  first non-NaN value (for several inputs, the first row where all are non-NaN).
* A NaN after that point propagates forever through the recursive indicators (EMA, RSI, MACD,
  ATR), as in TA-Lib. The windowed ones (SMA, WMA, rolling std, Bollinger) are NaN while a NaN
  is inside the window and recover once it leaves (pandas ``rolling`` semantics), where TA-Lib's
  running total would stay NaN forever.
* Window sums run plainly between rebuilds from the ring buffer (compensated, Neumaier) about
  every thousand values, so their error stays that of a thousand additions and does not drift
  over millions of values. Variances use compensated sums of shifted data (the shift is reset
  to the window mean at each wrap, and sooner if the mean runs away from it), never
  ``E[x^2] - mean^2``, which loses every digit on a price near 1e5 that moves by cents.

States are NamedTuples returned with the output: ``state, out = sma_update_nb(state, x)``. The
windowed states hold a ring buffer (``buf``) that the update writes in place; copy it to keep a
snapshot.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)

__all__ = [
    "AtrState",
    "BollingerState",
    "EmaState",
    "MacdState",
    "MomentsState",
    "ReturnState",
    "RsiState",
    "SmaState",
    "VwapState",
    "WmaState",
    "atr_1d_nb",
    "atr_init_nb",
    "atr_update_nb",
    "bollinger_1d_nb",
    "bollinger_init_nb",
    "bollinger_update_nb",
    "ema_1d_nb",
    "ema_init_nb",
    "ema_update_nb",
    "log_return_update_nb",
    "log_returns_1d_nb",
    "macd_1d_nb",
    "macd_init_nb",
    "macd_update_nb",
    "return_init_nb",
    "rolling_std_1d_nb",
    "rolling_std_init_nb",
    "rolling_std_update_nb",
    "rsi_1d_nb",
    "rsi_init_nb",
    "rsi_update_nb",
    "simple_return_update_nb",
    "simple_returns_1d_nb",
    "sma_1d_nb",
    "sma_init_nb",
    "sma_update_nb",
    "vwap_1d_nb",
    "vwap_init_nb",
    "vwap_session_1d_nb",
    "vwap_update_nb",
    "wma_1d_nb",
    "wma_init_nb",
    "wma_update_nb",
]


# --------------------------------------------------------------------------------------------
# States


class SmaState(NamedTuple):
    window: int
    buf: np.ndarray  # ring of the last `window` values, written in place
    pos: int  # slot the next value goes to; the oldest value when the window is full
    seen: int  # values taken since the first non-NaN one (`count` would shadow tuple.count)
    nan_count: int  # NaNs inside the window
    total: float  # running sum, recomputed from `buf` each time the ring wraps


class WmaState(NamedTuple):
    window: int
    buf: np.ndarray
    pos: int
    seen: int
    nan_count: int
    total: float  # running sum of the window, recomputed when the ring wraps
    wsum: float  # sum of weight * value, the newest value weighing `window`


class MomentsState(NamedTuple):
    """Rolling mean and variance over shifted data: s1 = sum(x - shift), s2 = sum((x - shift)^2)."""

    window: int
    ddof: int
    buf: np.ndarray
    pos: int
    seen: int
    nan_count: int
    shift: float
    s1: float
    c1: float
    s2: float
    c2: float


class BollingerState(NamedTuple):
    moments: MomentsState
    nstd: float


class EmaState(NamedTuple):
    window: int
    alpha: float  # 2 / (window + 1), TA-Lib's PER_TO_K
    seen: int
    seed: float  # plain running sum of the first `window` values
    value: float


class RsiState(NamedTuple):
    window: int
    seen: int
    prev: float
    gain: float
    loss: float


class MacdState(NamedTuple):
    fast: int
    slow: int
    seen: int
    fast_ema: EmaState
    slow_ema: EmaState
    signal_ema: EmaState


class AtrState(NamedTuple):
    window: int
    seen: int  # rows taken since the first row with high, low and close all non-NaN
    prev_close: float
    seed: float
    value: float


class VwapState(NamedTuple):
    session_ns: int  # 0: never reset (cumulative VWAP)
    offset_ns: int
    session: int
    started: bool
    pv: float
    pv_comp: float
    vol: float
    vol_comp: float


class ReturnState(NamedTuple):
    prev: float


# --------------------------------------------------------------------------------------------
# Compensated sums


@njit(cache=True, nogil=True)
def _add_nb(total: float, comp: float, x: float) -> tuple[float, float]:
    """Neumaier's compensated addition: the rounding error of each step goes into `comp`."""
    t = total + x
    if abs(total) >= abs(x):
        comp += (total - t) + x
    else:
        comp += (x - t) + total
    return t, comp


@njit(cache=True, nogil=True)
def _ring_sum_nb(buf: np.ndarray) -> float:
    total = 0.0
    comp = 0.0
    for i in range(buf.shape[0]):
        total, comp = _add_nb(total, comp, buf[i])
    return total + comp


# Running window sums are rebuilt from the ring at the first wrap after this many values: often
# enough that their rounding stays that of ~1000 additions, rarely enough to cost nothing.
_REFRESH_EVERY = 1024


@njit(cache=True, nogil=True)
def _refresh_due_nb(seen: int, window: int) -> bool:
    """At a wrap of the ring (callers test ``pos == 0`` inline: a call per value is not free)."""
    if seen < window:
        return False
    wraps = seen // window
    return wraps % max(1, _REFRESH_EVERY // window) == 0 or wraps == 1


@njit(cache=True, nogil=True)
def _check_window_nb(window: int, minimum: int) -> None:
    if window < minimum:
        raise ValueError("window must be >= " + str(minimum) + ", got " + str(window))


# --------------------------------------------------------------------------------------------
# SMA


@njit(cache=True, nogil=True)
def sma_init_nb(window: int) -> SmaState:
    _check_window_nb(window, 1)
    return SmaState(window, np.full(window, np.nan), 0, 0, 0, 0.0)


@njit(cache=True, nogil=True)
def sma_update_nb(state: SmaState, value: float) -> tuple[SmaState, float]:
    """One step of :func:`sma_1d_nb`."""
    if state.seen == 0 and np.isnan(value):
        return state, np.nan
    window = state.window
    buf = state.buf
    pos = state.pos
    seen = state.seen + 1
    nan_count = state.nan_count
    total = state.total
    evicting = seen > window
    old = buf[pos]
    buf[pos] = value
    pos = pos + 1 if pos + 1 < window else 0
    nan_left = evicting and np.isnan(old)
    if nan_left:
        nan_count -= 1
    if np.isnan(value):
        nan_count += 1
    if nan_count == 0:
        if nan_left or (pos == 0 and _refresh_due_nb(seen, window)):
            total = _ring_sum_nb(buf)
        elif evicting:
            total += value - old
        else:
            total += value
    out = total / window if seen >= window and nan_count == 0 else np.nan
    return SmaState(window, buf, pos, seen, nan_count, total), out


@njit(cache=True, nogil=True)
def sma_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Simple moving average; equals ``talib.SMA(a, window)``.

    The loop is :func:`sma_update_nb` written out: a state or a call carrying the ring buffer
    costs several times more per value. Tests hold the two bit-identical."""
    _check_window_nb(window, 1)
    buf = np.full(window, np.nan)
    out = np.empty(a.shape[0], dtype=np.float64)
    pos = seen = nan_count = 0
    total = 0.0
    for i in range(a.shape[0]):
        value = a[i]
        if seen == 0 and np.isnan(value):
            out[i] = np.nan
            continue
        seen += 1
        evicting = seen > window
        old = buf[pos]
        buf[pos] = value
        pos = pos + 1 if pos + 1 < window else 0
        nan_left = evicting and np.isnan(old)
        if nan_left:
            nan_count -= 1
        if np.isnan(value):
            nan_count += 1
        if nan_count == 0:
            if nan_left or (pos == 0 and _refresh_due_nb(seen, window)):
                # _ring_sum_nb(buf) spelled out: a call taking the buffer slows every value.
                t = c = 0.0
                for j in range(window):
                    t, c = _add_nb(t, c, buf[j])
                total = t + c
            elif evicting:
                total += value - old
            else:
                total += value
        out[i] = total / window if seen >= window and nan_count == 0 else np.nan
    return out


# --------------------------------------------------------------------------------------------
# WMA


@njit(cache=True, nogil=True)
def wma_init_nb(window: int) -> WmaState:
    _check_window_nb(window, 1)
    return WmaState(window, np.full(window, np.nan), 0, 0, 0, 0.0, 0.0)


@njit(cache=True, nogil=True)
def wma_update_nb(state: WmaState, value: float) -> tuple[WmaState, float]:
    """One step of :func:`wma_1d_nb`."""
    if state.seen == 0 and np.isnan(value):
        return state, np.nan
    window = state.window
    buf = state.buf
    pos = state.pos
    seen = state.seen + 1
    nan_count = state.nan_count
    total = state.total
    wsum = state.wsum
    evicting = seen > window
    old = buf[pos]
    buf[pos] = value
    pos = pos + 1 if pos + 1 < window else 0
    nan_left = evicting and np.isnan(old)
    if nan_left:
        nan_count -= 1
    if np.isnan(value):
        nan_count += 1
    if nan_count == 0:
        if nan_left or (pos == 0 and _refresh_due_nb(seen, window)):
            total, wsum = _weighted_sums_nb(buf, pos)
        elif evicting:
            # Every weight drops by one (the oldest value's to zero), the new value weighs `window`.
            wsum += window * value - total
            total += value - old
        else:
            wsum += seen * value
            total += value
    out = np.nan
    if seen >= window and nan_count == 0:
        out = wsum / (window * (window + 1) // 2)
    return WmaState(window, buf, pos, seen, nan_count, total, wsum), out


@njit(cache=True, nogil=True)
def _weighted_sums_nb(buf: np.ndarray, pos: int) -> tuple[float, float]:
    """Compensated sum and weighted sum of the ring, the oldest value (at `pos`) weighing 1."""
    window = buf.shape[0]
    total = total_comp = wsum = wsum_comp = 0.0
    for j in range(window):
        x = buf[(pos + j) % window]
        total, total_comp = _add_nb(total, total_comp, x)
        wsum, wsum_comp = _add_nb(wsum, wsum_comp, (j + 1) * x)
    return total + total_comp, wsum + wsum_comp


@njit(cache=True, nogil=True)
def wma_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Linearly weighted moving average (newest weighs `window`); equals ``talib.WMA``.

    :func:`wma_update_nb` written out, as in :func:`sma_1d_nb`."""
    _check_window_nb(window, 1)
    buf = np.full(window, np.nan)
    out = np.empty(a.shape[0], dtype=np.float64)
    divider = window * (window + 1) // 2
    pos = seen = nan_count = 0
    total = wsum = 0.0
    for i in range(a.shape[0]):
        value = a[i]
        if seen == 0 and np.isnan(value):
            out[i] = np.nan
            continue
        seen += 1
        evicting = seen > window
        old = buf[pos]
        buf[pos] = value
        pos = pos + 1 if pos + 1 < window else 0
        nan_left = evicting and np.isnan(old)
        if nan_left:
            nan_count -= 1
        if np.isnan(value):
            nan_count += 1
        if nan_count == 0:
            if nan_left or (pos == 0 and _refresh_due_nb(seen, window)):
                # _weighted_sums_nb(buf, pos) spelled out, as in sma_1d_nb.
                t = tc = w = wc = 0.0
                for j in range(window):
                    x = buf[(pos + j) % window]
                    t, tc = _add_nb(t, tc, x)
                    w, wc = _add_nb(w, wc, (j + 1) * x)
                total = t + tc
                wsum = w + wc
            elif evicting:
                wsum += window * value - total
                total += value - old
            else:
                wsum += seen * value
                total += value
        out[i] = wsum / divider if seen >= window and nan_count == 0 else np.nan
    return out


# --------------------------------------------------------------------------------------------
# Rolling moments: standard deviation and Bollinger bands


@njit(cache=True, nogil=True)
def _moments_init_nb(window: int, ddof: int) -> MomentsState:
    _check_window_nb(window, 1)
    if ddof < 0 or ddof >= window:
        raise ValueError(
            "ddof must be >= 0 and < window, got ddof=" + str(ddof) + " with window=" + str(window)
        )
    return MomentsState(window, ddof, np.full(window, np.nan), 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, nogil=True)
def _moments_push_nb(state: MomentsState, value: float) -> MomentsState:
    if state.seen == 0 and np.isnan(value):
        return state
    window = state.window
    buf = state.buf
    pos = state.pos
    seen = state.seen + 1
    nan_count = state.nan_count
    shift = value if state.seen == 0 else state.shift
    s1, c1, s2, c2 = state.s1, state.c1, state.s2, state.c2
    evicting = seen > window
    old = buf[pos]
    buf[pos] = value
    pos = pos + 1 if pos + 1 < window else 0
    nan_left = evicting and np.isnan(old)
    if nan_left:
        nan_count -= 1
    if np.isnan(value):
        nan_count += 1
    if nan_count == 0:
        recompute = nan_left or (pos == 0 and seen >= window)
        if not recompute:
            # A value leaves with the very same (x - shift)^2 it entered with, so the
            # compensated sums cancel it exactly.
            if evicting:
                d = old - shift
                s1, c1 = _add_nb(s1, c1, -d)
                s2, c2 = _add_nb(s2, c2, -(d * d))
            d = value - shift
            s1, c1 = _add_nb(s1, c1, d)
            s2, c2 = _add_nb(s2, c2, d * d)
            if seen >= window:
                # The mean drifted far from the shift (a jump, then a quiet window): more
                # than three digits would cancel in s2 - s1^2/n, so start from the data.
                t1 = s1 + c1
                t2 = s2 + c2
                recompute = t2 * window > 1e3 * (t2 * window - t1 * t1)
        if recompute and seen >= window:
            shift, s1, c1, s2, c2 = _moments_from_buffer_nb(buf)
    return MomentsState(window, state.ddof, buf, pos, seen, nan_count, shift, s1, c1, s2, c2)


@njit(cache=True, nogil=True)
def _moments_from_buffer_nb(buf: np.ndarray) -> tuple[float, float, float, float, float]:
    """Shift (the window mean, or the value itself for a flat window so it stays exactly 0)
    and the compensated sums of deviations and squared deviations from it."""
    window = buf.shape[0]
    shift = buf[0]
    constant = True
    for j in range(1, window):
        if buf[j] != shift:
            constant = False
            break
    if not constant:
        shift = _ring_sum_nb(buf) / window
    s1, c1, s2, c2 = 0.0, 0.0, 0.0, 0.0
    for j in range(window):
        d = buf[j] - shift
        s1, c1 = _add_nb(s1, c1, d)
        s2, c2 = _add_nb(s2, c2, d * d)
    return shift, s1, c1, s2, c2


@njit(cache=True, nogil=True)
def _mean_std_nb(
    window: int, ddof: int, shift: float, s1: float, c1: float, s2: float, c2: float
) -> tuple[float, float]:
    t1 = s1 + c1
    ss = (s2 + c2) - t1 * t1 / window
    if ss < 0.0:  # noqa: PLR1730 (rounding only: a sum of squares is never negative)
        ss = 0.0
    return shift + t1 / window, np.sqrt(ss / (window - ddof))


@njit(cache=True, nogil=True)
def _rolling_mean_std_1d_nb(a: np.ndarray, window: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_moments_push_nb` and :func:`_moments_mean_std_nb` written out over an array,
    as in :func:`sma_1d_nb`; tests hold them bit-identical."""
    _moments_init_nb(window, ddof)  # validates
    buf = np.full(window, np.nan)
    n = a.shape[0]
    mean = np.empty(n, dtype=np.float64)
    std = np.empty(n, dtype=np.float64)
    pos = seen = nan_count = 0
    shift = s1 = c1 = s2 = c2 = 0.0
    for i in range(n):
        value = a[i]
        if seen == 0 and np.isnan(value):
            mean[i] = std[i] = np.nan
            continue
        if seen == 0:
            shift = value
        seen += 1
        evicting = seen > window
        old = buf[pos]
        buf[pos] = value
        pos = pos + 1 if pos + 1 < window else 0
        nan_left = evicting and np.isnan(old)
        if nan_left:
            nan_count -= 1
        if np.isnan(value):
            nan_count += 1
        if nan_count == 0:
            recompute = nan_left or (pos == 0 and seen >= window)
            if not recompute:
                if evicting:
                    d = old - shift
                    s1, c1 = _add_nb(s1, c1, -d)
                    s2, c2 = _add_nb(s2, c2, -(d * d))
                d = value - shift
                s1, c1 = _add_nb(s1, c1, d)
                s2, c2 = _add_nb(s2, c2, d * d)
                if seen >= window:
                    t1 = s1 + c1
                    t2 = s2 + c2
                    recompute = t2 * window > 1e3 * (t2 * window - t1 * t1)
            if recompute and seen >= window:
                shift, s1, c1, s2, c2 = _moments_from_buffer_nb(buf)
        if seen < window or nan_count > 0:
            mean[i] = std[i] = np.nan
        else:
            mean[i], std[i] = _mean_std_nb(window, ddof, shift, s1, c1, s2, c2)
    return mean, std


@njit(cache=True, nogil=True)
def _moments_mean_std_nb(state: MomentsState) -> tuple[float, float]:
    if state.seen < state.window or state.nan_count > 0:
        return np.nan, np.nan
    return _mean_std_nb(
        state.window, state.ddof, state.shift, state.s1, state.c1, state.s2, state.c2
    )


@njit(cache=True, nogil=True)
def rolling_std_init_nb(window: int, ddof: int) -> MomentsState:
    return _moments_init_nb(window, ddof)


@njit(cache=True, nogil=True)
def rolling_std_update_nb(state: MomentsState, value: float) -> tuple[MomentsState, float]:
    """One step of :func:`rolling_std_1d_nb`."""
    state = _moments_push_nb(state, value)
    return state, _moments_mean_std_nb(state)[1]


@njit(cache=True, nogil=True)
def rolling_std_1d_nb(a: np.ndarray, window: int, ddof: int) -> np.ndarray:
    """Rolling standard deviation.

    ``ddof=0`` equals ``talib.STDDEV(a, window, 1.0)``; ``ddof=1`` equals
    ``pd.Series(a).rolling(window).std()``. A window of equal values gives exactly 0.0.
    """
    return _rolling_mean_std_1d_nb(a, window, ddof)[1]


@njit(cache=True, nogil=True)
def bollinger_init_nb(window: int, nstd: float) -> BollingerState:
    return BollingerState(_moments_init_nb(window, 0), nstd)


@njit(cache=True, nogil=True)
def bollinger_update_nb(
    state: BollingerState, value: float
) -> tuple[BollingerState, float, float, float]:
    """One step of :func:`bollinger_1d_nb`: ``state, middle, upper, lower``."""
    moments = _moments_push_nb(state.moments, value)
    middle, std = _moments_mean_std_nb(moments)
    width = std * state.nstd
    return BollingerState(moments, state.nstd), middle, middle + width, middle - width


@njit(cache=True, nogil=True)
def bollinger_1d_nb(
    a: np.ndarray, window: int, nstd: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands ``(middle, upper, lower)`` around the SMA with population deviation.

    Equals ``talib.BBANDS(a, window, nstd, nstd, MA_Type.SMA)``, whose order is
    ``(upper, middle, lower)``; the middle band is the window mean computed with the deviation
    (equal to :func:`sma_1d_nb` within rounding, not bit for bit).
    """
    middle, std = _rolling_mean_std_1d_nb(a, window, 0)
    width = std * nstd
    return middle, middle + width, middle - width


# --------------------------------------------------------------------------------------------
# EMA


@njit(cache=True, nogil=True)
def ema_init_nb(window: int) -> EmaState:
    _check_window_nb(window, 1)
    return EmaState(window, 2.0 / (window + 1), 0, 0.0, np.nan)


@njit(cache=True, nogil=True)
def ema_update_nb(state: EmaState, value: float) -> tuple[EmaState, float]:
    """One step of :func:`ema_1d_nb`."""
    if state.seen == 0 and np.isnan(value):
        return state, np.nan
    seen = state.seen + 1
    window = state.window
    if seen < window:
        return EmaState(window, state.alpha, seen, state.seed + value, np.nan), np.nan
    if seen == window:
        ema = (state.seed + value) / window
    else:
        # TA-Lib's operation order.
        ema = ((value - state.value) * state.alpha) + state.value
    return EmaState(window, state.alpha, seen, state.seed, ema), ema


@njit(cache=True, nogil=True)
def ema_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (window + 1), seeded by the SMA of the first
    `window` values; equals ``talib.EMA(a, window)`` (default compatibility, unstable period 0)."""
    state = ema_init_nb(window)
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        state, out[i] = ema_update_nb(state, a[i])
    return out


# --------------------------------------------------------------------------------------------
# RSI


@njit(cache=True, nogil=True)
def rsi_init_nb(window: int) -> RsiState:
    _check_window_nb(window, 1)
    return RsiState(window, 0, np.nan, 0.0, 0.0)


@njit(cache=True, nogil=True)
def rsi_update_nb(state: RsiState, value: float) -> tuple[RsiState, float]:
    """One step of :func:`rsi_1d_nb`."""
    if state.seen == 0:
        if np.isnan(value):
            return state, np.nan
        return RsiState(state.window, 1, value, 0.0, 0.0), np.nan
    window = state.window
    seen = state.seen + 1
    diff = value - state.prev
    gain = state.gain
    loss = state.loss
    if seen <= window:
        # First `window` differences: plain sums, averaged once all are in.
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        return RsiState(window, seen, value, gain, loss), np.nan
    if seen == window + 1:
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        loss /= window
        gain /= window
    else:
        loss *= window - 1
        gain *= window - 1
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        loss /= window
        gain /= window
    total = gain + loss
    out = 100.0 * (gain / total) if total != 0.0 else 0.0
    return RsiState(window, seen, value, gain, loss), out


@njit(cache=True, nogil=True)
def rsi_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Relative strength index with Wilder's smoothing; equals ``talib.RSI(a, window)``.

    Like TA-Lib, the first value (at index `window`) averages the first `window` gains and
    losses, no movement at all gives 0.0, and no unstable period is skipped. After a NaN input
    TA-Lib reports 0.0 forever (its NaN average reads as no movement, which an RSI strategy
    would take for deeply oversold); here the output stays NaN, like the other recursive ones.
    """
    state = rsi_init_nb(window)
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        state, out[i] = rsi_update_nb(state, a[i])
    return out


# --------------------------------------------------------------------------------------------
# MACD


@njit(cache=True, nogil=True)
def macd_init_nb(fast: int, slow: int, signal: int) -> MacdState:
    _check_window_nb(fast, 1)
    _check_window_nb(slow, 1)
    _check_window_nb(signal, 1)
    if slow < fast:  # TA-Lib swaps them too
        fast, slow = slow, fast
    return MacdState(fast, slow, 0, ema_init_nb(fast), ema_init_nb(slow), ema_init_nb(signal))


@njit(cache=True, nogil=True)
def macd_update_nb(state: MacdState, value: float) -> tuple[MacdState, float, float, float]:
    """One step of :func:`macd_1d_nb`: ``state, line, signal, histogram``."""
    if state.seen == 0 and np.isnan(value):
        return state, np.nan, np.nan, np.nan
    seen = state.seen + 1
    slow_ema, slow_value = ema_update_nb(state.slow_ema, value)
    fast_ema = state.fast_ema
    fast_value = np.nan
    # TA-Lib seeds the fast EMA on the `fast` values that end where the slow seed ends.
    if seen > state.slow - state.fast:
        fast_ema, fast_value = ema_update_nb(fast_ema, value)
    signal_ema = state.signal_ema
    line = np.nan
    signal = np.nan
    if seen >= state.slow:
        line = fast_value - slow_value
        signal_ema, signal = ema_update_nb(signal_ema, line)
    new_state = MacdState(state.fast, state.slow, seen, fast_ema, slow_ema, signal_ema)
    if seen < state.slow + signal_ema.window - 1:
        return new_state, np.nan, np.nan, np.nan
    return new_state, line, signal, line - signal


@njit(cache=True, nogil=True)
def macd_1d_nb(
    a: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD ``(line, signal, histogram)``; equals ``talib.MACD(a, fast, slow, signal)``.

    TA-Lib's alignment: both EMAs are seeded at index ``slow - 1`` (the fast one on the last
    `fast` values there), the signal EMA is seeded on the first `signal` line values, and all
    three outputs start at index ``slow + signal - 2``. A `fast` above `slow` is swapped.
    """
    state = macd_init_nb(fast, slow, signal)
    n = a.shape[0]
    line = np.empty(n, dtype=np.float64)
    sig = np.empty(n, dtype=np.float64)
    hist = np.empty(n, dtype=np.float64)
    for i in range(n):
        state, line[i], sig[i], hist[i] = macd_update_nb(state, a[i])
    return line, sig, hist


# --------------------------------------------------------------------------------------------
# ATR


@njit(cache=True, nogil=True)
def atr_init_nb(window: int) -> AtrState:
    _check_window_nb(window, 1)
    return AtrState(window, 0, np.nan, 0.0, np.nan)


@njit(cache=True, nogil=True)
def atr_update_nb(state: AtrState, high: float, low: float, close: float) -> tuple[AtrState, float]:
    """One step of :func:`atr_1d_nb`."""
    window = state.window
    if state.seen == 0:
        if np.isnan(high) or np.isnan(low) or np.isnan(close):
            return state, np.nan
        return AtrState(window, 1, close, 0.0, np.nan), np.nan
    seen = state.seen + 1
    prev = state.prev_close
    # TA-Lib's TRANGE with its comparisons, which decide what a NaN gives (not max()'s).
    tr = high - low
    d = abs(prev - high)
    if d > tr:  # noqa: PLR1730
        tr = d
    d = abs(prev - low)
    if d > tr:  # noqa: PLR1730
        tr = d
    n_tr = seen - 1
    seed = state.seed
    atr = state.value
    if window == 1:
        atr = tr
    elif n_tr < window:
        seed += tr
    elif n_tr == window:
        atr = (seed + tr) / window
    else:
        atr *= window - 1
        atr += tr
        atr /= window
    out = atr if n_tr >= window else np.nan
    return AtrState(window, seen, close, seed, atr), out


@njit(cache=True, nogil=True)
def atr_1d_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Average true range with Wilder's smoothing; equals ``talib.ATR(high, low, close, window)``.

    The first true range is at the second row, the first ATR (their SMA) at row `window`; a
    window of 1 is the true range itself (``talib.TRANGE``).
    """
    n = close.shape[0]
    if high.shape[0] != n or low.shape[0] != n:
        raise ValueError("high, low and close must have the same length")
    state = atr_init_nb(window)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        state, out[i] = atr_update_nb(state, high[i], low[i], close[i])
    return out


# --------------------------------------------------------------------------------------------
# Returns


@njit(cache=True, nogil=True)
def return_init_nb() -> ReturnState:
    return ReturnState(np.nan)


@njit(cache=True, nogil=True)
def simple_return_update_nb(state: ReturnState, value: float) -> tuple[ReturnState, float]:
    """One step of :func:`simple_returns_1d_nb`."""
    prev = state.prev
    out = (value - prev) / prev if prev != 0.0 else 0.0
    return ReturnState(value), out


@njit(cache=True, nogil=True)
def simple_returns_1d_nb(a: np.ndarray) -> np.ndarray:
    """One-step simple returns ``a[i] / a[i-1] - 1`` as ``(a[i] - a[i-1]) / a[i-1]``.

    Equals ``talib.ROCP(a, 1)``, including its 0.0 after a zero value.
    """
    state = return_init_nb()
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        state, out[i] = simple_return_update_nb(state, a[i])
    return out


@njit(cache=True, nogil=True)
def log_return_update_nb(state: ReturnState, value: float) -> tuple[ReturnState, float]:
    """One step of :func:`log_returns_1d_nb`."""
    prev = state.prev
    out = np.log(value / prev) if prev > 0.0 and value > 0.0 else np.nan
    return ReturnState(value), out


@njit(cache=True, nogil=True)
def log_returns_1d_nb(a: np.ndarray) -> np.ndarray:
    """One-step log returns ``log(a[i] / a[i-1])``; equals ``np.log(talib.ROCR(a, 1))`` for
    positive values. A log return is undefined at a non-positive value, so it is NaN there."""
    state = return_init_nb()
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        state, out[i] = log_return_update_nb(state, a[i])
    return out


# --------------------------------------------------------------------------------------------
# VWAP


@njit(cache=True, nogil=True)
def vwap_init_nb(session_ns: int, offset_ns: int) -> VwapState:
    """`session_ns` = 0 accumulates forever; otherwise the sums restart whenever
    ``(ts - offset_ns) // session_ns`` changes (for example a UTC day: 86_400 * 10**9, 0)."""
    if session_ns < 0:
        raise ValueError("session_ns must be >= 0, got " + str(session_ns))
    return VwapState(session_ns, offset_ns, 0, False, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, nogil=True)
def vwap_update_nb(
    state: VwapState, ts: int, high: float, low: float, close: float, volume: float
) -> tuple[VwapState, float]:
    """One step of :func:`vwap_1d_nb` / :func:`vwap_session_1d_nb`."""
    pv, pv_comp, vol, vol_comp = state.pv, state.pv_comp, state.vol, state.vol_comp
    session = state.session
    started = state.started
    if state.session_ns > 0:
        session = (ts - state.offset_ns) // state.session_ns
        if started and session != state.session:
            pv, pv_comp, vol, vol_comp = 0.0, 0.0, 0.0, 0.0
        started = True
    if np.isnan(high) or np.isnan(low) or np.isnan(close) or np.isnan(volume):
        # A row with a missing value contributes nothing and has no VWAP of its own.
        return VwapState(
            state.session_ns, state.offset_ns, session, started, pv, pv_comp, vol, vol_comp
        ), np.nan
    typical = (high + low + close) / 3.0
    pv, pv_comp = _add_nb(pv, pv_comp, typical * volume)
    vol, vol_comp = _add_nb(vol, vol_comp, volume)
    total_vol = vol + vol_comp
    out = (pv + pv_comp) / total_vol if total_vol != 0.0 else np.nan
    return VwapState(
        state.session_ns, state.offset_ns, session, started, pv, pv_comp, vol, vol_comp
    ), out


@njit(cache=True, nogil=True)
def vwap_session_1d_nb(
    ts: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    session_ns: int,
    offset_ns: int,
) -> np.ndarray:
    """VWAP restarted at each session (see :func:`vwap_init_nb`); equals the per-session
    ``cumsum(typical * volume) / cumsum(volume)`` with typical = (high + low + close) / 3.
    NaN while the session's volume is zero and at rows with a NaN input."""
    n = close.shape[0]
    if ts.shape[0] != n or high.shape[0] != n or low.shape[0] != n or volume.shape[0] != n:
        raise ValueError("ts, high, low, close and volume must have the same length")
    state = vwap_init_nb(session_ns, offset_ns)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        state, out[i] = vwap_update_nb(state, ts[i], high[i], low[i], close[i], volume[i])
    return out


@njit(cache=True, nogil=True)
def vwap_1d_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> np.ndarray:
    """Cumulative VWAP from the first row; equals
    ``cumsum(typical * volume) / cumsum(volume)`` with typical = (high + low + close) / 3."""
    n = close.shape[0]
    if high.shape[0] != n or low.shape[0] != n or volume.shape[0] != n:
        raise ValueError("high, low, close and volume must have the same length")
    state = vwap_init_nb(0, 0)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        state, out[i] = vwap_update_nb(state, 0, high[i], low[i], close[i], volume[i])
    return out
