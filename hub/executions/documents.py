"""What an execution's streams look like on the wire: one function per document.

The bus, REST and GraphQL all serve these documents, built by the same functions from the same
values, so an event replayed from Postgres is byte-for-byte the event published live.
Prices and money in events and trades are strings (seed 003) holding the shortest decimal that
round-trips the float exactly, in positional notation (never an exponent), so nothing a client
reads differs from what the engine computed. The status document is the domain's own: numbers,
with ``null`` for a metric that has no value; seed 003's two-decimal strings are made by the
Executions family at its edge.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import orjson

from engine.records import ExitReason
from hub.times import iso, iso_ns, ns_of

EXIT_REASONS = {
    ExitReason.NoExit: "open",
    ExitReason.Signal: "signal",
    ExitReason.StopLoss: "stop_loss",
    ExitReason.TakeProfit: "take_profit",
    ExitReason.MaxBars: "max_bars",
    ExitReason.Hours: "hours",
    ExitReason.Stopped: "stopped",
}


def num(value: float | None) -> str | None:
    """A float as seed 003 shows money and prices: a decimal string with every significant
    digit (the shortest that round-trips) and never an exponent ("0.00000996865616639383")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(float(value))
    if "e" in text:  # rare (below 1e-4 or from 1e16): the same digits, positionally
        text = format(Decimal(text), "f")
        if "." not in text:
            text += ".0"
    return text


def nums(values: np.ndarray) -> list[str | None]:
    """``num`` for an array: repr for the whole array at once, ``num`` itself only for the
    values repr writes with an exponent, and for NaN and the infinities."""
    floats = values.tolist()
    texts = list(map(repr, floats))
    joined = "".join(texts)
    if "e" not in joined and "n" not in joined:  # "n": nan, inf
        return texts  # type: ignore[return-value]
    return [num(v) if ("e" in t or "n" in t) else t for t, v in zip(texts, floats, strict=True)]


def num_tokens(values: np.ndarray) -> list[bytes]:
    """Each value's ``num`` as a JSON token, as orjson writes it in a document: the string in
    quotes, or ``null``."""
    texts = nums(values)
    if not texts:
        return []
    if None in texts:
        return [orjson.dumps(text) for text in texts]
    return ('"' + '"\x00"'.join(texts) + '"').encode().split(b"\x00")  # type: ignore[arg-type]


def number_tokens(values: list[Any]) -> list[bytes]:
    """Each number as orjson writes it in a document (floats in their shortest form)."""
    return orjson.dumps(values)[1:-1].split(b",") if values else []


def event_json(event_type: str, strategy_type: str, ts: int | str, event: bytes) -> bytes:
    """An execution event (``event`` is already-encoded JSON; ``ts`` ns or its ISO string)."""
    stamp = ts if isinstance(ts, str) else iso_ns(ts)
    return b'{"event_type":"%s","strategy_type":%s,"timestamp":"%s","event":%s}' % (
        event_type.encode(),
        orjson.dumps(strategy_type),
        stamp.encode(),
        event,
    )


def event_jsons(
    types: list[str], strategy_type: str, stamps: list[str], events: list[bytes]
) -> list[bytes]:
    """``event_json`` for consecutive events, the strategy encoded once."""
    strategy = orjson.dumps(strategy_type)
    return [
        b'{"event_type":"%s","strategy_type":%s,"timestamp":"%s","event":%s}'
        % (kind.encode(), strategy, stamp.encode(), event)
        for kind, stamp, event in zip(types, stamps, events, strict=True)
    ]


def iso_times(ns: np.ndarray) -> list[str]:
    """``iso_ns`` for an array, by numpy when every time is a whole second."""
    if len(ns) and np.all(ns % 1_000_000_000 == 0):
        seconds = (ns // 1_000_000_000).astype("datetime64[s]")
        return list(np.datetime_as_string(seconds, unit="s", timezone="UTC").tolist())
    return [iso_ns(t) for t in ns.tolist()]


def utc_datetimes(ns: np.ndarray) -> list[datetime]:
    """Aware datetimes (microseconds) for an array of ns, for COPY into timestamptz."""
    return [d.replace(tzinfo=UTC) for d in (ns // 1000).astype("datetime64[us]").tolist()]


def trade_doc(
    *,
    instrument: str,
    direction: str,
    status: str,
    entry_ts: int | str,  # ns, or already the ISO text
    entry_price: float,
    units: float,
    exit_ts: int | str,  # ns, or already the ISO text
    exit_price: float,
    pnl: float,
    fees: float,
    ret: float,
    exit_reason: str,
    entry_index: int,
    exit_index: int,
    details: dict[str, Any],
) -> dict[str, Any]:
    move = (exit_price - entry_price) if direction == "long" else (entry_price - exit_price)
    return {
        "instrument": instrument,
        "direction": direction,
        "status": status,
        "entry_time": entry_ts if isinstance(entry_ts, str) else iso_ns(entry_ts),
        "entry_price": num(entry_price),
        "units": units,
        "exit_time": exit_ts if isinstance(exit_ts, str) else iso_ns(exit_ts),
        "exit_price": num(exit_price),
        "pnl": num(pnl),
        "pips": num(move),
        "fees": num(fees),
        "return": num(ret),
        "exit_reason": exit_reason,
        "entry_index": entry_index,
        "exit_index": exit_index,
        "details": details,
    }


def trade_doc_from_row(row: Any) -> dict[str, Any]:
    return trade_doc(
        instrument=row["instrument"],
        direction=row["direction"],
        status=row["status"],
        entry_ts=ns_of(row["entry_time"]),
        entry_price=row["entry_price"],
        units=row["units"],
        exit_ts=ns_of(row["exit_time"]),
        exit_price=row["exit_price"],
        pnl=row["pnl"],
        fees=row["fees"],
        ret=row["return_pct"],
        exit_reason=row["exit_reason"],
        entry_index=row["entry_index"],
        exit_index=row["exit_index"],
        details=row["details"],
    )


def trade_json(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc)


def equity_json(ts_ns: int, balance: float) -> bytes:
    return b'{"timestamp":"%s","balance":%s}' % (
        iso_ns(ts_ns).encode(),
        orjson.dumps(float(balance)),
    )


def equity_jsons(ts: np.ndarray, balance: np.ndarray) -> list[bytes]:
    """``equity_json`` for whole arrays, formatted by numpy and orjson rather than per point."""
    if not len(ts):
        return []
    if not np.all(ts % 1_000_000_000 == 0):
        return [equity_json(t, b) for t, b in zip(ts.tolist(), balance.tolist(), strict=True)]
    stamps = np.datetime_as_string(
        (ts // 1_000_000_000).astype("datetime64[s]"), unit="s", timezone="UTC"
    ).astype("S")
    values = orjson.dumps(balance.tolist())[1:-1].split(b",")
    return [
        b'{"timestamp":"%s","balance":%s}' % pair
        for pair in zip(stamps.tolist(), values, strict=True)
    ]


# The metrics a checkpoint carries, in seed 003's order.
COUNT_METRICS = ("total_trades", "winning_trades", "losing_trades")
VALUE_METRICS = (
    "total_return",
    "total_pnl",
    "realized_pnl",
    "unrealized_pnl",
    "win_rate",
    "max_drawdown",
    "max_drawdown_pct",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "profit_factor",
    "average_win",
    "average_loss",
    "exposure",
)


def checkpoint_document(row: Any) -> dict[str, Any]:
    """A checkpoint row as the domain sees it: numbers, ``None`` where a metric has no value
    (no trades yet, no losses, no variance)."""
    metrics = row["metrics"]
    doc: dict[str, Any] = {"id": row["id"], "processed": int(row["processed"])}
    for key in COUNT_METRICS:
        doc[key] = int(metrics.get(key) or 0)
    for key in VALUE_METRICS:
        value = metrics.get(key)
        doc[key] = None if value is None else float(value)
    doc["created_at"] = iso(row["created_at"])
    return doc


def status_document(row: Any, checkpoint: Any | None) -> dict[str, Any]:
    """The execution's state, as topic ``execution:{id}:status`` carries it."""
    return {
        "execution_id": row["execution_id"],
        "task_type": row["task_type"],
        "task_id": row["task_id"],
        "execution_number": row["execution_number"],
        "status": row["status"],
        "progress": float(row["progress"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
        "error_message": row["error_message"],
        "has_checkpoint": checkpoint is not None,
        "checkpoint": checkpoint_document(checkpoint) if checkpoint is not None else None,
    }


def clean_metrics(metrics: dict[str, float]) -> dict[str, Any]:
    """Metrics for a jsonb column: NaN (undefined) becomes null."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        number = float(value)
        out[key] = None if math.isnan(number) else (None if math.isinf(number) else number)
    return out
