"""Bar strategies fed one closed bar at a time, deciding what their batch signals decide.

A worker keeps hundreds of these open, one per running strategy, so a bar costs one call into a
small kernel per strategy that updates two flat arrays in place (integers, and floats with the
ring buffers after them) and returns the bar's :data:`~engine.simulate.SignalFlag` bits. Passing
the indicators' NamedTuple states between Python and numba instead costs a few microseconds per
indicator per bar; two arrays cost a few hundred nanoseconds. Inside, the kernels run the
``engine.indicators`` update kernels that the batch kernels are held bit-identical to, and the
rules of ``engine.strategies`` for one bar (:func:`_cross_nb`, :func:`_level_cross_nb`), so a live
feed signals exactly what a backtest over the same bars signals, ties and NaNs included.

A snapshot (:meth:`LiveSignals.state`) names every slot that changes, grouped by indicator, with
NaN, infinities and -0.0 written as strings: JSON has no such numbers (orjson writes NaN as
``null``), and a JSONB column loses the sign of a zero. Slots that the parameters set (windows,
``nstd``, RSI levels) are left out and rebuilt from the parameters on restore.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.indicators import (
    BollingerState,
    EmaState,
    MomentsState,
    RsiState,
    SmaState,
    bollinger_init_nb,
    bollinger_update_nb,
    ema_init_nb,
    ema_update_nb,
    rsi_init_nb,
    rsi_update_nb,
    sma_init_nb,
    sma_update_nb,
)
from engine.sim_options import check_params
from engine.simulate import SignalFlag
from engine.strategies import BAR_STRATEGIES

__all__ = ["LIVE_STRATEGIES", "LiveSignals"]

_LE = SignalFlag.LongEntry
_LX = SignalFlag.LongExit
_SE = SignalFlag.ShortEntry
_SX = SignalFlag.ShortExit
_BULL = _LE | _SX  # as in engine.strategies
_BEAR = _LX | _SE

STATE_VERSION = 1

# Why a bar strategy that is not live cannot be.
_NOT_LIVE = {
    "threshold": (
        "it reads a prediction column (params['column']) that bars built from ticks do not "
        "carry, and its top_pct cut-off ranks the whole run's predictions, which looks ahead"
    ),
}


# ---------------------------------------------------------------------------------------------
# One bar of the flag rules


@njit(cache=True, nogil=True)
def _cross_nb(a0: float, b0: float, a1: float, b1: float) -> int:
    """One bar of ``strategies.cross_signals_into_nb`` (NaN compares false, as there)."""
    if a1 > b1 and a0 <= b0:
        return _BULL
    if a1 < b1 and a0 >= b0:
        return _BEAR
    return 0


@njit(cache=True, nogil=True)
def _level_cross_nb(x0: float, x1: float, l0: float, l1: float, below: int, above: int) -> int:
    """One bar of ``strategies.level_cross_signals_nb``."""
    if x1 < l1 and x0 >= l0:
        return below
    if x1 > l1 and x0 <= l0:
        return above
    return 0


# ---------------------------------------------------------------------------------------------
# Indicator states in the flat arrays: `i` is the first int slot, `f` the first float slot and
# `b` the first slot of the ring buffer. Loading a ring buffer takes a view, so the update
# kernel writes it in place; storing it is only needed for a new state.


@njit(cache=True, nogil=True)
def _sma_load_nb(ints: np.ndarray, floats: np.ndarray, i: int, f: int, b: int) -> SmaState:
    window = ints[i]
    buf = floats[b : b + window]
    return SmaState(window, buf, ints[i + 1], ints[i + 2], ints[i + 3], floats[f])


@njit(cache=True, nogil=True)
def _sma_store_nb(state: SmaState, ints: np.ndarray, floats: np.ndarray, i: int, f: int) -> None:
    ints[i] = state.window
    ints[i + 1] = state.pos
    ints[i + 2] = state.seen
    ints[i + 3] = state.nan_count
    floats[f] = state.total


@njit(cache=True, nogil=True)
def _sma_new_nb(
    state: SmaState, ints: np.ndarray, floats: np.ndarray, i: int, f: int, b: int
) -> None:
    _sma_store_nb(state, ints, floats, i, f)
    floats[b : b + state.window] = state.buf


@njit(cache=True, nogil=True)
def _ema_load_nb(ints: np.ndarray, floats: np.ndarray, i: int, f: int) -> EmaState:
    return EmaState(ints[i], floats[f], ints[i + 1], floats[f + 1], floats[f + 2])


@njit(cache=True, nogil=True)
def _ema_store_nb(state: EmaState, ints: np.ndarray, floats: np.ndarray, i: int, f: int) -> None:
    ints[i] = state.window
    ints[i + 1] = state.seen
    floats[f] = state.alpha
    floats[f + 1] = state.seed
    floats[f + 2] = state.value


@njit(cache=True, nogil=True)
def _rsi_load_nb(ints: np.ndarray, floats: np.ndarray, i: int, f: int) -> RsiState:
    return RsiState(ints[i], ints[i + 1], floats[f], floats[f + 1], floats[f + 2])


@njit(cache=True, nogil=True)
def _rsi_store_nb(state: RsiState, ints: np.ndarray, floats: np.ndarray, i: int, f: int) -> None:
    ints[i] = state.window
    ints[i + 1] = state.seen
    floats[f] = state.prev
    floats[f + 1] = state.gain
    floats[f + 2] = state.loss


@njit(cache=True, nogil=True)
def _bands_load_nb(ints: np.ndarray, floats: np.ndarray, i: int, f: int, b: int) -> BollingerState:
    window = ints[i]
    moments = MomentsState(
        window, ints[i + 1], floats[b : b + window], ints[i + 2], ints[i + 3], ints[i + 4],
        floats[f + 1], floats[f + 2], floats[f + 3], floats[f + 4], floats[f + 5],
    )  # fmt: skip
    return BollingerState(moments, floats[f])


@njit(cache=True, nogil=True)
def _bands_store_nb(
    state: BollingerState, ints: np.ndarray, floats: np.ndarray, i: int, f: int
) -> None:
    m = state.moments
    ints[i] = m.window
    ints[i + 1] = m.ddof
    ints[i + 2] = m.pos
    ints[i + 3] = m.seen
    ints[i + 4] = m.nan_count
    floats[f] = state.nstd
    floats[f + 1] = m.shift
    floats[f + 2] = m.s1
    floats[f + 3] = m.c1
    floats[f + 4] = m.s2
    floats[f + 5] = m.c2


@njit(cache=True, nogil=True)
def _step_cross_nb(floats: np.ndarray, a: float, b: float) -> int:
    """Flags of the averages' crossing; floats[0] and floats[1] hold the previous bar's."""
    flags = _cross_nb(floats[0], floats[1], a, b)
    floats[0] = a
    floats[1] = b
    return flags


# ---------------------------------------------------------------------------------------------
# One kernel pair per strategy. The slot names in _LAYOUTS below follow these offsets.

# sma_crossover. ints: fast SMA [0:4], slow SMA [4:8]; floats: previous fast and slow average,
# fast total, slow total, then the fast ring and the slow ring.


@njit(cache=True, nogil=True)
def sma_crossover_init_nb(fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    ints = np.zeros(8, dtype=np.int64)
    floats = np.full(4 + fast + slow, np.nan)
    _sma_new_nb(sma_init_nb(fast), ints, floats, 0, 2, 4)
    _sma_new_nb(sma_init_nb(slow), ints, floats, 4, 3, 4 + fast)
    return ints, floats


@njit(cache=True, nogil=True)
def sma_crossover_update_nb(ints: np.ndarray, floats: np.ndarray, close: float) -> int:
    """One bar of ``BAR_STRATEGIES['sma_crossover'].signals``."""
    fast, a = sma_update_nb(_sma_load_nb(ints, floats, 0, 2, 4), close)
    slow, b = sma_update_nb(_sma_load_nb(ints, floats, 4, 3, 4 + ints[0]), close)
    _sma_store_nb(fast, ints, floats, 0, 2)
    _sma_store_nb(slow, ints, floats, 4, 3)
    return _step_cross_nb(floats, a, b)


# ema_crossover. ints: fast EMA [0:2], slow EMA [2:4]; floats: previous fast and slow average,
# fast EMA [2:5], slow EMA [5:8].


@njit(cache=True, nogil=True)
def ema_crossover_init_nb(fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    ints = np.zeros(4, dtype=np.int64)
    floats = np.full(8, np.nan)
    _ema_store_nb(ema_init_nb(fast), ints, floats, 0, 2)
    _ema_store_nb(ema_init_nb(slow), ints, floats, 2, 5)
    return ints, floats


@njit(cache=True, nogil=True)
def ema_crossover_update_nb(ints: np.ndarray, floats: np.ndarray, close: float) -> int:
    """One bar of ``BAR_STRATEGIES['ema_crossover'].signals``."""
    fast, a = ema_update_nb(_ema_load_nb(ints, floats, 0, 2), close)
    slow, b = ema_update_nb(_ema_load_nb(ints, floats, 2, 5), close)
    _ema_store_nb(fast, ints, floats, 0, 2)
    _ema_store_nb(slow, ints, floats, 2, 5)
    return _step_cross_nb(floats, a, b)


# rsi_reversion. ints: RSI [0:2]; floats: previous RSI, lower, upper, RSI [3:6].


@njit(cache=True, nogil=True)
def rsi_reversion_init_nb(window: int, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    ints = np.zeros(2, dtype=np.int64)
    floats = np.full(6, np.nan)
    floats[1] = lower
    floats[2] = upper
    _rsi_store_nb(rsi_init_nb(window), ints, floats, 0, 3)
    return ints, floats


@njit(cache=True, nogil=True)
def rsi_reversion_update_nb(ints: np.ndarray, floats: np.ndarray, close: float) -> int:
    """One bar of ``BAR_STRATEGIES['rsi_reversion'].signals``."""
    state, rsi = rsi_update_nb(_rsi_load_nb(ints, floats, 0, 3), close)
    _rsi_store_nb(state, ints, floats, 0, 3)
    prev = floats[0]
    lower = floats[1]
    upper = floats[2]
    flags = _level_cross_nb(prev, rsi, lower, lower, _BULL, 0)
    flags |= _level_cross_nb(prev, rsi, upper, upper, 0, _BEAR)
    floats[0] = rsi
    return flags


# bollinger_breakout. ints: bands [0:5]; floats: previous close, middle, upper and lower,
# bands [4:10], then the ring.


@njit(cache=True, nogil=True)
def bollinger_breakout_init_nb(window: int, nstd: float) -> tuple[np.ndarray, np.ndarray]:
    ints = np.zeros(5, dtype=np.int64)
    floats = np.full(10 + window, np.nan)
    state = bollinger_init_nb(window, nstd)
    _bands_store_nb(state, ints, floats, 0, 4)
    floats[10 : 10 + window] = state.moments.buf
    return ints, floats


@njit(cache=True, nogil=True)
def bollinger_breakout_update_nb(ints: np.ndarray, floats: np.ndarray, close: float) -> int:
    """One bar of ``BAR_STRATEGIES['bollinger_breakout'].signals``."""
    bands = _bands_load_nb(ints, floats, 0, 4, 10)
    state, middle, upper, lower = bollinger_update_nb(bands, close)
    _bands_store_nb(state, ints, floats, 0, 4)
    prev = floats[0]
    flags = _level_cross_nb(prev, close, floats[2], upper, 0, _LE)
    flags |= _level_cross_nb(prev, close, floats[3], lower, _SE, 0)
    flags |= _level_cross_nb(prev, close, floats[1], middle, _LX, _SX)
    floats[0] = close
    floats[1] = middle
    floats[2] = upper
    floats[3] = lower
    return flags


# ---------------------------------------------------------------------------------------------
# Layouts: the kernels of each strategy and the names of their slots


class _Layout(NamedTuple):
    init: Callable[[Mapping[str, Any]], tuple[np.ndarray, np.ndarray]]
    update: Callable[[np.ndarray, np.ndarray, float], int]
    ints: tuple[str, ...]  # "group.field", in slot order
    floats: tuple[str, ...]  # the float slots before the rings
    rings: tuple[str, ...]  # after them, in order; ring "g.buf" holds int slot "g.window" values
    fixed: frozenset[str]  # slots the parameters set: left out of snapshots


def _names(group: str, *fields: str) -> tuple[str, ...]:
    return tuple(f"{group}.{field}" for field in fields)


_SMA_INTS = ("window", "pos", "seen", "nan_count")
_EMA_FLOATS = ("alpha", "seed", "value")

_LAYOUTS: dict[str, _Layout] = {
    "sma_crossover": _Layout(
        lambda p: sma_crossover_init_nb(p["fast"], p["slow"]),
        sma_crossover_update_nb,
        _names("fast", *_SMA_INTS) + _names("slow", *_SMA_INTS),
        ("prev.fast", "prev.slow", "fast.total", "slow.total"),
        ("fast.buf", "slow.buf"),
        frozenset({"fast.window", "slow.window"}),
    ),
    "ema_crossover": _Layout(
        lambda p: ema_crossover_init_nb(p["fast"], p["slow"]),
        ema_crossover_update_nb,
        ("fast.window", "fast.seen", "slow.window", "slow.seen"),
        _names("prev", "fast", "slow")
        + _names("fast", *_EMA_FLOATS)
        + _names("slow", *_EMA_FLOATS),
        (),
        frozenset({"fast.window", "slow.window", "fast.alpha", "slow.alpha"}),
    ),
    "rsi_reversion": _Layout(
        lambda p: rsi_reversion_init_nb(p["window"], p["lower"], p["upper"]),
        rsi_reversion_update_nb,
        ("rsi.window", "rsi.seen"),
        ("prev.rsi", "level.lower", "level.upper", "rsi.prev", "rsi.gain", "rsi.loss"),
        (),
        frozenset({"rsi.window", "level.lower", "level.upper"}),
    ),
    "bollinger_breakout": _Layout(
        lambda p: bollinger_breakout_init_nb(p["window"], p["nstd"]),
        bollinger_breakout_update_nb,
        ("bands.window", "bands.ddof", "bands.pos", "bands.seen", "bands.nan_count"),
        _names("prev", "close", "middle", "upper", "lower")
        + _names("bands", "nstd", "shift", "s1", "c1", "s2", "c2"),
        ("bands.buf",),
        frozenset({"bands.window", "bands.ddof", "bands.nstd"}),
    ),
}

LIVE_STRATEGIES: frozenset[str] = frozenset(_LAYOUTS)


# ---------------------------------------------------------------------------------------------
# Snapshots


_SPELLED = ("nan", "inf", "-inf", "-0.0")


def _encode(x: float) -> float | str:
    """JSON has no NaN or infinity: those become "nan", "inf", "-inf". A negative zero is
    spelled out too, since a JSONB column (Postgres numeric) keeps every other double exactly
    but turns -0.0 into 0."""
    if math.isfinite(x) and (x != 0.0 or math.copysign(1.0, x) > 0.0):
        return x
    return repr(x)


def _decode(where: str, value: Any) -> float:
    if isinstance(value, str) and value in _SPELLED:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(  # noqa: TRY004
            f"state value {where} must be a number or one of {_SPELLED}, got {value!r}"
        )
    return float(value)


def _checked_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters checked and typed as a backtest checks them, for a live strategy."""
    strategy = BAR_STRATEGIES.get(name)
    if strategy is None:
        raise ValueError(f"unknown strategy {name!r}; live strategies: {sorted(LIVE_STRATEGIES)}")
    if name not in LIVE_STRATEGIES:
        why = _NOT_LIVE.get(name, "it has no incremental version")
        raise ValueError(
            f"strategy {name!r} cannot run live: {why}; live strategies: {sorted(LIVE_STRATEGIES)}"
        )
    checked = check_params(name, strategy.params, params)
    if strategy.check is not None:
        strategy.check(checked)
    return checked


def _group(state: Mapping[str, Any], group: str) -> Mapping[str, Any]:
    values = state.get("values")
    if not isinstance(values, Mapping) or not isinstance(values.get(group), Mapping):
        raise ValueError(f"state['values'] must hold a mapping {group!r}")  # noqa: TRY004
    found: Mapping[str, Any] = values[group]
    return found


def _slot(state: Mapping[str, Any], name: str) -> Any:
    group, field = name.split(".")
    fields = _group(state, group)
    if field not in fields:
        raise ValueError(f"state['values'][{group!r}] is missing {field!r}")
    return fields[field]


class LiveSignals:
    """A bar strategy fed one closed bar at a time.

    Feeding bars 0..i one by one returns, at bar i, exactly ``BAR_STRATEGIES[name].signals``
    of those bars at i: the same SignalFlag bits, decided at the bar's close.
    """

    __slots__ = ("_floats", "_ints", "_layout", "_update", "bars_seen", "name", "params")

    name: str
    params: dict[str, Any]
    bars_seen: int

    def __init__(self, name: str, params: dict[str, Any]) -> None:
        """Use :meth:`create` (or :meth:`restore`): they check the parameters."""
        self.name = name
        self.params = params
        self.bars_seen = 0
        self._layout = _LAYOUTS[name]
        self._update = self._layout.update
        self._ints, self._floats = self._layout.init(params)

    @classmethod
    def create(cls, name: str, params: Mapping[str, Any] | None) -> LiveSignals:
        """A strategy before its first bar; ``ValueError`` naming the problem for a strategy
        that is unknown or cannot run live, or for bad parameters."""
        return cls(name, _checked_params(name, params))

    def update(self, ts: int, open: float, high: float, low: float, close: float) -> int:
        """The SignalFlag bits of this bar, decided at its close. Only the close matters to
        the four strategies; the rest is there for strategies to come."""
        self.bars_seen += 1
        flags: int = self._update(self._ints, self._floats, float(close))
        return flags

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot that :meth:`restore` continues from exactly."""
        layout = self._layout
        values: dict[str, dict[str, Any]] = {}

        def put(name: str, value: Any) -> None:
            if name not in layout.fixed:
                group, field = name.split(".")
                values.setdefault(group, {})[field] = value

        for k, name in enumerate(layout.ints):
            put(name, int(self._ints[k]))
        for k, name in enumerate(layout.floats):
            put(name, _encode(float(self._floats[k])))
        for name, (lo, hi) in zip(layout.rings, self._rings(), strict=True):
            put(name, [_encode(x) for x in self._floats[lo:hi].tolist()])
        return {
            "version": STATE_VERSION,
            "strategy": self.name,
            "params": dict(self.params),
            "bars_seen": self.bars_seen,
            "values": values,
        }

    @classmethod
    def restore(cls, name: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> LiveSignals:
        """The strategy of a :meth:`state` snapshot (after a JSON round trip or not), going on
        as if never interrupted; ``ValueError`` if the snapshot is of another strategy or other
        parameters, or is damaged."""
        live = cls.create(name, params)
        if not isinstance(state, Mapping):
            raise ValueError(f"state must be a mapping, got {type(state).__name__}")  # noqa: TRY004
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"state['version'] must be {STATE_VERSION}, got {state.get('version')!r}"
            )
        if state.get("strategy") != name:
            raise ValueError(f"state is of strategy {state.get('strategy')!r}, not {name!r}")
        taken = state.get("params")
        if (
            not isinstance(taken, Mapping)
            or check_params(name, BAR_STRATEGIES[name].params, taken) != live.params
        ):
            raise ValueError(f"state was taken with params {taken!r}, not {live.params!r}")
        live._load(state)
        return live

    def _rings(self) -> list[tuple[int, int]]:
        """(start, stop) of each ring in the floats, after the scalar slots."""
        spans = []
        start = len(self._layout.floats)
        for name in self._layout.rings:
            length = int(self._ints[self._layout.ints.index(name.replace(".buf", ".window"))])
            spans.append((start, start + length))
            start += length
        return spans

    def _load(self, state: Mapping[str, Any]) -> None:
        bars_seen = state.get("bars_seen")
        if isinstance(bars_seen, bool) or not isinstance(bars_seen, int) or bars_seen < 0:
            raise ValueError(f"state['bars_seen'] must be an integer >= 0, got {bars_seen!r}")
        layout = self._layout
        ints = self._ints.copy()
        floats = self._floats.copy()
        for k, name in enumerate(layout.ints):
            if name in layout.fixed:
                continue
            value = _slot(state, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
                raise ValueError(f"state value {name!r} must be an integer >= 0, got {value!r}")
            if name.endswith(".pos"):
                # A ring position past the ring would write outside it: the kernels do not check.
                window = int(ints[layout.ints.index(name.replace(".pos", ".window"))])
                if value >= window:
                    raise ValueError(f"state value {name!r} must be below {window}, got {value!r}")
            ints[k] = value
        for k, name in enumerate(layout.floats):
            if name not in layout.fixed:
                floats[k] = _decode(repr(name), _slot(state, name))
        for name, (lo, hi) in zip(layout.rings, self._rings(), strict=True):
            ring = _slot(state, name)
            if not isinstance(ring, list) or len(ring) != hi - lo:
                raise ValueError(f"state value {name!r} must be a list of {hi - lo} numbers")
            floats[lo:hi] = [_decode(repr(name), x) for x in ring]
        self._ints = ints
        self._floats = floats
        self.bars_seen = bars_seen
