"""Downsampling for charts (LTTB, min-max) and time-bucket OHLCV resampling.

``lttb`` and ``minmax`` pick the very indices tsdownsample's ``LTTBDownsampler`` (given x) and
``MinMaxDownsampler`` (binning in index space, as LTTB does) pick: same buckets, same float
arithmetic, same tie breaking, so a chart drawn from either is the same chart. LTTB is
sequential in the chosen point; it is parallelised by speculation (see ``lttb_nb``) and stays
exact.

The resamplers take and return the ``ohlcv`` mapping the backtests use (``ts`` int64 ns, then
``open``, ``high``, ``low``, ``close``, ``volume``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from llvmlite import ir
from numba import get_num_threads, njit, prange, types
from numba.core.base import BaseContext
from numba.core.typing.templates import Signature
from numba.extending import intrinsic

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)

__all__ = [
    "lttb",
    "lttb_nb",
    "minmax",
    "minmax_nb",
    "resample_bars",
    "resample_bars_nb",
    "resample_ohlcv",
    "resample_ohlcv_nb",
]

_ABS_MASK = 0x7FFF_FFFF_FFFF_FFFF
# Below this many points one thread finishes before a second one would have started.
_PARALLEL_MIN_POINTS = 500_000
# Buckets each speculative chunk runs before its first one, to forget its guessed start.
_WARMUP_BUCKETS = 4
# Buckets whose averages are summed together, four independent chains instead of one.
_GROUP = 4
# Numba's workqueue threading layer aborts on concurrent parallel launches; a caller that
# finds another one inside the parallel kernel takes the sequential one (same output).
_PARALLEL_LOCK = threading.Lock()
_OHLCV = ("ts", "open", "high", "low", "close", "volume")


@intrinsic
def _abs_bits_intrinsic(typingctx: Any, v: types.Type) -> tuple[Signature, Any] | None:
    if v != types.float64:
        return None

    def codegen(context: BaseContext, builder: ir.IRBuilder, sig: Signature, args: Any) -> Any:
        bits = builder.bitcast(args[0], ir.IntType(64))
        return builder.and_(bits, ir.Constant(ir.IntType(64), _ABS_MASK))

    return types.int64(types.float64), codegen


@njit(cache=True, nogil=True, inline="always")
def _abs_bits(v: float) -> int:
    """The float's bits with the sign cleared, as int64: tsdownsample compares areas this way,
    which orders like ``abs`` and ranks NaN above infinity."""
    bits: int = _abs_bits_intrinsic(v)  # type: ignore[call-arg]
    return bits


# --------------------------------------------------------------------------------------------
# LTTB


@njit(cache=True, nogil=True)
def _lttb_means_nb(
    x: np.ndarray,
    y: np.ndarray,
    every: float,
    first: int,
    count: int,
    mean_x: np.ndarray,
    mean_y: np.ndarray,
) -> None:
    """Third points of buckets ``first .. first+count-1``: the mean y of the next bucket summed
    left to right (tsdownsample's order, bit for bit) and the midpoint of its first and last x.
    Up to four buckets are summed in one loop: four dependency chains instead of one."""
    n = y.shape[0]
    starts = np.empty(_GROUP, dtype=np.int64)
    ends = np.empty(_GROUP, dtype=np.int64)
    shortest = n
    for k in range(count):
        i = first + k
        starts[k] = int(every * (i + 1)) + 1
        ends[k] = min(int(every * (i + 2)) + 1, n)
        shortest = min(shortest, ends[k] - starts[k])
    totals = np.zeros(_GROUP)
    if count == _GROUP:
        y0 = y[starts[0] : ends[0]]
        y1 = y[starts[1] : ends[1]]
        y2 = y[starts[2] : ends[2]]
        y3 = y[starts[3] : ends[3]]
        t0 = t1 = t2 = t3 = 0.0
        for j in range(shortest):
            t0 += y0[j]
            t1 += y1[j]
            t2 += y2[j]
            t3 += y3[j]
        totals[0], totals[1], totals[2], totals[3] = t0, t1, t2, t3
    else:
        shortest = 0
    for k in range(count):
        t = totals[k]
        for j in range(starts[k] + shortest, ends[k]):
            t += y[j]
        mean_y[k] = t / (ends[k] - starts[k])
        mean_x[k] = (float(x[ends[k] - 1]) + float(x[starts[k]])) / 2.0


@njit(cache=True, nogil=True)
def _lttb_pick_nb(
    x: np.ndarray, y: np.ndarray, a: int, lo: int, hi: int, cx: float, cy: float
) -> tuple[int, bool]:
    """Index in ``[lo, hi)`` of the largest triangle with point `a` and ``(cx, cy)``, the first
    one on ties; and whether ``x[lo-1 .. hi-1]`` is non-decreasing (checked on the way)."""
    ax = float(x[a])
    ay = float(y[a])
    d1 = ax - cx
    d2 = cy - ay
    offset = d1 * ay + d2 * ax
    xs = x[lo:hi]
    ys = y[lo:hi]
    before = x[lo - 1 : hi - 1]
    best = -1
    ordered = True
    # Two passes: a max over the keys vectorises, an arg-max with its branch does not.
    for j in range(ys.shape[0]):
        best = max(best, _abs_bits(d1 * ys[j] + d2 * float(xs[j]) - offset))
        ordered &= before[j] <= xs[j]
    for j in range(ys.shape[0]):
        if _abs_bits(d1 * ys[j] + d2 * float(xs[j]) - offset) == best:
            return lo + j, ordered
    return lo, ordered


@njit(cache=True, nogil=True)
def _lttb_run_nb(
    x: np.ndarray,
    y: np.ndarray,
    every: float,
    first: int,
    stop: int,
    a: int,
    picks: np.ndarray,
    keep_from: int,
) -> bool:
    """Buckets ``first .. stop-1`` from point `a`; picks of buckets >= `keep_from` are stored."""
    mean_x = np.empty(_GROUP)
    mean_y = np.empty(_GROUP)
    ordered = True
    for group in range(first, stop, _GROUP):
        count = min(_GROUP, stop - group)
        _lttb_means_nb(x, y, every, group, count, mean_x, mean_y)
        for k in range(count):
            i = group + k
            lo = int(every * i) + 1
            hi = int(every * (i + 1)) + 1
            a, ok = _lttb_pick_nb(x, y, a, lo, hi, mean_x[k], mean_y[k])
            ordered &= ok
            if i >= keep_from:
                picks[i] = a
    return ordered


@njit(cache=True, nogil=True, parallel=True)
def _lttb_speculate_nb(
    x: np.ndarray, y: np.ndarray, every: float, picks: np.ndarray, bounds: np.ndarray
) -> bool:
    chunks = bounds.shape[0] - 1
    ordered = np.ones(chunks, dtype=np.bool_)
    for c in prange(chunks):
        first = max(0, bounds[c] - _WARMUP_BUCKETS)
        # A guessed start: the first point of the bucket before the warm-up.
        a = 0 if first == 0 else int(every * (first - 1)) + 1
        ordered[c] = _lttb_run_nb(x, y, every, first, bounds[c + 1], a, picks, bounds[c])
    return bool(ordered.all())


@njit(cache=True, nogil=True)
def lttb_nb(x: np.ndarray, y: np.ndarray, n_out: int, chunks: int) -> np.ndarray:
    """Largest Triangle Three Buckets: the int64 indices of `n_out` kept points.

    Equals ``tsdownsample.LTTBDownsampler().downsample(x, y, n_out=n_out)``: the first and
    last points are kept; the others are split into ``n_out - 2`` buckets of equal size in index
    space, ``every = (n - 2) / (n_out - 2)``, bucket ``i`` being
    ``[int(every * i) + 1, int(every * (i + 1)) + 1)``; each keeps the point making the largest
    triangle with the previous kept point and the next bucket's mean y at the midpoint of that
    bucket's first and last x (Steinarsson's reference averages x, the same for even spacing).

    With ``chunks > 1`` the buckets are split into chunks run in parallel, each from a guessed
    previous point after a short warm-up; then, chunk by chunk, the buckets are recomputed from
    the true previous point until a pick equals the speculative one, after which every later
    pick is the same computation. The output is exact whatever the guess; a chunk that never
    agrees is recomputed whole. Returns an empty array if `x` is not non-decreasing.
    """
    n = y.shape[0]
    if n_out >= n:
        for j in range(1, n):
            if not x[j - 1] <= x[j]:
                return np.empty(0, dtype=np.int64)
        return np.arange(n, dtype=np.int64)
    n_buckets = n_out - 2
    every = (n - 2) / n_buckets
    picks = np.empty(n_buckets, dtype=np.int64)
    chunks = max(1, min(chunks, n_buckets // (4 * _WARMUP_BUCKETS)))
    bounds = np.empty(chunks + 1, dtype=np.int64)
    for c in range(chunks + 1):
        bounds[c] = c * n_buckets // chunks
    if chunks == 1:
        ordered = _lttb_run_nb(x, y, every, 0, n_buckets, 0, picks, 0)
    else:
        ordered = _lttb_speculate_nb(x, y, every, picks, bounds)
        mean_x = np.empty(_GROUP)
        mean_y = np.empty(_GROUP)
        for c in range(1, chunks):
            a = picks[bounds[c] - 1]
            for i in range(bounds[c], bounds[c + 1]):
                _lttb_means_nb(x, y, every, i, 1, mean_x, mean_y)
                lo = int(every * i) + 1
                hi = int(every * (i + 1)) + 1
                a, _ = _lttb_pick_nb(x, y, a, lo, hi, mean_x[0], mean_y[0])
                if a == picks[i]:
                    break
                picks[i] = a
    if not (ordered and x[n - 2] <= x[n - 1]):
        return np.empty(0, dtype=np.int64)
    out = np.empty(n_out, dtype=np.int64)
    out[0] = 0
    out[1 : n_out - 1] = picks
    out[n_out - 1] = n - 1
    return out


# --------------------------------------------------------------------------------------------
# Min-max


@njit(cache=True, nogil=True)
def _order_key(v: float) -> int:
    """An int64 ordered like the floats (NaN aside): the sign-magnitude bits made two's
    complement, so min and max reduce on integers, which vectorise where float ones do not."""
    bits = _abs_bits(v)
    return bits if v >= 0.0 or bits == 0 else -bits


_BLOCK = 16


@njit(cache=True, nogil=True)
def _first_key_nb(y: np.ndarray, lo: int, hi: int, key: int) -> int:
    for j in range(lo, hi):
        v = y[j]
        if not np.isnan(v) and _order_key(v) == key:
            return j
    return lo


@njit(cache=True, nogil=True)
def _minmax_bin_nb(
    x: np.ndarray, y: np.ndarray, lo: int, hi: int, check_x: bool
) -> tuple[int, int, bool]:
    """First index of the minimum and of the maximum of ``y[lo:hi]`` with NaNs skipped, ``lo``
    for both when all are NaN (what the ``argminmax`` crate under tsdownsample returns); and,
    with `check_x`, whether x is non-decreasing up to ``hi - 1``, checked in the same pass.

    Blocks of 16 reduce to a min and a max key without branches (so they vectorise); only a
    block that strictly improves on the best so far is remembered, so the first occurrence is
    in the first block holding the extreme, which is rescanned at the end."""
    big = np.iinfo(np.int64).max
    k_min = big
    k_max = -big
    at_min = lo
    at_max = lo
    start = lo
    if lo == 0:  # x[0] has no predecessor: take y[0] before the loop
        start = 1
        if not np.isnan(y[0]):
            k_min = k_max = _order_key(y[0])
    ordered = True
    j = start
    while j < hi:
        width = min(_BLOCK, hi - j)
        ys = y[j : j + width]
        b_min = big
        b_max = -big
        for k in range(width):
            v = ys[k]
            key = _order_key(v)
            nan = np.isnan(v)
            b_min = min(b_min, big if nan else key)
            b_max = max(b_max, -big if nan else key)
        if check_x:
            xs = x[j : j + width]
            before = x[j - 1 : j - 1 + width]
            for k in range(width):
                ordered &= before[k] <= xs[k]
        if b_min < k_min:
            k_min = b_min
            at_min = j
        if b_max > k_max:
            k_max = b_max
            at_max = j
        j += width
    if k_min == big:
        return lo, lo, ordered
    i_min = lo
    if not (lo == 0 and at_min == 0):
        i_min = _first_key_nb(y, at_min, min(at_min + _BLOCK, hi), k_min)
    i_max = lo
    if not (lo == 0 and at_max == 0):
        i_max = _first_key_nb(y, at_max, min(at_max + _BLOCK, hi), k_max)
    return i_min, i_max, ordered


@njit(cache=True, nogil=True, parallel=True)
def _minmax_bins_nb(
    x: np.ndarray, y: np.ndarray, n_bins: int, block: float, out: np.ndarray, check_x: bool
) -> bool:
    ordered = np.ones(n_bins, dtype=np.bool_)
    for i in prange(n_bins):
        lo = int(block * i) + 1 if i > 0 else 0
        hi = int(block * (i + 1)) + 1
        i_min, i_max, ordered[i] = _minmax_bin_nb(x, y, lo, hi, check_x)
        out[2 * i] = min(i_min, i_max)
        out[2 * i + 1] = max(i_min, i_max)
    return bool(ordered.all())


@njit(cache=True, nogil=True)
def minmax_nb(x: np.ndarray, y: np.ndarray, n_out: int, check_x: bool) -> np.ndarray:
    """Min-max downsampling: for each of ``n_out // 2`` bins of equal size in index space (the
    space LTTB buckets in), the indices of the minimum and the maximum y in index order, NaNs
    skipped; a flat bin gives its first index twice. Bin ``i`` is ``[int(b * i) + 1,
    int(b * (i + 1)) + 1)`` with ``b = (n - 1) / (n_out // 2)`` (the first starts at 0).

    Equals ``tsdownsample.MinMaxDownsampler().downsample(y, n_out=n_out)``. Its variant binned
    on x values has undocumented float-to-integer rounding on int64 timestamps, so it is not
    the reference here. With `check_x`, returns an empty array if `x` is not non-decreasing;
    without, x is not read at all.
    """
    n = y.shape[0]
    if n_out >= n:
        for j in range(1, n if check_x else 0):
            if not x[j - 1] <= x[j]:
                return np.empty(0, dtype=np.int64)
        return np.arange(n, dtype=np.int64)
    n_bins = n_out // 2
    block = (n - 1) / n_bins
    out = np.empty(2 * n_bins, dtype=np.int64)
    last = int(block * n_bins) + 1  # the float edge can fall short of the last point
    if not _minmax_bins_nb(x, y, n_bins, block, out, check_x):
        return np.empty(0, dtype=np.int64)
    for j in range(max(last, 1), n if check_x else 0):
        if not x[j - 1] <= x[j]:
            return np.empty(0, dtype=np.int64)
    return out


# --------------------------------------------------------------------------------------------
# Time-bucket resampling


@njit(cache=True, nogil=True)
def _bucket_start_nb(t: int, bucket_ns: int, origin_ns: int) -> int:
    return t - (t - origin_ns) % bucket_ns  # Python's floor modulo: right before the origin too


@njit(cache=True, nogil=True)
def resample_ohlcv_nb(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, bucket_ns: int, origin_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ticks to bars ``(ts, open, high, low, close, volume)`` over sorted `ts`.

    A bar covers ``[start, start + bucket_ns)`` with ``start = origin_ns + k * bucket_ns``; its
    ts is that start, open the first tick's price, high the max, low the min, close the last,
    volume the sum of sizes. Buckets without ticks give no bar. Equals pandas'
    ``resample(..., origin=origin).ohlc()`` and ``.sum()`` with the empty buckets dropped.
    """
    n = ts.shape[0]
    bars = 0
    last = 0
    for j in range(n):
        start = _bucket_start_nb(ts[j], bucket_ns, origin_ns)
        if j == 0 or start != last:
            bars += 1
            last = start
    out_ts = np.empty(bars, dtype=np.int64)
    out_open = np.empty(bars, dtype=np.float64)
    out_high = np.empty(bars, dtype=np.float64)
    out_low = np.empty(bars, dtype=np.float64)
    out_close = np.empty(bars, dtype=np.float64)
    out_volume = np.empty(bars, dtype=np.float64)
    b = -1
    for j in range(n):
        start = _bucket_start_nb(ts[j], bucket_ns, origin_ns)
        p = price[j]
        if b < 0 or start != out_ts[b]:
            b += 1
            out_ts[b] = start
            out_open[b] = p
            out_high[b] = p
            out_low[b] = p
            out_volume[b] = 0.0
        else:
            out_high[b] = max(out_high[b], p)
            out_low[b] = min(out_low[b], p)
        out_close[b] = p
        out_volume[b] += size[j]
    return out_ts, out_open, out_high, out_low, out_close, out_volume


@njit(cache=True, nogil=True)
def resample_bars_nb(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    bucket_ns: int,
    origin_ns: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bars to larger bars by the start time of each bar, with the rules of
    :func:`resample_ohlcv_nb` (first open, max high, min low, last close, summed volume)."""
    n = ts.shape[0]
    bars = 0
    last = 0
    for j in range(n):
        start = _bucket_start_nb(ts[j], bucket_ns, origin_ns)
        if j == 0 or start != last:
            bars += 1
            last = start
    out_ts = np.empty(bars, dtype=np.int64)
    out_open = np.empty(bars, dtype=np.float64)
    out_high = np.empty(bars, dtype=np.float64)
    out_low = np.empty(bars, dtype=np.float64)
    out_close = np.empty(bars, dtype=np.float64)
    out_volume = np.empty(bars, dtype=np.float64)
    b = -1
    for j in range(n):
        start = _bucket_start_nb(ts[j], bucket_ns, origin_ns)
        if b < 0 or start != out_ts[b]:
            b += 1
            out_ts[b] = start
            out_open[b] = open_[j]
            out_high[b] = high[j]
            out_low[b] = low[j]
            out_volume[b] = 0.0
        else:
            out_high[b] = max(out_high[b], high[j])
            out_low[b] = min(out_low[b], low[j])
        out_close[b] = close[j]
        out_volume[b] += volume[j]
    return out_ts, out_open, out_high, out_low, out_close, out_volume


# --------------------------------------------------------------------------------------------
# Python entry points: validate, convert, call the kernel


def _as_x(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.datetime64) or np.issubdtype(arr.dtype, np.timedelta64):
        arr = arr.view(np.int64)
    if np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise ValueError("x must fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        return np.ascontiguousarray(arr, dtype=np.float64)
    raise ValueError(f"x must be numeric or datetime64, got dtype {arr.dtype}")


def _as_y(y: Any, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"x and y must have the same length, got {n} and {arr.shape[0]}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"y must be numeric, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _check_n_out(n_out: Any, minimum: int) -> int:
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)):
        raise ValueError(f"n_out must be an integer, got {n_out!r}")  # noqa: TRY004 (contract)
    if n_out < minimum:
        raise ValueError(f"n_out must be >= {minimum}, got {n_out}")
    return int(n_out)


def _first_unsorted(x: np.ndarray) -> int:
    bad = np.flatnonzero(~(x[:-1] <= x[1:]))
    return int(bad[0]) + 1 if bad.size else -1


def _unsorted_error(name: str, x: np.ndarray) -> ValueError:
    j = _first_unsorted(x)
    return ValueError(
        f"{name} must be sorted (non-decreasing, no NaN): "
        f"{name}[{j}] = {x[j].item()!r} follows {x[j - 1].item()!r}"
    )


def lttb(x: Any, y: Any, n_out: int) -> np.ndarray:
    """Indices (int64) of the `n_out` points LTTB keeps; all indices when ``n_out >= len(x)``.

    `x` is sorted (int, float or datetime64; ns timestamps stay exact), `y` numeric (taken as
    float64, where tsdownsample would average float32 in float32). Equals tsdownsample's
    ``LTTBDownsampler``; see :func:`lttb_nb`. Raises ``ValueError`` on bad input before any work.
    """
    xa = _as_x(x)
    ya = _as_y(y, xa.shape[0])
    n_out = _check_n_out(n_out, 3)
    if xa.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    chunks = 1
    if xa.shape[0] >= _PARALLEL_MIN_POINTS and _PARALLEL_LOCK.acquire(blocking=False):
        try:
            out = lttb_nb(xa, ya, n_out, get_num_threads())
        finally:
            _PARALLEL_LOCK.release()
    else:
        out = lttb_nb(xa, ya, n_out, chunks)
    if out.shape[0] == 0:
        raise _unsorted_error("x", xa)
    return out


def minmax(x: Any, y: Any, n_out: int, *, assume_sorted: bool = False) -> np.ndarray:
    """Sorted indices (int64) of the minimum and maximum y of ``n_out // 2`` equal index bins;
    all indices when ``n_out >= len(x)``. `n_out` is even and >= 4, `x` sorted. Equals
    tsdownsample's ``MinMaxDownsampler`` on `y`; see :func:`minmax_nb`. NaNs are skipped.

    The bins do not read x, so checking its order is the only reason to load it: a caller that
    knows x is sorted (timestamps read in order from storage) can skip that pass with
    ``assume_sorted=True``, which halves the memory traffic."""
    xa = _as_x(x)
    ya = _as_y(y, xa.shape[0])
    n_out = _check_n_out(n_out, 4)
    if n_out % 2:
        raise ValueError(f"n_out must be even, got {n_out}")
    if xa.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    out = minmax_nb(xa, ya, n_out, not assume_sorted)
    if out.shape[0] == 0:
        raise _unsorted_error("x", xa)
    return out


def _check_bucket(bucket_ns: Any, origin_ns: Any) -> tuple[int, int]:
    for name, value in (("bucket_ns", bucket_ns), ("origin_ns", origin_ns)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(  # noqa: TRY004 (the engine's bad-input contract is ValueError)
                f"{name} must be an integer number of nanoseconds, got {value!r}"
            )
    if bucket_ns <= 0:
        raise ValueError(f"bucket_ns must be > 0, got {bucket_ns}")
    return int(bucket_ns), int(origin_ns)


def _as_ts(ts: Any) -> np.ndarray:
    arr = np.asarray(ts)
    if np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[ns]").view(np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"ts must be a 1-D array of int64 nanoseconds, got {arr.dtype} with shape {arr.shape}"
        )
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if _first_unsorted(arr) >= 0:
        raise _unsorted_error("ts", arr)
    return arr


def _as_column(name: str, values: Any, n: int, *, nonnegative: bool) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with the length of ts ({n}), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr) | ((arr < 0.0) if nonnegative else False))
    if bad.size:
        j = int(bad[0])
        rule = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"{name} must be {rule}: {name}[{j}] = {arr[j].item()!r}")
    return arr


def _bars(columns: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    return dict(zip(_OHLCV, columns))


def resample_ohlcv(
    ts: Any, price: Any, size: Any, bucket_ns: int, *, origin_ns: int = 0
) -> dict[str, np.ndarray]:
    """Ticks to OHLCV bars of `bucket_ns`, aligned on `origin_ns` (default the Unix epoch).

    Returns the ``ohlcv`` mapping (``ts`` = bucket start, int64 ns). Buckets without a tick
    are skipped rather than filled, so the bars are the trades that happened; see
    :func:`resample_ohlcv_nb`. `ts` sorted, prices and sizes finite and >= 0.
    """
    bucket_ns, origin_ns = _check_bucket(bucket_ns, origin_ns)
    ts_a = _as_ts(ts)
    n = ts_a.shape[0]
    price_a = _as_column("price", price, n, nonnegative=True)
    size_a = _as_column("size", size, n, nonnegative=True)
    return _bars(resample_ohlcv_nb(ts_a, price_a, size_a, bucket_ns, origin_ns))


def resample_bars(
    ohlcv: Mapping[str, Any], bucket_ns: int, *, origin_ns: int = 0
) -> dict[str, np.ndarray]:
    """OHLCV bars to larger bars of `bucket_ns` (say 1-minute bars to 1-hour bars); a bar
    goes to the bucket its start time falls in. See :func:`resample_bars_nb`."""
    bucket_ns, origin_ns = _check_bucket(bucket_ns, origin_ns)
    missing = [k for k in _OHLCV if k not in ohlcv]
    if missing:
        raise ValueError(f"ohlcv is missing {missing}, got keys {sorted(ohlcv)}")
    ts_a = _as_ts(ohlcv["ts"])
    n = ts_a.shape[0]
    cols = [_as_column(k, ohlcv[k], n, nonnegative=True) for k in _OHLCV[1:]]
    open_, high, low, close, volume = cols
    return _bars(resample_bars_nb(ts_a, open_, high, low, close, volume, bucket_ns, origin_ns))
