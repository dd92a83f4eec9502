"""Feature matrices for research models: a catalogue of feature names, and
:func:`feature_matrix`, which turns bars into the columns of a matrix.

A feature is named case-insensitively, with an optional window after an underscore:
``RSI`` (14), ``RSI_7``, ``SMA_50``, ``returns_5``. A name may give several columns (``MACD``
gives ``macd``, ``macd_signal``, ``macd_hist``).

The matrix computes through the one-pass kernels of ``engine._features_nb`` (equal to the
references and to TA-Lib within float rounding); a column whose input holds a NaN or an infinity
comes from the reference kernels of ``engine._features_reference_nb`` and ``engine.indicators``,
whose missing-value semantics it keeps.
"""

from __future__ import annotations

import mmap
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import numpy as np

from engine._features_nb import (
    BANDS,
    ZSCORE,
    atr_into_nb,
    ema_into_nb,
    forward_return_into_nb,
    high_low_into_nb,
    macd_into_nb,
    moments_into_nb,
    obv_into_nb,
    ratio_into_nb,
    returns_std_into_nb,
    rocp_into_nb,
    rsi_into_nb,
    sma_into_nb,
    utc_hour_into_nb,
)
from engine._features_reference_nb import (
    obv_1d_nb,
    rocp_1d_nb,
    rolling_max_1d_nb,
    rolling_min_1d_nb,
    rolling_zscore_1d_nb,
    stochf_k_1d_nb,
    willr_1d_nb,
)
from engine.indicators import (
    _rolling_mean_std_1d_nb,
    atr_1d_nb,
    bollinger_1d_nb,
    ema_1d_nb,
    macd_1d_nb,
    rsi_1d_nb,
    sma_1d_nb,
    wma_1d_nb,
)

__all__ = [
    "FEATURES",
    "FeatureSpec",
    "UnknownFeatures",
    "feature_matrix",
    "parse_features",
]

# --------------------------------------------------------------------------------------------
# The catalogue

Bars = Mapping[str, np.ndarray]
_NONE = np.empty(0)  # an output a fused kernel is not asked for
New = Callable[[], np.ndarray]  # a fresh float64 array as long as the bars
Compute = Callable[[Bars, int, New], list[np.ndarray]]


@dataclass(frozen=True)
class Feature:
    """A feature name: its default window (0: takes none), its columns and their computation."""

    name: str
    window: int
    columns: Callable[[int], list[str]]
    compute: Compute
    description: str


@dataclass(frozen=True)
class FeatureSpec:
    """One requested feature, resolved: ``RSI_7`` is ``rsi`` with window 7."""

    requested: str
    feature: Feature
    window: int

    @property
    def columns(self) -> list[str]:
        return self.feature.columns(self.window)

    @property
    def fresh(self) -> int:
        """Fresh arrays its computation takes (one a column)."""
        if self.feature.window == 0 and self.feature.name in (
            "open",
            "high",
            "low",
            "close",
            "volume",
        ):
            return 0
        return len(self.columns)

    def compute(self, bars: Bars, new: New | None = None) -> list[np.ndarray]:
        """The columns; ``new`` gives the arrays they are written to (``np.empty`` if None)."""
        if new is None:
            n = len(bars["close"])
            new = lambda: np.empty(n)
        return self.feature.compute(bars, self.window, new)

    @property
    def lookback(self) -> int:
        """Bars before the first full value (recursive averages get three windows to settle)."""
        return max(self.window, 26 if self.feature.name == "macd" else 0) * 3


class UnknownFeatures(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__(f"unknown features: {', '.join(names)}; known: {', '.join(FEATURES)}")
        self.names = names


def _raw(column: str) -> Feature:
    return Feature(
        column, 0, lambda w: [column], lambda b, w, new: [b[column]], f"the bar's {column}"
    )


def _windowed(
    name: str, default: int, fn: Callable[[Bars, int, New], np.ndarray], doc: str
) -> Feature:
    return Feature(name, default, lambda w: [f"{name}_{w}"], lambda b, w, new: [fn(b, w, new)], doc)


def _rocp(close: np.ndarray, period: int, new: New) -> np.ndarray:
    out = new()
    rocp_into_nb(close, period, out)
    return out


def _volatility(b: Bars, w: int, new: New) -> np.ndarray:
    out = new()
    if returns_std_into_nb(b["close"], w, 1, out):
        return out
    reference: np.ndarray = _rolling_mean_std_1d_nb(rocp_1d_nb(b["close"], 1), w, 1)[1]
    return reference


def _fast(
    kernel: Callable[..., bool], reference: Callable[..., np.ndarray], new: New, *args: Any
) -> np.ndarray:
    """``kernel`` (a one-pass kernel of ``engine._features_nb``) into a ``new`` array; the
    ``reference`` kernel's answer where it declines (a NaN or an infinity in the input)."""
    out = new()
    if kernel(*args, out):
        return out
    return reference(*args)


def _macd(close: np.ndarray, new: New) -> list[np.ndarray]:
    lines = [new() for _ in range(3)]
    if macd_into_nb(close, 12, 26, 9, *lines):
        return lines
    return list(macd_1d_nb(close, 12, 26, 9))


def _log_returns(close: np.ndarray, new: New) -> np.ndarray:
    out = new()
    ratio_into_nb(close, out)
    np.log(out, out=out)
    return out


def _bollinger(b: Bars, w: int, new: New) -> list[np.ndarray]:
    close = b["close"]
    bands = [new() for _ in range(3)]
    if moments_into_nb(close, w, 0, BANDS, 2.0, *bands):
        return bands
    return list(bollinger_1d_nb(close, w, 2.0))


def _volume_z(b: Bars, w: int, new: New) -> np.ndarray:
    volume = b["volume"]
    out = new()
    if moments_into_nb(volume, w, 0, ZSCORE, 0.0, out, _NONE, _NONE):
        return out
    reference: np.ndarray = rolling_zscore_1d_nb(volume, w)
    return reference


def _willr_stoch(b: Bars, window: int, names: set[str], new: New) -> dict[str, np.ndarray]:
    """%R and %K of one window from one pass over the highs and lows (either, or both)."""
    high, low, close = b["high"], b["low"], b["close"]
    wanted = {name: new() if name in names else _NONE for name in ("willr", "stoch")}
    if not high_low_into_nb(high, low, close, window, wanted["willr"], wanted["stoch"]):
        wanted["willr"] = willr_1d_nb(high, low, close, window) if "willr" in names else _NONE
        wanted["stoch"] = stochf_k_1d_nb(high, low, close, window) if "stoch" in names else _NONE
    return {f"{name}_{window}": wanted[name] for name in names}


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        _raw("open"),
        _raw("high"),
        _raw("low"),
        _raw("close"),
        _raw("volume"),
        _windowed("returns", 1, lambda b, w, new: _rocp(b["close"], w, new), "w-bar return (ROCP)"),
        Feature(
            "log_returns",
            0,
            lambda w: ["log_returns"],
            lambda b, w, new: [_log_returns(b["close"], new)],
            "1-bar log return",
        ),
        _windowed(
            "rsi",
            14,
            lambda b, w, new: _fast(rsi_into_nb, rsi_1d_nb, new, b["close"], w),
            "Wilder's RSI",
        ),
        Feature(
            "macd",
            0,
            lambda w: ["macd", "macd_signal", "macd_hist"],
            lambda b, w, new: _macd(b["close"], new),
            "MACD 12/26/9: line, signal, histogram",
        ),
        Feature(
            "bb",
            20,
            lambda w: [f"bb_middle_{w}", f"bb_upper_{w}", f"bb_lower_{w}"],
            _bollinger,
            "Bollinger bands, 2 deviations",
        ),
        _windowed(
            "sma",
            20,
            lambda b, w, new: _fast(sma_into_nb, sma_1d_nb, new, b["close"], w),
            "simple moving average",
        ),
        _windowed(
            "ema",
            20,
            lambda b, w, new: _fast(ema_into_nb, ema_1d_nb, new, b["close"], w),
            "exponential moving average",
        ),
        _windowed("wma", 20, lambda b, w, new: wma_1d_nb(b["close"], w), "weighted moving average"),
        _windowed(
            "atr",
            14,
            lambda b, w, new: _fast(
                atr_into_nb, atr_1d_nb, new, b["high"], b["low"], b["close"], w
            ),
            "average true range",
        ),
        _windowed(
            "willr",
            14,
            lambda b, w, new: _willr_stoch(b, w, {"willr"}, new)[f"willr_{w}"],
            "Williams' %R",
        ),
        _windowed(
            "stoch",
            14,
            lambda b, w, new: _willr_stoch(b, w, {"stoch"}, new)[f"stoch_{w}"],
            "fast stochastic %K",
        ),
        Feature(
            "obv",
            0,
            lambda w: ["obv"],
            lambda b, w, new: [_fast(obv_into_nb, obv_1d_nb, new, b["close"], b["volume"])],
            "on-balance volume",
        ),
        _windowed("volatility", 20, _volatility, "rolling deviation of 1-bar returns"),
        _windowed("volume_z", 20, _volume_z, "volume z-score"),
        _windowed("high_n", 20, lambda b, w, new: rolling_max_1d_nb(b["high"], w), "highest high"),
        _windowed("low_n", 20, lambda b, w, new: rolling_min_1d_nb(b["low"], w), "lowest low"),
    )
}
ALIASES = {"bollinger": "bb", "bbands": "bb", "return": "returns", "ret": "returns"}
_NAME = re.compile(r"^([a-z][a-z_]*?)(?:_(\d{1,4}))?$")
MAX_WINDOW = 5000


def parse_features(names: Sequence[str]) -> list[FeatureSpec]:
    """Requested names, resolved in order (a repeated column is kept once); every unknown
    name at once in :class:`UnknownFeatures`."""
    specs: list[FeatureSpec] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for requested in names:
        spec = _resolve(requested)
        if spec is None:
            unknown.append(requested)
            continue
        key = ",".join(spec.columns)
        if key not in seen:
            seen.add(key)
            specs.append(spec)
    if unknown:
        raise UnknownFeatures(unknown)
    return specs


def _resolve(requested: str) -> FeatureSpec | None:
    text = requested.strip().lower()
    whole = FEATURES.get(ALIASES.get(text, text))
    if whole is not None:  # a name that itself holds an underscore (log_returns, volume_z)
        return FeatureSpec(requested, whole, whole.window)
    match = _NAME.match(text)
    if match is None:
        return None
    base, digits = match.group(1), match.group(2)
    feature = FEATURES.get(ALIASES.get(base, base))
    if feature is None:
        return None
    if digits is None:
        return FeatureSpec(requested, feature, feature.window)
    window = int(digits)
    if feature.window == 0 or not 1 <= window <= MAX_WINDOW:
        return None
    if (
        feature.name in ("rsi", "bb", "atr", "willr", "stoch", "volatility", "volume_z")
        and window < 2
    ):
        return None
    return FeatureSpec(requested, feature, window)


def _columns(spec: FeatureSpec, bars: Bars, new: New) -> dict[str, np.ndarray]:
    return dict(zip(spec.columns, spec.compute(bars, new), strict=True))


def _target(close: np.ndarray, horizon: int, new: New) -> dict[str, np.ndarray]:
    out = new()
    forward_return_into_nb(close, horizon, out)
    return {"target": out}


@cache
def _workers(count: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(count, 1), thread_name_prefix="feature-matrix")


class _Blocks:
    """Memory for the columns of matrices: one anonymous mapping a matrix, its columns rows
    of it, and the mapping kept for the next matrix once no column of this one is left.

    Fresh memory is zeroed by the kernel page by page as it is first written: for the 23
    columns of a million bars that cost 20-40 ms of system time, more than computing the
    features. A mapping used before costs nothing. One mapping is kept (the largest, up to
    :attr:`KEEP` bytes: a million bars of 32 columns), so an idle hub or worker holds at most
    that; a larger matrix pays for its fresh pages."""

    KEEP = 256 << 20

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: mmap.mmap | None = None

    def rows(self, count: int, n: int) -> list[np.ndarray]:
        size = max(count * n * 8, 8)
        with self._lock:
            block, self._kept = self._kept, None
        if block is not None and len(block) < size:
            self._keep(block)
            block = None
        if block is None:
            block = mmap.mmap(-1, size)
            if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux: 2 MB pages, fewer faults
                block.madvise(mmap.MADV_HUGEPAGE)
        flat = np.frombuffer(block, dtype=np.float64, count=count * n)
        # Every row is a view of `flat`: it dies with the matrix's last column.
        weakref.finalize(flat, self._keep, block).atexit = False
        return list(flat.reshape(count, n))

    def _keep(self, block: mmap.mmap) -> None:
        """Keep ``block`` if it is the largest (one dropped is unmapped once the dying array's
        buffer lets go of it: closing it here would fail, the export is not released yet)."""
        if len(block) > self.KEEP:
            return
        with self._lock:
            if self._kept is None or len(block) > len(self._kept):
                self._kept = block


_BLOCKS = _Blocks()

# Rough cost of a feature's columns, in ms per million bars: the dearest start first, so two
# threads end together.
_COST = {"bb": 7, "extremes": 7, "volatility": 5, "macd": 5, "volume_z": 4, "wma": 4, "atr": 3}


def feature_matrix(
    bars: Bars, specs: Sequence[FeatureSpec], horizon: int, *, threads: int = 1
) -> dict[str, np.ndarray]:
    """The matrix's columns for ``bars`` (``ts`` int64 ns and float64 OHLCV): ``ts``, ``hour``
    (UTC), each feature's columns, and ``target``, the forward return over ``horizon`` bars.
    ``threads`` computes features side by side (the kernels release the GIL).

    The output arrays are rows of one block (:class:`_Blocks`), handed to the kernels: a
    worker thread's own allocations came from its malloc arena, which gives a million floats
    back to the kernel on free, so every call paid for fresh zeroed pages again."""
    floats = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in bars.items() if k != "ts"}
    ts = np.ascontiguousarray(bars["ts"], dtype=np.int64)
    n = ts.shape[0]
    fresh = _BLOCKS.rows(1 + sum(spec.fresh for spec in specs), n)

    def new() -> np.ndarray:
        return fresh.pop() if fresh else np.empty(n)

    tasks: list[tuple[int, Callable[[], dict[str, np.ndarray]]]] = [
        (1, partial(_target, floats["close"], horizon, new))
    ]
    extremes: dict[int, set[str]] = {}  # %R and %K of a window share one pass
    for spec in specs:
        if spec.feature.name in ("willr", "stoch"):
            names = extremes.setdefault(spec.window, set())
            if not names:
                work = partial(_willr_stoch, floats, spec.window, names, new)
                tasks.append((_COST["extremes"], work))
            names.add(spec.feature.name)
        else:
            tasks.append((_COST.get(spec.feature.name, 2), partial(_columns, spec, floats, new)))
    tasks.sort(key=lambda task: -task[0])  # stable: equal costs keep the request's order
    hour = np.empty(n, dtype=np.int8)

    def hours() -> dict[str, np.ndarray]:
        utc_hour_into_nb(ts, hour)
        return {}

    pending: Iterator[Callable[[], dict[str, np.ndarray]]] = iter(
        [*(work for _, work in tasks), hours]
    )
    lock = threading.Lock()

    def drain() -> dict[str, np.ndarray]:
        """Tasks, the next one free, until none is left."""
        done: dict[str, np.ndarray] = {}
        while True:
            with lock:
                work = next(pending, None)
            if work is None:
                return done
            done.update(work())

    # The calling thread works too, beside threads - 1 workers that stay for the next matrix.
    helpers = [_workers(threads - 1).submit(drain) for _ in range(threads - 1)]
    results = drain()
    for helper in helpers:
        results.update(helper.result())
    out: dict[str, np.ndarray] = {"ts": ts, "hour": hour}
    for spec in specs:
        for column in spec.columns:
            out[column] = np.asarray(results[column], dtype=np.float64)
    out["target"] = results["target"]
    return out
