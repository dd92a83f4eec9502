"""The blocking faces of the async namespaces (``executions``, ``trading``, ``gql``) for
:class:`tradehub_client.Client`: the same methods, arguments and typed results, each call
waiting for its answer on the client's loop."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from tradehub_client import gql_models as g
from tradehub_client import models as m
from tradehub_client.gql import GraphQLApi
from tradehub_client.rest import ExecutionsApi, TradingApi

T = TypeVar("T")


class Runner(Protocol):
    """Runs a coroutine on the client's loop and waits for its result."""

    def __call__(self, work: Coroutine[Any, Any, T], /) -> T: ...


class _Blocking:
    def __init__(self, call: Runner) -> None:
        self._call = call


class BlockingExecutions(_Blocking):
    """Seed 003's routes; see :class:`tradehub_client.rest.ExecutionsApi`."""

    def __init__(self, call: Runner, api: ExecutionsApi) -> None:
        super().__init__(call)
        self._api = api

    def status(self, execution_id: int | str) -> m.ExecutionState:
        return self._call(self._api.status(execution_id))

    def events(
        self,
        execution_id: int | str,
        *,
        since_sequence: int | None = None,
        event_type: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> m.ExecutionEvents:
        return self._call(
            self._api.events(
                execution_id,
                since_sequence=since_sequence,
                event_type=event_type,
                page=page,
                page_size=page_size,
            )
        )

    def trades(
        self,
        execution_id: int | str,
        *,
        since_sequence: int | None = None,
        instrument: str | None = None,
        direction: str | None = None,
        page: int | None = None,
        page_size: int | None = None,
    ) -> m.ExecutionTrades:
        return self._call(
            self._api.trades(
                execution_id,
                since_sequence=since_sequence,
                instrument=instrument,
                direction=direction,
                page=page,
                page_size=page_size,
            )
        )

    def equity(
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
        return self._call(
            self._api.equity(
                execution_id,
                since_sequence=since_sequence,
                start_time=start_time,
                end_time=end_time,
                max_points=max_points,
                page=page,
                page_size=page_size,
            )
        )

    def latest_metrics(self, execution_id: int | str) -> m.LatestMetrics:
        return self._call(self._api.latest_metrics(execution_id))


class BlockingTrading(_Blocking):
    """Seed 002's ORCA reads; see :class:`tradehub_client.rest.TradingApi`."""

    def __init__(self, call: Runner, api: TradingApi) -> None:
        super().__init__(call)
        self._api = api

    def health(self) -> m.TradingHealth:
        return self._call(self._api.health())

    def accounts(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingAccounts:
        return self._call(
            self._api.accounts(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def positions(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingPositions:
        return self._call(
            self._api.positions(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def position_ids(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingPositionIds:
        return self._call(
            self._api.position_ids(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def pending_orders(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingOrders:
        return self._call(
            self._api.pending_orders(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def pending_order_ids(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingOrderIds:
        return self._call(
            self._api.pending_order_ids(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def balances(
        self,
        *,
        account_ids: Sequence[str] | None = None,
        account_name: str | None = None,
        use_cache: bool | None = None,
    ) -> m.TradingBalances:
        return self._call(
            self._api.balances(
                account_ids=account_ids, account_name=account_name, use_cache=use_cache
            )
        )

    def snapshot(
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
        return self._call(
            self._api.snapshot(
                account_ids=account_ids,
                account_name=account_name,
                use_cache=use_cache,
                include_accounts=include_accounts,
                include_positions=include_positions,
                include_orders=include_orders,
                include_balances=include_balances,
            )
        )


class BlockingGraphQL(_Blocking):
    """The GraphQL operations; see :class:`tradehub_client.gql.GraphQLApi`."""

    def __init__(self, call: Runner, api: GraphQLApi) -> None:
        super().__init__(call)
        self._api = api

    def execute(
        self, operation_name: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._call(self._api.execute(operation_name, variables))

    def me(self) -> g.Me:
        return self._call(self._api.me())

    def health(self) -> g.Health:
        return self._call(self._api.health())

    def accounts(self) -> list[g.Account]:
        return self._call(self._api.accounts())

    def account(self, account_id: str) -> g.Account:
        return self._call(self._api.account(account_id))

    def create_paper_account(self, name: str, **options: Any) -> g.Account:
        return self._call(self._api.create_paper_account(name, **options))

    def orders(
        self,
        account_id: str,
        *,
        status: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[g.Order]:
        return self._call(self._api.orders(account_id, status=status, limit=limit, offset=offset))

    def place_order(
        self,
        account_id: str,
        symbol: str,
        side: str,
        quantity: float,
        *,
        type: str = "MARKET",
        price: float | None = None,
        stop_price: float | None = None,
        time_in_force: str | None = None,
        client_order_id: str | None = None,
    ) -> g.Order:
        return self._call(
            self._api.place_order(
                account_id,
                symbol,
                side,
                quantity,
                type=type,
                price=price,
                stop_price=stop_price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
            )
        )

    def cancel_order(self, order_id: str) -> g.Order:
        return self._call(self._api.cancel_order(order_id))

    def cancel_all_orders(self, account_id: str) -> list[g.Order]:
        return self._call(self._api.cancel_all_orders(account_id))

    def positions(self, account_id: str) -> g.Positions:
        return self._call(self._api.positions(account_id))

    def balances(self, account_id: str) -> g.Balances:
        return self._call(self._api.balances(account_id))

    def execution(self, execution_id: str, *, max_points: int | None = None) -> g.Execution:
        return self._call(self._api.execution(execution_id, max_points=max_points))

    def start_backtest(
        self, strategy: str, symbol: str, *, timeframe: str | None = None, **options: Any
    ) -> g.BacktestStarted:
        return self._call(
            self._api.start_backtest(strategy, symbol, timeframe=timeframe, **options)
        )

    def start_live(
        self,
        strategy: str,
        symbol: str,
        account: str,
        *,
        timeframe: str | None = None,
        **options: Any,
    ) -> g.LiveStarted:
        return self._call(
            self._api.start_live(strategy, symbol, account, timeframe=timeframe, **options)
        )

    def stop_execution(self, execution_id: str) -> g.ExecutionStopped:
        return self._call(self._api.stop_execution(execution_id))

    def job(self, job_id: str) -> g.Job:
        return self._call(self._api.job(job_id))

    def jobs(
        self,
        *,
        job_type: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> g.JobPage:
        return self._call(
            self._api.jobs(job_type=job_type, status=status, limit=limit, offset=offset)
        )

    def cancel_job(self, job_id: str) -> g.JobCancel:
        return self._call(self._api.cancel_job(job_id))

    def candles(
        self, symbol: str, timeframe: str, *, limit: int | None = None, **window: Any
    ) -> list[g.Candle]:
        return self._call(self._api.candles(symbol, timeframe, limit=limit, **window))
