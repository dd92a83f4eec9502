"""The ``threshold`` strategy's sweep: every combination's metrics from the one prediction
series, with no signal array per combination.

A combination's signals follow from three numbers and an hours set (``engine.strategies``):
outside its hours a bar exits (long and short), else a prediction at or above ``high`` (the
larger of the entry threshold and the top-percent cut-off) is bullish and one at or below the
exit threshold bearish. ``sweep_threshold_nb`` computes each bar's flags in the simulator's
loop, in parallel over combinations, so nothing of size bars x combinations is stored; what
combinations share is computed once: the hour of each bar, the bars of each hours set with
their predictions side by side (``allowed_bars_nb``), the cut-offs from one order-statistics
pass (``order_statistics_nb``, numpy's quantiles exactly), and one run per distinct (high,
exit, hours), the runs ordered so that every thread gets about the same work.

While flat, only an allowed bar can make an order (an exit has nothing to close), so a flat
stretch is a scan of that set's predictions for the first bar whose flags open a position:
the bars between are counted, not simulated. The other bars go through the simulator's own
per-bar rule (``_bar_events_nb``, the metrics fold), so each row equals ``run_bars_nb`` on that
combination's ``threshold_signals_nb`` from the initial state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.metrics import N_METRICS, acc_bar_nb, acc_count_bars_nb, metrics_vector_nb
from engine.simulate import (
    Fill,
    SignalFlag,
    SimState,
    _bar_events_nb,
    _config_nb,
    _decide_nb,
    initial_state_nb,
    open_pnl_nb,
)

__all__ = [
    "allowed_bars_nb",
    "finite_range_nb",
    "hour_of_day_nb",
    "order_statistics_nb",
    "sweep_threshold",
    "sweep_threshold_nb",
]

HOUR_NS = 3_600_000_000_000
ALL_HOURS = (1 << 24) - 1
_HOUR_U = np.uint64(HOUR_NS)
_DAY_HOURS_U = np.uint64(24)

# The flags a bar can carry (threshold_signals_nb), by category.
_NONE = 0
_OUT = SignalFlag.LongExit | SignalFlag.ShortExit
_BULL = SignalFlag.LongEntry | SignalFlag.ShortExit
_BEAR = SignalFlag.LongExit | SignalFlag.ShortEntry


@njit(cache=True, nogil=True)
def hour_of_day_nb(ts: np.ndarray) -> np.ndarray:
    """The UTC hour of each ``ts`` (int64 ns); equals ``(ts // HOUR_NS) % 24``."""
    out = np.empty(ts.shape[0], dtype=np.uint8)
    for i in range(ts.shape[0]):
        t = ts[i]
        if t >= 0:  # unsigned: a multiply for the division by a constant, no sign fix-up
            out[i] = (np.uint64(t) // _HOUR_U) % _DAY_HOURS_U
        else:
            out[i] = (t // HOUR_NS) % 24
    return out


@njit(cache=True, nogil=True)
def allowed_bars_nb(
    hour: np.ndarray, pred: np.ndarray, sets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bars whose hour is in each set (``sets[s]``: bit h for hour h), and their
    predictions: set s holds ``index[starts[s]:starts[s + 1]]`` and ``values[...]``. Serial: a
    few milliseconds, less than waking a second thread costs on a busy machine."""
    counts = np.zeros(sets.shape[0], dtype=np.int64)
    for s in range(sets.shape[0]):
        bits = sets[s]
        count = 0
        for i in range(hour.shape[0]):
            count += (bits >> hour[i]) & 1
        counts[s] = count
    starts = np.zeros(sets.shape[0] + 1, dtype=np.int64)
    for s in range(sets.shape[0]):
        starts[s + 1] = starts[s] + counts[s]
    index = np.empty(starts[-1], dtype=np.int64)
    values = np.empty(starts[-1], dtype=np.float64)
    for s in range(sets.shape[0]):
        bits = sets[s]
        at = starts[s]
        for i in range(hour.shape[0]):
            if (bits >> hour[i]) & 1:
                index[at] = i
                values[at] = pred[i]
                at += 1
    return starts, index, values


@njit(cache=True, nogil=True, inline="always")
def _category_nb(p: float, allowed: bool, high: float, exit_: float) -> int:
    """Bar flags by ``threshold_signals_nb``'s rule."""
    if not allowed:
        return _OUT
    if p >= high:
        return _BULL
    if p <= exit_:
        return _BEAR
    return _NONE


@njit(cache=True, nogil=True)
def _threshold_row_nb(
    pred: np.ndarray,
    hour: np.ndarray,
    bits: int,
    high: float,
    exit_: float,
    index: np.ndarray,
    values: np.ndarray,
    open_: np.ndarray,
    high_px: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg_array: np.ndarray,
    out: np.ndarray,
) -> None:
    """One combination: ``run_bars_nb`` (source Array, no check, no outputs) on its
    ``threshold_signals_nb`` from the initial state, its metrics into ``out``."""
    cfg = _config_nb(cfg_array)
    n = close.shape[0]
    has_hours = hours_ok.shape[0] > 0
    has_stops = not (np.isnan(cfg.stop_loss) and np.isnan(cfg.take_profit))
    watch_position = has_stops or has_hours or cfg.max_bars > 0
    read_ohl = cfg.fill == Fill.NextOpen or has_stops
    # Outside a forced bar, a bar whose flags leave the side held as it is changes nothing but
    # the fold (_signal_orders_nb: entry_ok only takes entries away, and max_bars and the
    # hours force every bar of a position they watch).
    acts = np.zeros((3, 16), dtype=np.bool_)
    for side in range(-1, 2):
        for flags in (_OUT, _BULL, _BEAR):
            acts[side + 1, flags] = _decide_nb(flags, side, cfg.direction, True)[0] != side
    bull_opens = acts[1, _BULL]
    bear_opens = acts[1, _BEAR]
    scan_flat = not acts[1, _OUT]
    state = initial_state_nb(cfg.initial_capital)
    cash = state.cash
    position = state.position
    pending = state.pending_reason
    acc = state.acc
    m = index.shape[0]
    k = 0  # the next allowed bar not scanned yet
    i = 0
    while i < n:
        forced = pending != 0 or (watch_position and position != 0.0)
        if scan_flat and not forced and position == 0.0:
            # A flat stretch: up to the first allowed bar whose flags open a position.
            while k < m and index[k] < i:
                k += 1
            while k < m:
                p = values[k]
                if p >= high:
                    if bull_opens:
                        break
                elif p <= exit_ and bear_opens:
                    break
                k += 1
            j = index[k] if k < m else n
            if j > i:  # as _quiet_bars_nb folds flat bars
                equity = cash + position * close[i]
                if equity == acc.prev_equity:
                    acc = acc_count_bars_nb(acc, j - i)
                elif not np.isnan(equity):
                    acc = acc_count_bars_nb(acc_bar_nb(acc, equity, False), j - i - 1)
                else:
                    for _ in range(i, j):
                        acc = acc_bar_nb(acc, equity, False)
            i = j
            if i >= n:
                break
        c = close[i]
        flags = _category_nb(pred[i], ((bits >> hour[i]) & 1) != 0, high, exit_)
        side = 1 if position > 0.0 else (-1 if position < 0.0 else 0)
        if forced or acts[side + 1, flags]:
            # run_bars_nb's bar by the general rule.
            entry_ok = hours_ok[i] if has_hours else True
            o = h = lo = c
            if read_ohl:
                o = open_[i]
                h = high_px[i]
                lo = low[i]
            state = SimState(
                i, cash, position, state.entry_index, state.entry_ts, state.entry_price,
                state.entry_ref, state.entry_fees, state.pending_target, pending,
                state.trade_id, acc,
            )  # fmt: skip
            state, _, _, _ = _bar_events_nb(cfg, state, flags, o, h, lo, c, ts[i], entry_ok)
            cash = state.cash
            position = state.position
            pending = state.pending_reason
            acc = state.acc
        equity = cash + position * c
        if position == 0.0 and equity == acc.prev_equity:
            acc = acc_count_bars_nb(acc, 1)
        else:
            acc = acc_bar_nb(acc, equity, position != 0.0)
        i += 1
    end = SimState(
        n, cash, position, state.entry_index, state.entry_ts, state.entry_price, state.entry_ref,
        state.entry_fees, state.pending_target, pending, state.trade_id, acc,
    )  # fmt: skip
    unrealized = open_pnl_nb(end, cfg, close[n - 1]) if n > 0 else 0.0
    ts_first = ts[0] if n > 0 else 0
    ts_last = ts[n - 1] if n > 0 else 0
    out[:] = metrics_vector_nb(acc, cfg.initial_capital, ts_first, ts_last, unrealized)


@njit(cache=True, nogil=True, parallel=True)
def sweep_threshold_nb(
    pred: np.ndarray,
    hour: np.ndarray,
    bits: np.ndarray,
    high: np.ndarray,
    exit_: np.ndarray,
    hours_set: np.ndarray,
    starts: np.ndarray,
    index: np.ndarray,
    values: np.ndarray,
    open_: np.ndarray,
    high_px: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ts: np.ndarray,
    hours_ok: np.ndarray,
    cfg_array: np.ndarray,
) -> np.ndarray:
    """Metrics of the ``threshold`` signals of combination k (hours ``bits[k]``, bullish at or
    above ``high[k]``, bearish at or below ``exit_[k]``) for every k, in parallel over k; row
    k equals ``run_bars_nb`` on ``threshold_signals_nb`` of those from the initial state.
    ``hour`` is ``hour_of_day_nb(ts)``; ``hours_set[k]`` names k's set in ``allowed_bars_nb``'s
    ``starts``, ``index`` and ``values``."""
    out = np.empty((bits.shape[0], N_METRICS))
    for k in prange(bits.shape[0]):
        s = hours_set[k]
        a = starts[s]
        b = starts[s + 1]
        _threshold_row_nb(
            pred, hour, bits[k], high[k], exit_[k], index[a:b], values[a:b], open_, high_px,
            low, close, ts, hours_ok, cfg_array, out[k],
        )  # fmt: skip
    return out


_BUCKETS = 1 << 16


@njit(cache=True, nogil=True)
def finite_range_nb(values: np.ndarray) -> tuple[int, float, float]:
    """How many ``values`` are finite, and the least and the greatest of them."""
    n = 0
    lo = np.inf
    hi = -np.inf
    for x in values:
        if np.isfinite(x):
            n += 1
            lo = min(lo, x)
            hi = max(hi, x)
    return n, lo, hi


@njit(cache=True, nogil=True, inline="always")
def _bucket_nb(x: float, lo: float, scale: float, top: int) -> int:
    """A bucket no smaller for a larger ``x``: rounding keeps the order of x - lo and of its
    product with ``scale``."""
    if scale == 0.0:
        return 0
    return min(int((x - lo) * scale), top)


@njit(cache=True, nogil=True)
def order_statistics_nb(values: np.ndarray, lo: float, hi: float, ranks: np.ndarray) -> np.ndarray:
    """The finite ``values`` at each of ``ranks`` once sorted (``lo`` and ``hi`` their least
    and greatest; ``finite_range_nb``); equals ``np.sort(finite)[ranks]``. The values go into
    buckets by a monotone function of the value, so the bucket of each rank is known from
    the counts, and only those buckets are gathered and sorted."""
    scale = _BUCKETS / (hi - lo) if hi > lo else 0.0
    if not np.isfinite(scale):  # a range too narrow to divide by: one bucket, sorted whole
        scale = 0.0
    # A range too wide to subtract has scale 0 too (a finite x - lo is at most hi - lo).
    top = _BUCKETS - 1
    counts = np.zeros(_BUCKETS + 1, dtype=np.int64)
    for x in values:
        if np.isfinite(x):
            counts[_bucket_nb(x, lo, scale, top) + 1] += 1
    for b in range(_BUCKETS):
        counts[b + 1] += counts[b]  # counts[b]: values in the buckets below b
    bucket = np.searchsorted(counts, ranks, side="right") - 1
    wanted = np.full(_BUCKETS, -1, dtype=np.int64)  # where each wanted bucket's values go
    size = 0
    for b in bucket:
        if wanted[b] < 0:
            wanted[b] = size
            size += counts[b + 1] - counts[b]
    gathered = np.empty(size)
    fill = wanted.copy()
    for x in values:
        if np.isfinite(x):
            b = _bucket_nb(x, lo, scale, top)
            if wanted[b] >= 0:
                gathered[fill[b]] = x
                fill[b] += 1
    out = np.empty(ranks.shape[0])
    for k in range(ranks.shape[0]):
        b = bucket[k]
        start = wanted[b]
        part = np.sort(gathered[start : start + counts[b + 1] - counts[b]])
        out[k] = part[ranks[k] - counts[b]]
    return out


def _cutoffs(pred: np.ndarray, tops: Sequence[float]) -> dict[float, float]:
    """The top-percent cut-off of each ``top_pct``, as ``engine.strategies`` computes it:
    ``np.quantile`` of the finite predictions at 1 - top_pct / 100, -inf for 100 percent or
    none finite.

    For float64 predictions the quantiles' order statistics come from one
    ``order_statistics_nb`` and are blended as numpy's linear method does (``_lerp``); the
    tests hold each to ``np.quantile``."""
    out = dict.fromkeys(tops, -np.inf)
    below = sorted({t for t in tops if t < 100.0})
    if not below:
        return out
    if pred.dtype != np.float64 or not np.isfinite(1.0 - np.array(below) / 100.0).all():
        finite = pred[np.isfinite(pred)]
        if finite.size:
            out.update({t: float(np.quantile(finite, 1.0 - t / 100.0)) for t in below})
        return out
    n, lo, hi = finite_range_nb(pred)
    if n == 0:
        return out
    last = n - 1
    virtual = [last * (1.0 - t / 100.0) for t in below]
    # numpy's _get_indexes: a virtual index at or past the last takes the last value twice.
    prev = [last if v >= last else math.floor(v) for v in virtual]
    nxt = [last if v >= last else p + 1 for v, p in zip(virtual, prev, strict=True)]
    ranks = np.array(prev + nxt, dtype=np.int64)
    values = order_statistics_nb(pred, lo, hi, ranks)
    for k, t in enumerate(below):
        a = np.float64(values[k])
        b = np.float64(values[len(below) + k])
        # numpy's gamma is taken from the index it uses (-1 for the last), then _lerp.
        gamma = np.float64(virtual[k]) - np.float64(-1 if virtual[k] >= last else prev[k])
        diff = b - a
        value = b - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma
        out[t] = float(value)
    return out


def _balanced(
    keys: list[tuple[float, float, int]], sets: list[int], starts: np.ndarray, pred: np.ndarray
) -> list[int]:
    """The runs in an order that gives each thread's contiguous share of the parallel loop
    about the same work (in grid order the costliest runs, the lowest entry levels, come
    first and would all go to one thread): the costliest first, each to the least loaded
    thread with room. A run's cost is estimated from the allowed bars it scans and the
    fraction of a sample of predictions at or above its entry level, where its trades are.
    The order changes no result."""
    sample = pred[:: max(1, pred.shape[0] // 4096)]
    sample = np.sort(sample[np.isfinite(sample)])
    cost = []
    for high, _, bits in keys:
        allowed = float(starts[sets.index(bits) + 1] - starts[sets.index(bits)])
        above = 1.0 - np.searchsorted(sample, high) / max(sample.shape[0], 1)
        cost.append(allowed * (0.05 + above))
    threads = max(1, min(numba.get_num_threads(), len(keys)))
    # numba's static schedule: len // threads iterations each, the last thread the rest.
    room = [len(keys) // threads] * (threads - 1) + [
        len(keys) - len(keys) // threads * (threads - 1)
    ]
    shares: list[list[int]] = [[] for _ in range(threads)]
    loads = [0.0] * threads
    for r in sorted(range(len(keys)), key=lambda r: -cost[r]):
        # The costliest run left to the least loaded thread with room.
        t = min((t for t in range(threads) if len(shares[t]) < room[t]), key=lambda t: loads[t])
        shares[t].append(r)
        loads[t] += cost[r]
    return [r for part in shares for r in part]


def _bits(hours: Sequence[int] | None) -> int:
    return ALL_HOURS if hours is None else sum(1 << h for h in set(hours))


def sweep_threshold(
    bars: Mapping[str, np.ndarray],
    combos: Sequence[Mapping[str, Any]],
    cfg_array: np.ndarray,
    hours_ok: np.ndarray,
) -> np.ndarray:
    """The ``threshold`` strategy's sweep (``BarStrategy.sweep``): one row of metrics per
    combination, each equal to its own backtest."""
    close = bars["close"]
    out = np.empty((len(combos), N_METRICS))
    for column in dict.fromkeys(c["column"] for c in combos):
        if column not in bars or bars[column].dtype.kind != "f":
            raise ValueError(
                f"params['column'] of threshold must name a numeric ohlcv column, got "
                f"{column!r}; ohlcv has {sorted(bars)}"
            )
        rows = [k for k, c in enumerate(combos) if c["column"] == column]
        pred = np.ascontiguousarray(bars[column], dtype=np.float64)
        cutoffs = _cutoffs(bars[column], [float(combos[k]["top_pct"]) for k in rows])
        # Combinations with the same signals run once.
        runs: dict[tuple[float, float, int], int] = {}
        which = []
        for k in rows:
            c = combos[k]
            high = float(np.maximum(float(c["entry_threshold"]), cutoffs[float(c["top_pct"])]))
            key = (high, float(c["exit_threshold"]), _bits(c["allowed_hours"]))
            which.append(runs.setdefault(key, len(runs)))
        sets = list(dict.fromkeys(key[2] for key in runs))
        hour = hour_of_day_nb(bars["ts"])
        starts, index, values = allowed_bars_nb(hour, pred, np.array(sets, dtype=np.int64))
        order = _balanced(list(runs), sets, starts, pred)
        keys = [list(runs)[r] for r in order]
        which = [order.index(r) for r in which]
        matrix = sweep_threshold_nb(
            pred, hour, np.array([key[2] for key in keys], dtype=np.int64),
            np.array([key[0] for key in keys]), np.array([key[1] for key in keys]),
            np.array([sets.index(key[2]) for key in keys], dtype=np.int64), starts, index,
            values, bars.get("open", close), bars.get("high", close), bars.get("low", close),
            close, bars["ts"], hours_ok, cfg_array,
        )  # fmt: skip
        out[rows] = matrix[which]
    return out
