"""A simulation's arithmetic, apart from I/O: which threshold it trades, the run's bars joined
with its predictions, and the engine's trades and metrics as stored rows."""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np

from hub.errors import BadRequest
from hub.executions.model import OPTION_KEYS

STRATEGY = "threshold"
BAR_COLUMNS = ("ts", "open", "high", "low", "close")
_CHOICES = ("threshold", "threshold_index", "entry_threshold")


def below(value: float) -> float:
    """The largest float below ``value``: an exit at or below it is an exit below ``value``."""
    return math.nextafter(value, -math.inf)


def strategy_of(
    parameters: dict[str, Any], thresholds: list[float]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``threshold`` strategy's params and the simulator's options that ``parameters``
    (a simulation's, as the client gave them) mean for a run with ``thresholds``."""
    chosen = [name for name in _CHOICES if parameters.get(name) is not None]
    if len(chosen) > 1:
        raise BadRequest(
            f"give one of threshold, threshold_index and entry_threshold, got {' and '.join(chosen)}",
            field=chosen[1],
        )
    exit_given = parameters.get("exit_threshold")
    if exit_given is not None and chosen != ["entry_threshold"]:
        raise BadRequest("exit_threshold goes with entry_threshold", field="exit_threshold")
    if chosen == ["threshold"]:
        entry = float(parameters["threshold"])
    elif chosen == ["entry_threshold"]:
        entry = float(parameters["entry_threshold"])
    else:
        index = int(parameters.get("threshold_index") or 0)
        if index >= len(thresholds):
            raise BadRequest(
                f"threshold_index {index} is not among the run's {len(thresholds)} thresholds; "
                "give threshold or entry_threshold",
                field="threshold_index" if chosen else "threshold",
            )
        entry = float(thresholds[index])
    params: dict[str, Any] = {
        "column": "prediction",
        "entry_threshold": entry,
        "exit_threshold": float(exit_given) if exit_given is not None else below(entry),
    }
    if parameters.get("top_pct") is not None:
        params["top_pct"] = float(parameters["top_pct"])
    options = {k: parameters[k] for k in OPTION_KEYS if parameters.get(k) is not None}
    return params, options


def check(params: dict[str, Any], options: dict[str, Any]) -> None:
    """The engine's own checks of the params and options, as a 400 naming ``parameters``."""
    from hub.executions.service import validate_strategy

    try:
        validate_strategy(STRATEGY, params, options)
    except BadRequest as exc:
        raise BadRequest(exc.message, field="parameters") from None


def joined(
    bars: dict[str, np.ndarray], ts: np.ndarray, prediction: np.ndarray
) -> dict[str, np.ndarray]:
    """The bars that have a prediction (by time), with it in a ``prediction`` column."""
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        at = int(np.argmin(ts[1:] > ts[:-1])) + 1
        raise ValueError(f"the run's predictions repeat the time {int(ts[at]) // 1000} (µs)")
    _, in_bars, in_predictions = np.intersect1d(
        bars["ts"], ts, assume_unique=True, return_indices=True
    )
    out = {name: np.ascontiguousarray(column[in_bars]) for name, column in bars.items()}
    out["prediction"] = np.ascontiguousarray(prediction[in_predictions], dtype=np.float64)
    return out


def finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def results_of(metrics: dict[str, Any]) -> dict[str, Any]:
    """The engine's metrics as stored: a value JSON cannot hold (NaN, infinity) as null."""
    return {name: finite_or_none(value) for name, value in metrics.items()}


def trade_rows(simulation_id: str, trades: np.ndarray) -> list[tuple[Any, ...]]:
    """``trade_dt`` records as ``simulation_trades`` rows (``repository.TRADE_COLUMNS``)."""
    from engine.records import Direction, TradeStatus
    from hub.executions.documents import EXIT_REASONS

    owner = uuid.UUID(simulation_id)
    rows = []
    for n, trade in enumerate(trades.tolist()):
        record = dict(zip(trades.dtype.names or (), trade, strict=True))
        metadata = {
            "status": "open" if record["status"] == TradeStatus.Open else "closed",
            "exit_reason": EXIT_REASONS.get(record["exit_reason"], str(record["exit_reason"])),
            "exit_bar_timestamp": int(record["exit_ts"]) // 1000,
            "entry_index": int(record["entry_index"]),
            "exit_index": int(record["exit_index"]),
            "fees": finite_or_none(float(record["fees"])),
        }
        rows.append(
            (
                owner,
                n,
                uuid.uuid5(owner, str(n)),
                int(record["entry_ts"]) // 1000,
                "long" if record["direction"] == Direction.Long else "short",
                float(record["units"]),
                float(record["entry_price"]),
                float(record["exit_price"]),
                float(record["pnl"]),
                float(record["return"]) * 100.0,
                metadata,
            )
        )
    return rows
