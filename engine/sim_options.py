"""Checking what callers hand the bar simulator, before any work is done.

Every refusal is a ``ValueError`` naming the argument and the offending value, wrong types
included (issue 4's bad-input contract, hence the TRY004 exemptions).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any, Literal, TypedDict

import numpy as np

from engine.simulate import (
    SimConfig,
    Sizing,
    first_not_positive_nb,
    first_unsorted_nb,
)
from engine.strategies import ParamSpec

__all__ = ["BacktestOptions", "check_bars", "check_params", "sim_config"]


class BacktestOptions(TypedDict, total=False):
    """Simulator options; each documented at :func:`engine.backtest.run_backtest`."""

    fill: Literal["close", "next_open"]
    fees: float
    slippage: float
    slippage_unit: Literal["fraction", "points"]
    initial_capital: float
    direction: Literal["long", "short", "both"]
    sizing: Literal["cash", "units", "notional"]
    size: float
    stop_loss: float | None
    take_profit: float | None
    stop_unit: Literal["fraction", "points"]
    max_bars: int | None
    allowed_hours: Sequence[int] | None


OPTION_NAMES = frozenset(BacktestOptions.__annotations__)
# Option values in the order of their kernel codes (Fill, DirectionMode, Sizing).
_FILLS = ("close", "next_open")
_DIRECTIONS = ("long", "short", "both")
_SIZINGS = ("cash", "units", "notional")
_UNITS = ("fraction", "points")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> int:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return allowed.index(value)


def _number(name: str, value: Any, *, low: float, low_open: bool, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(float(value)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if v < low or (low_open and v == low) or v > high or math.isinf(v):
        side = ">" if low_open else ">="
        upper = f" and <= {high}" if high < math.inf else ""
        raise ValueError(f"{name} must be finite, {side} {low}{upper}, got {value!r}")
    return v


def check_hours(name: str, value: Any) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a list of UTC hours 0-23 or None, got {value!r}")  # noqa: TRY004
    hours = list(value)
    if not hours:
        raise ValueError(f"{name} must name at least one hour (None allows all), got {value!r}")
    for h in hours:
        if isinstance(h, bool) or not isinstance(h, Integral) or not 0 <= int(h) <= 23:
            raise ValueError(f"{name} must hold hours 0-23, got {h!r} in {value!r}")
    return sorted({int(h) for h in hours})


def sim_config(options: Mapping[str, Any]) -> tuple[SimConfig, list[int] | None]:
    """The kernel's config from the options (defaults filled in), and the allowed hours."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; accepted: {sorted(OPTION_NAMES)}")
    get = options.get
    fill = _choice("fill", get("fill", "close"), _FILLS)
    direction = _choice("direction", get("direction", "long"), _DIRECTIONS)
    fees = _number("fees", get("fees", 0.0), low=0.0, low_open=False, high=0.5)
    slippage = _number("slippage", get("slippage", 0.0), low=0.0, low_open=False)
    slip_points = _choice("slippage_unit", get("slippage_unit", "fraction"), _UNITS) == 1
    if not slip_points and slippage >= 1.0:
        raise ValueError(f"slippage as a fraction must be below 1, got {slippage!r}")
    capital = _number("initial_capital", get("initial_capital", 10_000.0), low=0.0, low_open=True)
    sizing = _choice("sizing", get("sizing", "cash"), _SIZINGS)
    size = _number("size", get("size", 1.0), low=0.0, low_open=True)
    if sizing == Sizing.Cash and size > 1.0:
        raise ValueError(
            f"size is a cash fraction for sizing='cash' and must be <= 1, got {size!r}"
        )
    stop_points = _choice("stop_unit", get("stop_unit", "fraction"), _UNITS)
    stops = []
    for name in ("stop_loss", "take_profit"):
        value = get(name)
        stops.append(math.nan if value is None else _number(name, value, low=0.0, low_open=True))
    if not stop_points and not math.isnan(stops[0]) and stops[0] >= 1.0:
        raise ValueError(f"stop_loss as a fraction must be below 1, got {stops[0]!r}")
    max_bars = get("max_bars")
    if max_bars is not None and (
        isinstance(max_bars, bool) or not isinstance(max_bars, Integral) or max_bars < 1
    ):
        raise ValueError(f"max_bars must be a positive integer or None, got {max_bars!r}")
    hours = check_hours("allowed_hours", get("allowed_hours"))
    cfg = SimConfig(
        fill, direction, fees, slippage if not slip_points else 0.0,
        slippage if slip_points else 0.0, sizing, size, stops[0], stops[1], stop_points,
        0 if max_bars is None else int(max_bars), capital,
    )  # fmt: skip
    return cfg, hours


def check_bars(
    ohlcv: Any, price_columns: Sequence[str], *, scan: bool = True
) -> dict[str, np.ndarray]:
    """Contiguous arrays of every column, ``ts`` as int64 ns, after checking lengths, order
    and the prices the run will use. ``scan=False`` leaves out the scans of the values (ts
    strictly increasing, prices positive and finite) for a kernel that checks them as it goes
    and calls this again, scanning, when it finds a bad bar."""
    if not isinstance(ohlcv, Mapping):
        raise ValueError(f"ohlcv must map column names to arrays, got {type(ohlcv).__name__}")  # noqa: TRY004
    for key in ("ts", *price_columns):
        if key not in ohlcv:
            raise ValueError(f"ohlcv is missing column {key!r}; it has {sorted(ohlcv)}")
    ts = np.asarray(ohlcv["ts"])
    if ts.dtype.kind == "M":
        ts = ts.astype("datetime64[ns]").view(np.int64)
    if ts.ndim != 1 or ts.dtype.kind not in "iu":
        raise ValueError(f"ohlcv['ts'] must be 1-D int64 nanoseconds, got dtype {ts.dtype}")
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    bars: dict[str, np.ndarray] = {"ts": ts if ts.flags.writeable else ts.copy()}
    n = ts.shape[0]
    for key, column in ohlcv.items():
        if key == "ts":
            continue
        array = np.asarray(column)
        if array.ndim != 1 or array.shape[0] != n:
            raise ValueError(
                f"ohlcv[{key!r}] must have one value per bar like ohlcv['ts'] ({n}), "
                f"got shape {array.shape}"
            )
        if array.dtype.kind in "fiu":
            array = np.ascontiguousarray(array, dtype=np.float64)
            if not array.flags.writeable:
                # numba compiles a separate kernel for read-only arrays (Arrow buffers, memory
                # maps): a copy costs less than that compile in the middle of a request.
                array = array.copy()
        bars[key] = array
    if not scan and all(bars[key].dtype.kind == "f" for key in price_columns):
        return bars
    i = first_unsorted_nb(bars["ts"])
    if i >= 0:
        raise ValueError(
            f"ohlcv['ts'] must be strictly increasing, got ts[{i}]={int(bars['ts'][i])} "
            f"after ts[{i - 1}]={int(bars['ts'][i - 1])}"
        )
    for key in price_columns:
        prices = bars[key]
        if prices.dtype.kind != "f":
            raise ValueError(f"ohlcv[{key!r}] must be numeric, got dtype {prices.dtype}")
        i = first_not_positive_nb(prices)
        if i >= 0:
            raise ValueError(
                f"ohlcv[{key!r}] must be positive and finite, got {float(prices[i])!r} at bar {i}"
            )
    return bars


def _param_value(strategy: str, spec: ParamSpec, value: Any) -> Any:
    name = f"params[{spec['name']!r}]"
    kind = spec["type"]
    if kind == "hours":
        return check_hours(name, value)
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{name} of {strategy} must be a string, got {value!r}")
        return value
    numeric = isinstance(value, Real) and not isinstance(value, bool)
    if kind == "int":
        if not numeric or not float(value).is_integer():
            raise ValueError(f"{name} of {strategy} must be an integer, got {value!r}")
        out: float = int(value)
    else:
        if not numeric or not math.isfinite(float(value)):
            raise ValueError(f"{name} of {strategy} must be a finite number, got {value!r}")
        out = float(value)
    bounds = spec["bounds"]
    if bounds is not None:
        low, high = bounds
        if (low is not None and out < low) or (high is not None and out > high):
            raise ValueError(
                f"{name} of {strategy} must be within {bounds} (inclusive), got {value!r}"
            )
    return out


def check_params(
    strategy: str, schema: Sequence[ParamSpec], params: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Every parameter of ``schema``, from ``params`` or its default, checked and typed."""
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a mapping, got {type(params).__name__}")  # noqa: TRY004
    names = [p["name"] for p in schema]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r} for strategy {strategy!r}; it takes {names}"
        )
    return {
        p["name"]: _param_value(strategy, p, params.get(p["name"], p["default"])) for p in schema
    }
