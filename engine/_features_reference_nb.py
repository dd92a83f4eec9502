"""Reference kernels of the feature matrix: plain loops over float64 arrays, each equal to the
TA-Lib or pandas function its docstring names, with the missing-value semantics of
``engine.indicators`` (NaN during the warm-up, and a NaN in the input carried into the windows
that hold it).

:func:`engine.features.feature_matrix` computes through the one-pass kernels of
``engine._features_nb``, which decline input holding a NaN or an infinity. A column whose
one-pass kernel declined comes from the kernel here (%R and %K, OBV, the volume z-score, the
1-bar returns behind volatility) or in ``engine.indicators``; ``high_n`` and ``low_n`` always
come from :func:`rolling_max_1d_nb` and :func:`rolling_min_1d_nb`, which have no one-pass twin.
:func:`forward_return_1d_nb` and :func:`utc_hour_1d_nb` define what the matrix's ``target``
and ``hour`` kernels compute; the matrix never calls them.

``tests/engine/test_features.py`` holds these kernels to TA-Lib and pandas, and a matrix over
input with a NaN to them bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.indicators import _rolling_mean_std_1d_nb

__all__ = [
    "forward_return_1d_nb",
    "obv_1d_nb",
    "rocp_1d_nb",
    "rolling_max_1d_nb",
    "rolling_min_1d_nb",
    "rolling_zscore_1d_nb",
    "stochf_k_1d_nb",
    "utc_hour_1d_nb",
    "willr_1d_nb",
]

HOUR_NS = 3_600_000_000_000


@njit(cache=True, nogil=True)
def rocp_1d_nb(a: np.ndarray, period: int) -> np.ndarray:
    """``period``-bar rate of change ``(a[i] - a[i-p]) / a[i-p]``; equals
    ``talib.ROCP(a, period)`` (0.0 after a zero value, as TA-Lib)."""
    n = a.shape[0]
    out = np.full(n, np.nan)
    for i in range(period, n):
        prev = a[i - period]
        out[i] = (a[i] - prev) / prev if prev != 0.0 else 0.0
    return out


@njit(cache=True, nogil=True)
def forward_return_1d_nb(a: np.ndarray, horizon: int) -> np.ndarray:
    """The return over the next ``horizon`` bars, ``a[i+h] / a[i] - 1``; NaN for the last
    ``horizon`` bars. Equals ``pd.Series(a).shift(-h) / pd.Series(a) - 1``."""
    n = a.shape[0]
    out = np.full(n, np.nan)
    for i in range(n - horizon):
        out[i] = a[i + horizon] / a[i] - 1.0
    return out


SCAN_WINDOW = 48  # up to this window a plain scan beats the deque's branches


@njit(cache=True, nogil=True)
def _rolling_extreme_nb(a: np.ndarray, window: int, larger: bool) -> np.ndarray:
    """A plain scan of each window when it is short; else a monotonic deque of indices, O(n)
    for any window."""
    n = a.shape[0]
    out = np.full(n, np.nan)
    if window <= SCAN_WINDOW:
        for i in range(window - 1, n):
            best = a[i - window + 1]
            if larger:
                for j in range(i - window + 2, i + 1):
                    best = max(best, a[j])
            else:
                for j in range(i - window + 2, i + 1):
                    best = min(best, a[j])
            out[i] = best
        return out
    queue = np.empty(n, dtype=np.int64)
    head = tail = 0
    for i in range(n):
        x = a[i]
        while tail > head:
            last = a[queue[tail - 1]]
            if (larger and last <= x) or (not larger and last >= x):
                tail -= 1
            else:
                break
        queue[tail] = i
        tail += 1
        if queue[head] <= i - window:
            head += 1
        if i >= window - 1:
            out[i] = a[queue[head]]
    return out


@njit(cache=True, nogil=True)
def rolling_max_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Highest value of the last ``window``; equals ``talib.MAX(a, window)`` (and
    ``pd.Series(a).rolling(window).max()``) on NaN-free input."""
    return _rolling_extreme_nb(a, window, True)


@njit(cache=True, nogil=True)
def rolling_min_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """Lowest value of the last ``window``; equals ``talib.MIN(a, window)``."""
    return _rolling_extreme_nb(a, window, False)


@njit(cache=True, nogil=True)
def willr_1d_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Williams' %R, ``-100 (HH - close) / (HH - LL)`` over ``window`` bars; equals
    ``talib.WILLR(high, low, close, window)`` (0.0 on a flat window, as TA-Lib)."""
    hh = rolling_max_1d_nb(high, window)
    ll = rolling_min_1d_nb(low, window)
    out = np.full(close.shape[0], np.nan)
    for i in range(window - 1, close.shape[0]):
        diff = (hh[i] - ll[i]) / -100.0
        out[i] = (hh[i] - close[i]) / diff if diff != 0.0 else 0.0
    return out


@njit(cache=True, nogil=True)
def stochf_k_1d_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    """Fast stochastic %K, ``100 (close - LL) / (HH - LL)``; equals the first output of
    ``talib.STOCHF(high, low, close, window, 1)`` (0.0 on a flat window)."""
    hh = rolling_max_1d_nb(high, window)
    ll = rolling_min_1d_nb(low, window)
    out = np.full(close.shape[0], np.nan)
    for i in range(window - 1, close.shape[0]):
        diff = (hh[i] - ll[i]) / 100.0
        out[i] = (close[i] - ll[i]) / diff if diff != 0.0 else 0.0
    return out


@njit(cache=True, nogil=True)
def obv_1d_nb(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume; equals ``talib.OBV(close, volume)``."""
    n = close.shape[0]
    out = np.empty(n)
    if n == 0:
        return out
    total = volume[0]
    out[0] = total
    for i in range(1, n):
        if close[i] > close[i - 1]:
            total += volume[i]
        elif close[i] < close[i - 1]:
            total -= volume[i]
        out[i] = total
    return out


@njit(cache=True, nogil=True)
def rolling_zscore_1d_nb(a: np.ndarray, window: int) -> np.ndarray:
    """``(a - mean) / std`` over the last ``window`` (population deviation); equals
    ``(s - s.rolling(w).mean()) / s.rolling(w).std(ddof=0)`` where the deviation is not 0,
    and 0.0 on a flat window."""
    mean, std = _rolling_mean_std_1d_nb(a, window, 0)
    out = np.full(a.shape[0], np.nan)
    for i in range(a.shape[0]):
        if std[i] > 0.0:
            out[i] = (a[i] - mean[i]) / std[i]
        elif std[i] == 0.0:
            out[i] = 0.0
    return out


@njit(cache=True, nogil=True)
def utc_hour_1d_nb(ts: np.ndarray) -> np.ndarray:
    """The UTC hour of each int64-nanosecond time."""
    out = np.empty(ts.shape[0], dtype=np.int8)
    for i in range(ts.shape[0]):
        out[i] = (ts[i] // HOUR_NS) % 24
    return out
