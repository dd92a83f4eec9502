"""Signal generators for the bar simulator, with their parameter schemas.

Each strategy turns bars (and, for ``threshold``, a prediction column) into one ``uint8`` of
:data:`~engine.simulate.SignalFlag` bits per bar, decided at the bar's close; the simulator's
``direction`` option picks which bits it acts on. The rules:

* ``sma_crossover`` / ``ema_crossover``: the fast average closing above the slow one after being
  at or below it on the previous bar is a long entry and a short exit; the opposite cross is a
  long exit and a short entry. Nothing happens on the first bar where both averages exist (it
  has no previous bar to compare with).
* ``threshold``: a prediction at or above ``entry_threshold`` (and, with ``top_pct`` below 100,
  among the top ``top_pct`` percent of all the run's predictions) is a long entry and short exit;
  one at or below ``exit_threshold`` is a long exit and short entry. The top-percent cut-off is
  the quantile of the whole series, as seed 001's research sweeps rank predictions: it looks
  ahead, so use it on research predictions, not live. Bars outside ``allowed_hours`` (UTC hours
  of ``ts``) never enter and close any open position.
* ``rsi_reversion``: Wilder's RSI closing below ``lower`` after being at or above it is a long
  entry and short exit; closing above ``upper`` after being at or below it is a long exit and a
  short entry.
* ``bollinger_breakout``: the close crossing above the upper band is a long entry, back below the
  middle band a long exit; crossing below the lower band is a short entry, back above the middle
  band a short exit.

The averages, RSI and bands are ``engine.indicators``' (TA-Lib equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
from numba import njit

from engine import _cache  # noqa: F401  (before any kernel: the cache locator)
from engine.indicators import bollinger_1d_nb, ema_1d_nb, rsi_1d_nb, sma_1d_nb
from engine.simulate import SignalFlag, SignalSource, sweep_crossings_nb
from engine.sweep_threshold import sweep_threshold

__all__ = [
    "BAR_STRATEGIES",
    "BarStrategy",
    "ParamSpec",
    "cross_signals_nb",
    "hours_mask",
]

HOUR_NS = 3_600_000_000_000

_LE = SignalFlag.LongEntry
_LX = SignalFlag.LongExit
_SE = SignalFlag.ShortEntry
_SX = SignalFlag.ShortExit
_BULL = _LE | _SX  # a bullish event: enter long, leave a short
_BEAR = _LX | _SE

Bars = Mapping[str, np.ndarray]
SignalFn = Callable[[Bars, Mapping[str, Any]], np.ndarray]
SweepFn = Callable[[Bars, Sequence[Mapping[str, Any]], np.ndarray, np.ndarray], np.ndarray]


class ParamSpec(TypedDict):
    """One strategy parameter as the registry and the REST /strategies route list it."""

    name: str
    type: str  # "int", "float", "str" or "hours" (a list of UTC hours 0-23, or None for all)
    default: Any
    bounds: tuple[float | None, float | None] | None  # inclusive; None = unbounded side
    description: str


@dataclass(frozen=True)
class BarStrategy:
    """A strategy the generic bar simulator runs: a schema and a signal function."""

    name: str
    description: str
    params: tuple[ParamSpec, ...]
    signals: SignalFn
    # Metrics of many combinations at once, sharing work between them (a sweep); without it a
    # sweep simulates each combination's signals.
    sweep: SweepFn | None = None
    check: Callable[[Mapping[str, Any]], None] | None = None  # rules across parameters
    # Signals the simulator computes in its own loop, one pass over the bars: the parameters
    # to ``run_bars_nb``'s (source, fast, slow). Without it the simulator reads ``signals``.
    one_pass: Callable[[Mapping[str, Any]], tuple[int, int, int]] | None = None


# ---------------------------------------------------------------------------------------------
# Kernels


@njit(cache=True, nogil=True)
def cross_signals_into_nb(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """Crossover flags of ``a`` over ``b`` into ``out``; equals, on data without ties,
    ``vbt`` ``a.vbt.crossed_above(b)`` as long entries and ``crossed_below`` as long exits."""
    out[0] = 0
    for i in range(1, a.shape[0]):
        a0 = a[i - 1]
        b0 = b[i - 1]
        a1 = a[i]
        b1 = b[i]
        if a1 > b1 and a0 <= b0:
            out[i] = _BULL
        elif a1 < b1 and a0 >= b0:
            out[i] = _BEAR
        else:
            out[i] = 0


@njit(cache=True, nogil=True)
def cross_signals_nb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Crossover flags of ``a`` over ``b`` (see ``cross_signals_into_nb``)."""
    out = np.zeros(a.shape[0], dtype=np.uint8)
    if a.shape[0] > 0:
        cross_signals_into_nb(a, b, out)
    return out


@njit(cache=True, nogil=True)
def level_cross_signals_nb(
    x: np.ndarray, level: np.ndarray, below_flags: int, above_flags: int
) -> np.ndarray:
    """``below_flags`` where ``x`` closes below ``level`` after being at or above it,
    ``above_flags`` where it closes above after being at or below it; equals pandas'
    ``(x < level) & (x.shift() >= level.shift())`` and its mirror (NaN compares false)."""
    n = x.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    for i in range(1, n):
        x0 = x[i - 1]
        x1 = x[i]
        l0 = level[i - 1]
        l1 = level[i]
        if x1 < l1 and x0 >= l0:
            out[i] |= below_flags
        elif x1 > l1 and x0 <= l0:
            out[i] |= above_flags
    return out


@njit(cache=True, nogil=True)
def threshold_signals_nb(
    pred: np.ndarray, entry: float, exit_: float, cutoff: float, hours_ok: np.ndarray
) -> np.ndarray:
    """Level signals of a prediction series (module docstring); ``hours_ok`` empty = all hours."""
    n = pred.shape[0]
    out = np.zeros(n, dtype=np.uint8)
    has_hours = hours_ok.shape[0] > 0
    for i in range(n):
        p = pred[i]
        if has_hours and not hours_ok[i]:
            out[i] = _LX | _SX
        elif p >= entry and p >= cutoff:
            out[i] = _BULL
        elif p <= exit_:
            out[i] = _BEAR
    return out


# ---------------------------------------------------------------------------------------------
# Strategies


def hours_mask(ts: np.ndarray, hours: Sequence[int] | None) -> np.ndarray:
    """True where the UTC hour of ``ts`` (int64 ns) is in ``hours``; empty for "all hours"."""
    if hours is None:
        return np.zeros(0, dtype=np.bool_)
    allowed = np.zeros(24, dtype=np.bool_)
    allowed[np.asarray(list(hours), dtype=np.int64)] = True
    mask: np.ndarray = allowed[(ts // HOUR_NS) % 24]
    return mask


def _crossover(exponential: bool) -> SignalFn:
    average = ema_1d_nb if exponential else sma_1d_nb

    def signals(bars: Bars, params: Mapping[str, Any]) -> np.ndarray:
        close = bars["close"]
        out: np.ndarray = cross_signals_nb(
            average(close, int(params["fast"])), average(close, int(params["slow"]))
        )
        return out

    return signals


def _crossover_source(exponential: bool) -> Callable[[Mapping[str, Any]], tuple[int, int, int]]:
    source = SignalSource.EmaCross if exponential else SignalSource.SmaCross

    def one_pass(params: Mapping[str, Any]) -> tuple[int, int, int]:
        return source, int(params["fast"]), int(params["slow"])

    return one_pass


def _crossover_sweep(exponential: bool) -> SweepFn:
    source = SignalSource.EmaCross if exponential else SignalSource.SmaCross

    def sweep(
        bars: Bars, combos: Sequence[Mapping[str, Any]], cfg_array: np.ndarray, hours_ok: np.ndarray
    ) -> np.ndarray:
        close = bars["close"]
        fast = np.array([int(c["fast"]) for c in combos], dtype=np.int64)
        slow = np.array([int(c["slow"]) for c in combos], dtype=np.int64)
        out: np.ndarray = sweep_crossings_nb(
            source, fast, slow, bars.get("open", close), bars.get("high", close),
            bars.get("low", close), close, bars["ts"], hours_ok, cfg_array,
        )  # fmt: skip
        return out

    return sweep


def _check_fast_slow(params: Mapping[str, Any]) -> None:
    if params["fast"] >= params["slow"]:
        raise ValueError(
            f"params['fast'] must be smaller than params['slow'], got fast={params['fast']!r} "
            f"and slow={params['slow']!r}"
        )


def _threshold(bars: Bars, params: Mapping[str, Any]) -> np.ndarray:
    column = params["column"]
    if column not in bars or bars[column].dtype.kind != "f":
        raise ValueError(
            f"params['column'] of threshold must name a numeric ohlcv column, got {column!r}; "
            f"ohlcv has {sorted(bars)}"
        )
    pred = bars[column]
    top_pct = float(params["top_pct"])
    cutoff = -np.inf
    if top_pct < 100.0:
        finite = pred[np.isfinite(pred)]
        if finite.size:
            cutoff = float(np.quantile(finite, 1.0 - top_pct / 100.0))
    hours = hours_mask(bars["ts"], params["allowed_hours"])
    return threshold_signals_nb(
        pred, float(params["entry_threshold"]), float(params["exit_threshold"]), cutoff, hours
    )


def _check_threshold(params: Mapping[str, Any]) -> None:
    if params["exit_threshold"] >= params["entry_threshold"]:
        raise ValueError(
            f"params['exit_threshold'] must be below params['entry_threshold'], got "
            f"exit_threshold={params['exit_threshold']!r} and "
            f"entry_threshold={params['entry_threshold']!r}"
        )


def _rsi_reversion(bars: Bars, params: Mapping[str, Any]) -> np.ndarray:
    rsi = rsi_1d_nb(bars["close"], int(params["window"]))
    n = rsi.shape[0]
    lower = level_cross_signals_nb(rsi, np.full(n, float(params["lower"])), _BULL, 0)
    upper = level_cross_signals_nb(rsi, np.full(n, float(params["upper"])), 0, _BEAR)
    out: np.ndarray = lower | upper
    return out


def _check_rsi(params: Mapping[str, Any]) -> None:
    if params["lower"] >= params["upper"]:
        raise ValueError(
            f"params['lower'] must be below params['upper'], got lower={params['lower']!r} "
            f"and upper={params['upper']!r}"
        )


def _bollinger_breakout(bars: Bars, params: Mapping[str, Any]) -> np.ndarray:
    close = bars["close"]
    middle, upper, lower = bollinger_1d_nb(close, int(params["window"]), float(params["nstd"]))
    out = level_cross_signals_nb(close, upper, 0, _LE)
    out |= level_cross_signals_nb(close, lower, _SE, 0)
    out |= level_cross_signals_nb(close, middle, _LX, _SX)
    return out


def _p(
    name: str, type_: str, default: Any, bounds: tuple[float | None, float | None] | None, text: str
) -> ParamSpec:
    return {"name": name, "type": type_, "default": default, "bounds": bounds, "description": text}


_HOURS_DOC = (
    "UTC hours (0-23) in which entries are allowed; outside them positions close. None = all"
)

BAR_STRATEGIES: dict[str, BarStrategy] = {
    s.name: s
    for s in (
        BarStrategy(
            "sma_crossover",
            "Long when the fast simple moving average crosses above the slow one.",
            (
                _p("fast", "int", 10, (1, None), "fast SMA window, in bars; below slow"),
                _p("slow", "int", 50, (2, None), "slow SMA window, in bars"),
            ),
            _crossover(False),
            _crossover_sweep(False),
            _check_fast_slow,
            _crossover_source(False),
        ),
        BarStrategy(
            "ema_crossover",
            "Long when the fast exponential moving average crosses above the slow one.",
            (
                _p("fast", "int", 12, (1, None), "fast EMA window, in bars; below slow"),
                _p("slow", "int", 26, (2, None), "slow EMA window, in bars"),
            ),
            _crossover(True),
            _crossover_sweep(True),
            _check_fast_slow,
            _crossover_source(True),
        ),
        BarStrategy(
            "threshold",
            "Long while a prediction series is high, out (or short) when it is low.",
            (
                _p("column", "str", "prediction", None, "ohlcv column holding the predictions"),
                _p("entry_threshold", "float", 0.7, None, "enter at or above this prediction"),
                _p("exit_threshold", "float", 0.3, None, "exit at or below; below entry_threshold"),
                _p("allowed_hours", "hours", None, None, _HOURS_DOC),
                _p(
                    "top_pct",
                    "float",
                    100.0,
                    (0.0, 100.0),
                    "enter only on the top top_pct percent of the run's predictions",
                ),
            ),
            _threshold,
            sweep_threshold,
            _check_threshold,
        ),
        BarStrategy(
            "rsi_reversion",
            "Long when Wilder's RSI falls below lower, out (or short) when it rises above upper.",
            (
                _p("window", "int", 14, (2, None), "RSI window, in bars"),
                _p("lower", "float", 30.0, (0.0, 100.0), "oversold level: long entry below it"),
                _p("upper", "float", 70.0, (0.0, 100.0), "overbought level: long exit above it"),
            ),
            _rsi_reversion,
            None,
            _check_rsi,
        ),
        BarStrategy(
            "bollinger_breakout",
            "Long on a close above the upper band until back below the middle; short mirrored.",
            (
                _p("window", "int", 20, (2, None), "band window, in bars"),
                _p("nstd", "float", 2.0, (0.0, None), "band width in standard deviations"),
            ),
            _bollinger_breakout,
        ),
    )
}
