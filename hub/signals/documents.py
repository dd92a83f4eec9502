"""A signal as every interface shows it (Sigma Lab's REST, GraphQL, ``/ws``, webhooks)."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.datasets.timeframes import timeframe_ns
from hub.jsonnum import whole
from hub.times import iso_ns, ns_of


def signal_document(
    *,
    signal_id: str,
    model_id: str,
    ticker: str,
    timeframe: str,
    action: str,
    quantity: float,
    price: float,
    bar_ts: int,
    status: str,
    confidence: float,
    expected_return: float | None,
    realized_return: float | None = None,
    version_id: str | None = None,
) -> dict[str, Any]:
    """Seed 001's fields; ``timestamp`` is when the bar it was judged on closed (the moment the
    signal could be known), ``bar_start`` that bar's start."""
    return {
        "signal_id": signal_id,
        "model_id": model_id,
        "ticker": ticker,
        "action": action,
        "quantity": whole(quantity),
        "price": price,
        "timestamp": iso_ns(bar_ts + timeframe_ns(timeframe)),
        "status": status,
        "confidence": confidence,
        "expected_return": expected_return,
        "realized_return": realized_return,
        "bar_start": iso_ns(bar_ts),
        "timeframe": timeframe,
        "version_id": version_id,
    }


def document_of_row(row: asyncpg.Record) -> dict[str, Any]:
    return signal_document(
        signal_id=row["signal_id"],
        model_id=row["model_id"],
        ticker=row["ticker"],
        timeframe=row["timeframe"],
        action=row["action"],
        quantity=row["quantity"],
        price=row["price"],
        bar_ts=ns_of(row["bar_ts"]),
        status=row["status"],
        confidence=row["confidence"],
        expected_return=row["expected_return"],
        realized_return=row["realized_return"],
        version_id=row["version_id"],
    )


def event_of(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """What ``signals:{model_id}`` carries: ``signal.generated`` when a signal is emitted,
    ``signal.filled`` or ``signal.cancelled`` when it ends; each the whole signal as it is
    then."""
    return {"event": kind, **doc}
