"""The REST families, typed: seed 003's executions and seed 002's ORCA trading reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tradehub_client import models as m
from tradehub_client.http import AsyncHttp

EXECUTIONS = "/api/trading/executions"
TRADING = "/api/v1/trading"


class ExecutionsApi:
    """``/api/trading/executions/{id}/...``: status, events, trades, equity, latest metrics."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def status(self, execution_id: int | str) -> m.ExecutionState:
        return await self._http.get(f"{EXECUTIONS}/{execution_id}/status/", m.ExecutionState)

    async def events(
        self,
        execution_id: int | str,
        *,
        since_sequence: int | None = None,
        event_type: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> m.ExecutionEvents:
        return await self._http.get(
            f"{EXECUTIONS}/{execution_id}/events/",
            m.ExecutionEvents,
            since_sequence=since_sequence,
            event_type=event_type,
            page=page,
            page_size=page_size,
        )

    async def trades(
        self,
        execution_id: int | str,
        *,
        since_sequence: int | None = None,
        instrument: str | None = None,
        direction: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> m.ExecutionTrades:
        return await self._http.get(
            f"{EXECUTIONS}/{execution_id}/trades/",
            m.ExecutionTrades,
            since_sequence=since_sequence,
            instrument=instrument,
            direction=direction,
            page=page,
            page_size=page_size,
        )

    async def equity(
        self,
        execution_id: int | str,
        *,
        since_sequence: int | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_points: int | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> m.ExecutionEquity:
        return await self._http.get(
            f"{EXECUTIONS}/{execution_id}/equity/",
            m.ExecutionEquity,
            since_sequence=since_sequence,
            start_time=start_time,
            end_time=end_time,
            max_points=max_points,
            page=page,
            page_size=page_size,
        )

    async def latest_metrics(self, execution_id: int | str) -> m.LatestMetrics:
        return await self._http.get(f"{EXECUTIONS}/{execution_id}/metrics/latest/", m.LatestMetrics)


class TradingApi:
    """``/api/v1/trading/...``: the caller's broker accounts, positions, pending orders and
    balances in ORCA's words. ``account_ids`` narrows to those accounts, ``account_name`` to the
    one so named; ``use_cache`` takes the hub's short-lived copy when it has one."""

    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def health(self) -> m.TradingHealth:
        return await self._http.get(f"{TRADING}/health", m.TradingHealth)

    async def accounts(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingAccounts:
        return await self._http.get(
            f"{TRADING}/accounts",
            m.TradingAccounts,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def positions(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingPositions:
        return await self._http.get(
            f"{TRADING}/positions",
            m.TradingPositions,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def position_ids(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingPositionIds:
        return await self._http.get(
            f"{TRADING}/positions/ids",
            m.TradingPositionIds,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def pending_orders(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingOrders:
        return await self._http.get(
            f"{TRADING}/orders/pending",
            m.TradingOrders,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def pending_order_ids(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingOrderIds:
        return await self._http.get(
            f"{TRADING}/orders/pending/ids",
            m.TradingOrderIds,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def balances(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingBalances:
        return await self._http.get(
            f"{TRADING}/balances",
            m.TradingBalances,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
        )

    async def snapshot(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
        include_accounts: bool | None = None,
        include_positions: bool | None = None,
        include_orders: bool | None = None,
        include_balances: bool | None = None,
    ) -> m.TradingSnapshot:
        return await self._http.get(
            f"{TRADING}/batch/snapshot",
            m.TradingSnapshot,
            account_ids=account_ids,
            account_name=account_name,
            use_cache=use_cache,
            include_accounts=include_accounts,
            include_positions=include_positions,
            include_orders=include_orders,
            include_balances=include_balances,
        )
