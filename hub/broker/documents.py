"""The broker's documents as the bus carries them and every interface starts from: orders,
order events, positions and balances, in domain words and plain numbers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hub.broker.ledger import Position
from hub.times import iso


def order_document(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "order_id": str(row["order_id"]),
        "account_id": row["account_id"],
        "client_order_id": row["client_order_id"],
        "symbol": row["symbol"],
        "side": row["side"],
        "type": row["type"],
        "quantity": row["quantity"],
        "price": row["price"],
        "stop_price": row["stop_price"],
        "time_in_force": row["time_in_force"],
        "status": row["status"],
        "reject_reason": row["reject_reason"],
        "filled_quantity": row["filled_quantity"],
        "average_price": row["average_price"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "expires_at": iso(row["expires_at"]),
    }


def order_event(
    event: str, row: Mapping[str, Any], fill: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One entry of ``account:{id}:orders``: what happened, the order after it, and the fill."""
    return {"event": event, "order": order_document(row), "fill": fill}


def account_document(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "account_id": row["account_id"],
        "name": row["name"],
        "broker": row["broker"],
        "currency": row["currency"],
        "active": row["active"],
        "initial_balance": row["initial_balance"],
        "fee_rate": row["fee_rate"],
        "slippage_bps": row["slippage_bps"],
        "max_order_quantity": row["max_order_quantity"],
        "max_position": row["max_position"],
        "max_order_notional": row["max_order_notional"],
        "max_orders_per_second": row["max_orders_per_second"],
        "created_at": iso(row["created_at"]),
    }


def position_document(row: Mapping[str, Any], mark: float | None) -> dict[str, Any]:
    held = Position(row["quantity"], row["average_price"], row["realized_pnl"])
    return {
        "position_id": str(row["position_id"]),
        "account_id": row["account_id"],
        "symbol": row["symbol"],
        "quantity": held.quantity,
        "average_price": held.average_price,
        "realized_pnl": held.realized_pnl,
        "last_price": mark,
        "unrealized_pnl": held.unrealized(mark),
        "market_value": held.quantity * mark if mark is not None else None,
    }


def positions_document(
    account_id: str, rows: Iterable[Mapping[str, Any]], marks: Mapping[str, float]
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "positions": [position_document(row, marks.get(row["symbol"])) for row in rows],
    }


def balances_document(account: Mapping[str, Any], positions: Mapping[str, Any]) -> dict[str, Any]:
    """Balance = initial + realized - fees; net liquidating value = balance + open P&L
    (which also equals cash + the positions' market value)."""
    open_pnl = sum(p["unrealized_pnl"] for p in positions["positions"])
    balance = account["initial_balance"] + account["realized_pnl"] - account["fees_paid"]
    return {
        "account_id": account["account_id"],
        "currency": account["currency"],
        "initial_balance": account["initial_balance"],
        "cash": account["cash"],
        "balance": balance,
        "net_liquidating_value": balance + open_pnl,
        "open_pnl": open_pnl,
        "realized_pnl": account["realized_pnl"],
        "fees_paid": account["fees_paid"],
    }
