"""One-pass kernels behind :func:`engine.features.feature_matrix`, for finite input.

The reference kernels (``engine.indicators``, the ones in ``engine.features``) carry NaN
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
# The sums are rebuilt from the window at least this often: their error stays that of a few
# hundred additions, and a rebuild (a chain of 2 x window additions) costs ~1 cycle a bar.
REBUILD = 128


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
        for i in range(b0 + 1, b1):
            x = a[i]
            finite |= not np.isfinite(x)  # flags, not branches: a branch would sit in the chain
            dn = x - shift
            do = a[i - window] - shift
            s1 += dn - do
            s2 += (dn - do) * (dn + do)
            ss = s2 - s1 * s1 * inv_window
            drift |= s2 > _DRIFT * ss
            means[i - b0] = shift + s1 * inv_window
            squares[i - b0] = ss
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
        if mode == STD:
            for j in range(m):
                o1[b0 + j] = np.sqrt(max(squares[j], 0.0) * inv_dof)
        elif mode == BANDS:
            for j in range(m):
                width = np.sqrt(max(squares[j], 0.0) * inv_dof) * nstd
                o1[b0 + j] = means[j]
                o2[b0 + j] = means[j] + width
                o3[b0 + j] = means[j] - width
        else:
            for j in range(m):
                std = np.sqrt(max(squares[j], 0.0) * inv_dof)
                o1[b0 + j] = (a[b0 + j] - means[j]) / std if std > 0.0 else 0.0
    return True


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
    ring = 2 * window  # suffix extremes of the current and the previous block
    top = np.empty(ring)
    bottom = np.empty(ring)
    span = window * max(1, BLOCK // window)  # bars between two output loops
    highest = np.empty(span)
    lowest = np.empty(span)
    base = 0  # the first bar in the scratch arrays
    for b0 in range(0, n, window):
        b1 = min(b0 + window, n)
        slot = b0 % ring
        hh = -np.inf
        ll = np.inf
        for j in range(b1 - 1, b0 - 1, -1):
            h = high[j]
            lo = low[j]
            if not (np.isfinite(h) and np.isfinite(lo) and np.isfinite(close[j])):
                return False
            hh = max(hh, h)
            ll = min(ll, lo)
            top[slot + j - b0] = hh
            bottom[slot + j - b0] = ll
        prev = window - slot  # the previous block's slot
        ph = -np.inf
        pl = np.inf
        for i in range(b0, b1):
            ph = max(ph, high[i])
            pl = min(pl, low[i])
            at = prev + i - b0 + 1  # where the window starts: the previous block, or b0
            if at >= ring:
                at -= ring
            highest[i - base] = max(top[at], ph)
            lowest[i - base] = min(bottom[at], pl)
        if b1 < n and b1 - base + window <= span:
            continue  # room for another block
        for i in range(max(base, window - 1), b1):
            hh = highest[i - base]
            ll = lowest[i - base]
            c = close[i]
            r = hh - ll
            scale = 100.0 / r if r != 0.0 else 0.0
            if want_r:
                willr[i] = (c - hh) * scale + 0.0  # not -0.0 on a flat window
            if want_k:
                stochk[i] = (c - ll) * scale
        base = b1
    return True
