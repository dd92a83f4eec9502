"""One-pass kernels behind :func:`engine.features.feature_matrix`, for finite input.

The reference kernels (``engine.indicators``, ``engine._features_reference_nb``) carry NaN
semantics, ring buffers and compensated sums a live feed needs; a matrix of a million clean
bars needs none of it, and paid 25-30 ns a bar for it. These kernels read the input arrays in
place (no ring buffer: the value leaving a window is ``a[i - window]``), skip no branch they
could avoid, and write their outputs directly (Bollinger's three bands, %R and %K from one pass
over the highs and lows). Each returns ``False``, having written garbage, when it meets a NaN or
an infinity past the leading NaNs: the caller then runs the reference kernel, whose semantics
for missing values the matrix keeps. Results equal the references within float rounding
(``tests/engine/test_features.py`` holds them to TA-Lib and pandas).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)

__all__ = [
    "BANDS",
    "STD",
    "ZSCORE",
    "high_low_into_nb",
    "moments_into_nb",
]

STD = 0  # o1 = deviation
BANDS = 1  # o1, o2, o3 = middle, upper, lower
ZSCORE = 2  # o1 = (a - mean) / deviation, 0.0 on a flat window

# A sliding sum of squared deviations cancels digits once the window mean drifts away from the
# shift: rebuild from the window when more than three would go (as the reference does).
_DRIFT = 1e3
BLOCK = 512  # bars a sliding loop leaves in scratch for a loop without branches
DOUBLING_WINDOW = 64  # %R and %K up to this window by doubling spans, above by van Herk
# The sums are rebuilt from the window at least this often: their error stays that of a few
# hundred additions, and a rebuild (a chain of 2 x window additions) costs ~1 cycle a bar.
REBUILD = 128


@njit(cache=True, nogil=True, inline="always")
def _sum_nb(a: np.ndarray, lo: int, hi: int) -> float:
    total = 0.0
    for j in range(lo, hi):
        total += a[j]
    return total


@njit(cache=True, nogil=True, inline="always")
def _all_finite_nb(a: np.ndarray) -> bool:
    bad = False
    for i in range(a.shape[0]):
        bad |= not np.isfinite(a[i])
    return not bad


@njit(cache=True, nogil=True, inline="always")
def _window_moments_nb(a: np.ndarray, lo: int, hi: int) -> tuple[float, float, float]:
    """Shift (the mean of ``a[lo:hi]``) and the sums of deviations and squared deviations."""
    total = 0.0
    for j in range(lo, hi):
        total += a[j]
    shift = total / (hi - lo)
    s1 = s2 = 0.0
    for j in range(lo, hi):
        d = a[j] - shift
        s1 += d
        s2 += d * d
    return shift, s1, s2


@njit(cache=True, nogil=True, inline="always")
def _equal_nb(a: np.ndarray, lo: int, hi: int) -> bool:
    for j in range(lo + 1, hi):
        if a[j] != a[lo]:
            return False
    return True


@njit(cache=True, nogil=True)
def _finish_nb(
    mode: int,
    a: np.ndarray,
    means: np.ndarray,
    squares: np.ndarray,
    inv_dof: float,
    nstd: float,
    o1: np.ndarray,
    o2: np.ndarray,
    o3: np.ndarray,
    at: int,
) -> None:
    """A block's outputs from its means and sums of squares (``o1`` and ``a`` are the block's,
    ``o2`` and ``o3`` whole, from ``at``). A loop of its own over slices: LLVM vectorizes it
    only so (inlined in the block loop it stays one value at a time)."""
    if mode == STD:
        for j in range(o1.shape[0]):
            ss = squares[j]
            o1[j] = np.sqrt((max(0.0, ss)) * inv_dof)
    elif mode == BANDS:
        upper = o2[at : at + o1.shape[0]]
        lower = o3[at : at + o1.shape[0]]
        for j in range(o1.shape[0]):
            ss = squares[j]
            width = np.sqrt((max(0.0, ss)) * inv_dof) * nstd
            mean = means[j]
            o1[j] = mean
            upper[j] = mean + width
            lower[j] = mean - width
    else:
        for j in range(o1.shape[0]):
            ss = squares[j]
            std = np.sqrt((max(0.0, ss)) * inv_dof)
            o1[j] = (a[j] - means[j]) / std if std > 0.0 else 0.0


@njit(cache=True, nogil=True)
def moments_into_nb(
    a: np.ndarray,
    window: int,
    ddof: int,
    mode: int,
    nstd: float,
    o1: np.ndarray,
    o2: np.ndarray,
    o3: np.ndarray,
) -> bool:
    """Rolling mean and deviation (``ddof``) of ``a`` after its leading NaNs, written as
    ``mode`` says (:data:`STD`, :data:`BANDS` with ``nstd`` deviations, :data:`ZSCORE`).

    Blocks of :data:`REBUILD` bars (or ``window``): the sums of deviations from a shift, the
    mean of the block's first window, slide over the rest of the block, so their error is that
    of a few hundred additions of small numbers. A block where the mean ran away from the shift
    (more than three digits would cancel) is computed again window by window, which also makes
    a window of equal values give exactly that value and deviation 0.0. The sliding loop leaves
    means and sums of squares in scratch arrays; loops without a branch turn them into outputs
    (square roots and divisions, several to an instruction)."""
    n = a.shape[0]
    start = 0
    while start < n and np.isnan(a[start]):
        start += 1
    first = start + window - 1
    for i in range(min(first, n)):
        o1[i] = np.nan
        if mode == BANDS:
            o2[i] = o3[i] = np.nan
    for i in range(start, min(first, n)):
        if not np.isfinite(a[i]):
            return False
    inv_window = 1.0 / window
    inv_dof = 1.0 / (window - ddof)
    every = max(window, REBUILD)  # a block: rebuilt at its first bar, slid over the rest
    means = np.empty(every)
    squares = np.empty(every)
    for b0 in range(first, n, every):
        b1 = min(b0 + every, n)
        if not np.isfinite(a[b0]):
            return False
        shift, s1, s2 = _window_moments_nb(a, b0 - window + 1, b0 + 1)
        means[0] = shift + s1 * inv_window
        squares[0] = s2 - s1 * s1 * inv_window
        finite = False
        drift = s2 > _DRIFT * squares[0]
        entering, leaving = a[b0 + 1 : b1], a[b0 + 1 - window : b1 - window]
        for j in range(entering.shape[0]):  # slices from 0: no negative-index checks
            x = entering[j]
            finite |= not np.isfinite(x)  # flags, not branches: a branch would sit in the chain
            dn = x - shift
            do = leaving[j] - shift
            s1 += dn - do
            s2 += (dn - do) * (dn + do)
            ss = s2 - s1 * s1 * inv_window
            drift |= s2 > _DRIFT * ss
            means[j + 1] = shift + s1 * inv_window
            squares[j + 1] = ss
        if finite:
            return False
        if drift:
            # Rare: a jump then a quiet window, or a window of equal values (whose sums cancel
            # to rounding noise): the block again, each window on its own.
            for i in range(b0, b1):
                if _equal_nb(a, i - window + 1, i + 1):
                    means[i - b0] = a[i]
                    squares[i - b0] = 0.0
                else:
                    shift, s1, s2 = _window_moments_nb(a, i - window + 1, i + 1)
                    means[i - b0] = shift + s1 * inv_window
                    squares[i - b0] = s2 - s1 * s1 * inv_window
        m = b1 - b0
        _finish_nb(mode, a[b0:b1], means[:m], squares[:m], inv_dof, nstd, o1[b0:b1], o2, o3, b0)
    return True


@njit(cache=True, nogil=True)
def _oscillators_nb(
    highest: np.ndarray,
    lowest: np.ndarray,
    close: np.ndarray,
    willr: np.ndarray,
    stochk: np.ndarray,
) -> None:
    """%R and %K of a stretch from its extremes (an empty output: not wanted), in a loop of
    its own over slices, which LLVM vectorizes."""
    if willr.shape[0] and stochk.shape[0]:
        for j in range(close.shape[0]):
            r = highest[j] - lowest[j]
            scale = 100.0 / r if r != 0.0 else 0.0
            willr[j] = (close[j] - highest[j]) * scale + 0.0  # not -0.0 on a flat window
            stochk[j] = (close[j] - lowest[j]) * scale
        return
    if willr.shape[0]:
        for j in range(close.shape[0]):
            r = highest[j] - lowest[j]
            scale = 100.0 / r if r != 0.0 else 0.0
            willr[j] = (close[j] - highest[j]) * scale + 0.0
    if stochk.shape[0]:
        for j in range(close.shape[0]):
            r = highest[j] - lowest[j]
            scale = 100.0 / r if r != 0.0 else 0.0
            stochk[j] = (close[j] - lowest[j]) * scale


@njit(cache=True, nogil=True)
def _stride_extremes_nb(
    high: np.ndarray, low: np.ndarray, top: np.ndarray, bottom: np.ndarray, d: int
) -> None:
    """``top[k] = max(high[k], high[k - d])`` and ``bottom`` the min of ``low`` likewise, for
    ``k >= d``: selects over slices indexed from 0, which LLVM vectorizes (``max()`` minds
    NaNs, none here; ``high[k - d]`` checks for a negative index, which stops it)."""
    n = top.shape[0]
    new, old, out = high[d:n], high[: n - d], top[d:n]
    for j in range(out.shape[0]):
        x = new[j]
        y = old[j]
        out[j] = x if x > y else y  # noqa: FURB136
    new, old, out = low[d:n], low[: n - d], bottom[d:n]
    for j in range(out.shape[0]):
        x = new[j]
        y = old[j]
        out[j] = x if x < y else y  # noqa: FURB136


@njit(cache=True, nogil=True)
def _high_low_doubling_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    window: int,
    willr: np.ndarray,
    stochk: np.ndarray,
) -> None:
    """:func:`high_low_into_nb` for short windows, a block of :data:`BLOCK` bars at a time:
    the extremes of 2, 4, 8... bars from those of half as many, then the window's from two
    overlapping spans, each step a vectorized pass over the block (log2(window) passes)."""
    n = close.shape[0]
    size = BLOCK + window - 1
    top_a, top_b = np.empty(size), np.empty(size)
    bottom_a, bottom_b = np.empty(size), np.empty(size)
    for b0 in range(window - 1, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        lo = b0 - window + 1
        m = b1 - lo
        top = high[lo:b1]
        bottom = low[lo:b1]
        span = 1
        while span < window:
            step = min(span, window - span)  # the last step overlaps two spans
            if top.ctypes.data == top_a.ctypes.data:
                _stride_extremes_nb(top, bottom, top_b[:m], bottom_b[:m], step)
                top, bottom = top_b[:m], bottom_b[:m]
            else:
                _stride_extremes_nb(top, bottom, top_a[:m], bottom_a[:m], step)
                top, bottom = top_a[:m], bottom_a[:m]
            span += step
        _oscillators_nb(
            top[window - 1 :], bottom[window - 1 :], close[b0:b1],
            willr[b0:b1] if willr.shape[0] else willr, stochk[b0:b1] if stochk.shape[0] else stochk,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def high_low_into_nb(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    window: int,
    willr: np.ndarray,
    stochk: np.ndarray,
) -> bool:
    """Williams' %R into ``willr`` and fast %K into ``stochk`` (either may be empty: not
    wanted), from the highest high and lowest low of each ``window``, found in O(1) a bar
    (van Herk / Gil-Werman: blocks of ``window`` bars, the extreme from a bar to its block's end
    computed backwards, from its block's start forwards; a window spans the tail of one block
    and the head of the next). The extremes, exact, wait in scratch arrays for a loop without
    a branch that divides several to an instruction."""
    n = close.shape[0]
    want_r = willr.shape[0] > 0
    want_k = stochk.shape[0] > 0
    for i in range(min(window - 1, n)):
        if want_r:
            willr[i] = np.nan
        if want_k:
            stochk[i] = np.nan
    if not (_all_finite_nb(high) and _all_finite_nb(low) and _all_finite_nb(close)):
        return False
    if window <= DOUBLING_WINDOW:
        _high_low_doubling_nb(high, low, close, window, willr, stochk)
        return True
    # Extremes from each bar to its block's end, this block's and the previous one's; a
    # sentinel past the end, so a window starting at this block's first bar needs no branch.
    top, bottom = np.full(window + 1, -np.inf), np.full(window + 1, np.inf)
    prev_top, prev_bottom = np.full(window + 1, -np.inf), np.full(window + 1, np.inf)
    span = window * max(1, BLOCK // window)  # bars between two output loops
    highest = np.empty(span)
    lowest = np.empty(span)
    base = 0  # the first bar in the scratch arrays
    for b0 in range(0, n, window):
        b1 = min(b0 + window, n)
        hh = -np.inf
        ll = np.inf
        for j in range(b1 - 1, b0 - 1, -1):
            h = high[j]
            lo = low[j]
            hh = max(hh, h)
            ll = min(ll, lo)
            top[j - b0] = hh
            bottom[j - b0] = ll
        ph = -np.inf
        pl = np.inf
        for i in range(b0, b1):  # the window starts at the previous block's bar i - b0 + 1
            h = high[i]
            lo = low[i]
            ph = max(ph, h)
            pl = min(pl, lo)
            t = prev_top[i - b0 + 1]
            u = prev_bottom[i - b0 + 1]
            highest[i - base] = max(ph, t)
            lowest[i - base] = min(pl, u)
        top, prev_top = prev_top, top
        bottom, prev_bottom = prev_bottom, bottom
        if b1 < n and b1 - base + window <= span:
            continue  # room for another block
        lo = max(base, window - 1)
        _oscillators_nb(
            highest[lo - base : b1 - base], lowest[lo - base : b1 - base], close[lo:b1],
            willr[lo:b1] if want_r else willr, stochk[lo:b1] if want_k else stochk,
        )  # fmt: skip
        base = b1
    return True


# -- recursive averages and running sums: each step a multiply-add, no branch ------------------
# Wilder's and the exponential averages are written ``avg * keep + x * weight`` (not TA-Lib's
# ``((x - avg) * alpha) + avg`` or ``(avg * (w - 1) + x) / w``): a multiply and an add on the
# chain from one bar to the next instead of three operations or a division. Equal within float
# rounding, which these averages shrink rather than grow.
#
# Two bars a step: ``avg[i+1] = avg[i-1] * keep**2 + (x[i] * keep + x[i+1]) * weight``, so the
# chain from one step to the next (a multiply and an add) covers two bars; ``avg[i]`` hangs off
# it. The chain's latency, not the arithmetic, bounded these loops.


@njit(cache=True, nogil=True)
def sma_into_nb(a: np.ndarray, window: int, out: np.ndarray) -> bool:
    """Simple moving average (``talib.SMA``): a sliding sum rebuilt every :data:`REBUILD`
    bars."""
    n = a.shape[0]
    if not _all_finite_nb(a):
        return False
    out[: min(window - 1, n)] = np.nan
    inv = 1.0 / window
    every = max(window, REBUILD)
    for b0 in range(window - 1, n, every):
        total = _sum_nb(a, b0 - window + 1, b0 + 1)
        out[b0] = total * inv
        for i in range(b0 + 1, min(b0 + every, n)):
            total += a[i] - a[i - window]
            out[i] = total * inv
    return True


@njit(cache=True, nogil=True)
def ema_into_nb(a: np.ndarray, window: int, out: np.ndarray) -> bool:
    """Exponential moving average seeded by the first window's mean (``talib.EMA``)."""
    n = a.shape[0]
    if not _all_finite_nb(a):
        return False
    out[: min(window - 1, n)] = np.nan
    if n < window:
        return True
    alpha = 2.0 / (window + 1)
    keep = 1.0 - alpha
    e = _sum_nb(a, 0, window) / window
    out[window - 1] = e
    keep2, alpha_keep = keep * keep, alpha * keep
    i = window
    while i + 1 < n:  # two bars a step (see "Two bars a step" above)
        x1 = a[i]
        x2 = a[i + 1]
        out[i] = e * keep + x1 * alpha
        e = e * keep2 + (x1 * alpha_keep + x2 * alpha)
        out[i + 1] = e
        i += 2
    if i < n:
        out[i] = e * keep + a[i] * alpha
    return True


@njit(cache=True, nogil=True)
def macd_into_nb(
    a: np.ndarray,
    fast: int,
    slow: int,
    signal: int,
    line: np.ndarray,
    sig: np.ndarray,
    hist: np.ndarray,
) -> bool:
    """MACD line, signal and histogram with TA-Lib's alignment (``talib.MACD``): both EMAs
    seeded at ``slow - 1``, the signal on the first ``signal`` lines, outputs from
    ``slow + signal - 2``."""
    if slow < fast:
        fast, slow = slow, fast
    n = a.shape[0]
    if not _all_finite_nb(a):
        return False
    first = slow + signal - 2
    for i in range(min(first, n)):
        line[i] = sig[i] = hist[i] = np.nan
    if n <= first:
        return True
    a_s, a_f, a_g = 2.0 / (slow + 1), 2.0 / (fast + 1), 2.0 / (signal + 1)
    k_s, k_f, k_g = 1.0 - a_s, 1.0 - a_f, 1.0 - a_g
    es = _sum_nb(a, 0, slow) / slow
    ef = _sum_nb(a, slow - fast, slow) / fast
    seed = ef - es
    for i in range(slow, first + 1):
        x = a[i]
        es = es * k_s + x * a_s
        ef = ef * k_f + x * a_f
        seed += ef - es
    g = seed / signal
    line[first] = ef - es
    sig[first] = g
    hist[first] = (ef - es) - g
    k_s2, k_f2, k_g2 = k_s * k_s, k_f * k_f, k_g * k_g
    ak_s, ak_f, ak_g = a_s * k_s, a_f * k_f, a_g * k_g
    i = first + 1
    while i + 1 < n:  # two bars a step
        x1 = a[i]
        x2 = a[i + 1]
        m1 = (ef * k_f + x1 * a_f) - (es * k_s + x1 * a_s)
        es = es * k_s2 + (x1 * ak_s + x2 * a_s)
        ef = ef * k_f2 + (x1 * ak_f + x2 * a_f)
        m2 = ef - es
        g1 = g * k_g + m1 * a_g
        g = g * k_g2 + (m1 * ak_g + m2 * a_g)
        line[i], sig[i], hist[i] = m1, g1, m1 - g1
        line[i + 1], sig[i + 1], hist[i + 1] = m2, g, m2 - g
        i += 2
    if i < n:
        x = a[i]
        m = (ef * k_f + x * a_f) - (es * k_s + x * a_s)
        g1 = g * k_g + m * a_g
        line[i], sig[i], hist[i] = m, g1, m - g1
    return True


@njit(cache=True, nogil=True)
def rsi_into_nb(a: np.ndarray, window: int, out: np.ndarray) -> bool:
    """Wilder's RSI (``talib.RSI``): the first value at ``window`` averages the first
    ``window`` gains and losses; no movement at all gives 0.0."""
    n = a.shape[0]
    if not _all_finite_nb(a):
        return False
    out[: min(window, n)] = np.nan
    if n <= window:
        return True
    gain = loss = 0.0
    for i in range(1, window + 1):
        d = a[i] - a[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain /= window
    loss /= window
    total = gain + loss
    out[window] = 100.0 * (gain / total) if total != 0.0 else 0.0
    inv = 1.0 / window
    keep = (window - 1) * inv
    keep2 = keep * keep
    i = window + 1
    while i + 1 < n:  # two bars a step
        d1 = a[i] - a[i - 1]
        d2 = a[i + 1] - a[i]
        g1, l1 = max(d1, 0.0) * inv, max(-d1, 0.0) * inv
        g2, l2 = max(d2, 0.0) * inv, max(-d2, 0.0) * inv
        gain1 = gain * keep + g1
        loss1 = loss * keep + l1
        gain = gain * keep2 + (g1 * keep + g2)
        loss = loss * keep2 + (l1 * keep + l2)
        total = gain1 + loss1
        out[i] = 100.0 * (gain1 / total) if total != 0.0 else 0.0
        total = gain + loss
        out[i + 1] = 100.0 * (gain / total) if total != 0.0 else 0.0
        i += 2
    if i < n:
        d = a[i] - a[i - 1]
        gain = gain * keep + max(d, 0.0) * inv
        loss = loss * keep + max(-d, 0.0) * inv
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0
    return True


@njit(cache=True, nogil=True)
def atr_into_nb(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int, out: np.ndarray
) -> bool:
    """Wilder's average true range (``talib.ATR``), window 2 or more: the first true range at
    row 1, the first ATR (their mean) at row ``window``."""
    n = close.shape[0]
    if window < 2 or not (_all_finite_nb(high) and _all_finite_nb(low) and _all_finite_nb(close)):
        return False
    out[: min(window, n)] = np.nan
    if n <= window:
        return True
    total = 0.0
    for i in range(1, window + 1):
        prev = close[i - 1]
        total += max(high[i] - low[i], abs(prev - high[i]), abs(prev - low[i]))
    atr = total / window
    out[window] = atr
    inv = 1.0 / window
    keep = (window - 1) * inv
    keep2 = keep * keep
    i = window + 1
    while i + 1 < n:  # two bars a step
        prev = close[i - 1]
        tr1 = max(high[i] - low[i], abs(prev - high[i]), abs(prev - low[i])) * inv
        prev = close[i]
        tr2 = max(high[i + 1] - low[i + 1], abs(prev - high[i + 1]), abs(prev - low[i + 1])) * inv
        out[i] = atr * keep + tr1
        atr = atr * keep2 + (tr1 * keep + tr2)
        out[i + 1] = atr
        i += 2
    if i < n:
        prev = close[i - 1]
        tr = max(high[i] - low[i], abs(prev - high[i]), abs(prev - low[i]))
        out[i] = atr * keep + tr * inv
    return True


@njit(cache=True, nogil=True)
def obv_into_nb(close: np.ndarray, volume: np.ndarray, out: np.ndarray) -> bool:
    """On-balance volume (``talib.OBV``), the volume added with the sign of the close's move:
    bit for bit the reference's sums, without its branches."""
    n = close.shape[0]
    if n == 0:
        return True
    if not (_all_finite_nb(close) and _all_finite_nb(volume)):
        return False
    total = volume[0]
    out[0] = total
    for i in range(1, n):
        up = close[i] > close[i - 1]
        down = close[i] < close[i - 1]
        total += (np.float64(up) - np.float64(down)) * volume[i]
        out[i] = total
    return True


@njit(cache=True, nogil=True)
def ratio_into_nb(a: np.ndarray, out: np.ndarray) -> None:
    """``a[i] / a[i-1]`` where both are positive, else NaN (NaN at 0): the argument of a log
    return, whose log numpy takes several to an instruction."""
    n = a.shape[0]
    if n:
        out[0] = np.nan
    new, old, into = a[1:], a[: max(n - 1, 0)], out[1:]
    for j in range(into.shape[0]):  # slices from 0, as in rocp_into_nb
        prev = old[j]
        x = new[j]
        into[j] = x / prev if prev > 0.0 and x > 0.0 else np.nan


HOUR_NS = 3_600_000_000_000
_INV_HOUR = 1.0 / HOUR_NS


@njit(cache=True, nogil=True)
def utc_hour_into_nb(ts: np.ndarray, out: np.ndarray) -> None:
    """``(ts // HOUR_NS) % 24`` for int64 nanoseconds (floor semantics, negative times too),
    without an integer division: the hour count from a float product, corrected by one either
    way when the product rounded across an hour, then its remainder by 24 in floats (exact
    below 2**50 hours)."""
    for i in range(ts.shape[0]):
        x = ts[i]
        q = np.int64(np.floor(x * _INV_HOUR))
        r = x - q * HOUR_NS
        q += np.int64(r >= HOUR_NS) - np.int64(r < 0)
        out[i] = q - 24 * np.int64(np.floor(q / 24.0))


@njit(cache=True, nogil=True)
def rocp_into_nb(a: np.ndarray, period: int, out: np.ndarray) -> None:
    """``engine._features_reference_nb.rocp_1d_nb`` into ``out``."""
    n = a.shape[0]
    out[: min(period, n)] = np.nan
    new, old, into = a[period:], a[: max(n - period, 0)], out[period:]
    for j in range(into.shape[0]):  # slices from 0: a[i - period] would stop LLVM vectorizing
        prev = old[j]
        into[j] = (new[j] - prev) / prev if prev != 0.0 else 0.0


@njit(cache=True, nogil=True)
def forward_return_into_nb(a: np.ndarray, horizon: int, out: np.ndarray) -> None:
    """``engine._features_reference_nb.forward_return_1d_nb`` into ``out``."""
    n = a.shape[0]
    new, into = a[horizon:], out[: max(n - horizon, 0)]
    for j in range(into.shape[0]):
        into[j] = new[j] / a[j] - 1.0
    out[max(n - horizon, 0) :] = np.nan


CHUNK = 4096  # bars of returns held in scratch at a time


@njit(cache=True, nogil=True)
def returns_std_into_nb(close: np.ndarray, window: int, ddof: int, out: np.ndarray) -> bool:
    """The rolling deviation of 1-bar returns (``rocp_1d_nb(close, 1)``) without an array of
    returns: chunks of :data:`CHUNK` bars, each with its returns (and the ``window - 1``
    before) in scratch, through :func:`moments_into_nb`. The last chunk goes first: a chunk's
    warm-up NaNs land on the previous chunk's bars, which that chunk then writes."""
    n = close.shape[0]
    if n == 0:
        return True
    scratch = np.empty(CHUNK + window)
    none = np.empty(0)
    for c0 in range((n - 1) // CHUNK * CHUNK, -1, -CHUNK):
        c1 = min(c0 + CHUNK, n)
        lo = max(c0 - window + 1, 0)
        returns = scratch[: c1 - lo]
        for k in range(c1 - lo):
            i = lo + k
            if i == 0:
                returns[k] = np.nan
            else:
                prev = close[i - 1]
                returns[k] = (close[i] - prev) / prev if prev != 0.0 else 0.0
        if not moments_into_nb(returns, window, ddof, STD, 0.0, out[lo:c1], none, none):
            return False
    return True
