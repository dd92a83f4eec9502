"""GraphQL over HTTP with the documents of ``graphql/operations/``: ``execute`` runs any of them
by name; the typed helpers run the main ones and validate their answers. Subscriptions are not
run here: follow their topics with ``subscribe`` on ``/ws``."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter

from tradehub_client import gql_models as g
from tradehub_client import operations
from tradehub_client.errors import GraphQLError
from tradehub_client.http import AsyncHttp

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class GraphQLApi:
    def __init__(self, http: AsyncHttp) -> None:
        self._http = http

    async def execute(
        self, operation_name: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The ``data`` of the named operation; :class:`GraphQLError` when it answers errors."""
        operation = operations.get(operation_name)
        if operation.kind == "subscription":
            raise ValueError(
                f"{operation_name} is a subscription: follow its topic with subscribe() on /ws"
            )
        return await self.execute_document(operation.document, variables, operation.name)

    async def execute_document(
        self, document: str, variables: dict[str, Any] | None = None, name: str | None = None
    ) -> dict[str, Any]:
        body = await self._http.request(
            "POST",
            "/graphql",
            json={"query": document, "variables": variables or {}},
            refused=_unauthorized,
        )
        if body.get("errors"):
            raise GraphQLError(name or "operation", body["errors"])
        data: dict[str, Any] = body.get("data") or {}
        return data

    async def _one(self, name: str, field: str, model: type[M], **variables: Any) -> M:
        data = await self.execute(name, _drop_none(variables))
        return model.model_validate(data[field])

    async def _many(self, name: str, field: str, model: type[M], **variables: Any) -> list[M]:
        data = await self.execute(name, _drop_none(variables))
        return TypeAdapter(list[model]).validate_python(data[field])  # type: ignore[valid-type]

    # -- who and how ----------------------------------------------------------------------

    async def me(self) -> g.Me:
        return await self._one("Me", "me", g.Me)

    async def health(self) -> g.Health:
        return await self._one("Health", "health", g.Health)

    # -- accounts and orders --------------------------------------------------------------

    async def accounts(self) -> list[g.Account]:
        return await self._many("Accounts", "accounts", g.Account)

    async def account(self, account_id: str) -> g.Account:
        return await self._one("Account", "account", g.Account, id=account_id)

    async def create_paper_account(self, name: str, **options: Any) -> g.Account:
        """A paper account; ``options`` in the schema's words: ``initialBalance``, ``feeRate``,
        ``slippageBps``, ``maxOrdersPerSecond``..."""
        return await self._one(
            "CreatePaperAccount", "createPaperAccount", g.Account, input={"name": name, **options}
        )

    async def orders(
        self,
        account_id: str,
        *,
        status: list[str] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[g.Order]:
        return await self._many(
            "Orders",
            "orders",
            g.Order,
            accountId=account_id,
            status=status,
            limit=limit,
            offset=offset,
        )

    async def place_order(
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
        order = _drop_none(
            {
                "accountId": account_id,
                "symbol": symbol,
                "side": side.upper(),
                "type": type.upper(),
                "quantity": quantity,
                "price": price,
                "stopPrice": stop_price,
                "timeInForce": time_in_force.upper() if time_in_force else None,
                "clientOrderId": client_order_id,
            }
        )
        return await self._one("PlaceOrder", "placeOrder", g.Order, input=order)

    async def cancel_order(self, order_id: str) -> g.Order:
        return await self._one("CancelOrder", "cancelOrder", g.Order, id=order_id)

    async def cancel_all_orders(self, account_id: str) -> list[g.Order]:
        return await self._many("CancelAllOrders", "cancelAllOrders", g.Order, accountId=account_id)

    async def positions(self, account_id: str) -> g.Positions:
        return await self._one("Positions", "positions", g.Positions, accountId=account_id)

    async def balances(self, account_id: str) -> g.Balances:
        return await self._one("Balances", "balances", g.Balances, accountId=account_id)

    # -- executions -----------------------------------------------------------------------

    async def execution(self, execution_id: str, *, max_points: int | None = None) -> g.Execution:
        return await self._one(
            "Execution", "execution", g.Execution, id=execution_id, maxPoints=max_points
        )

    async def start_backtest(
        self, strategy: str, symbol: str, *, timeframe: str | None = None, **options: Any
    ) -> g.BacktestStarted:
        """``options`` in the schema's words: ``params``, ``start``, ``end``,
        ``initialCapital``, ``options``."""
        given = _drop_none({"strategy": strategy, "symbol": symbol, "timeframe": timeframe})
        return await self._one(
            "StartBacktest", "startBacktest", g.BacktestStarted, input={**given, **options}
        )

    async def start_live(
        self,
        strategy: str,
        symbol: str,
        account: str,
        *,
        timeframe: str | None = None,
        **options: Any,
    ) -> g.LiveStarted:
        given = _drop_none(
            {"strategy": strategy, "symbol": symbol, "account": account, "timeframe": timeframe}
        )
        return await self._one("StartLive", "startLive", g.LiveStarted, input={**given, **options})

    async def stop_execution(self, execution_id: str) -> g.ExecutionStopped:
        return await self._one(
            "StopExecution", "stopExecution", g.ExecutionStopped, id=execution_id
        )

    # -- jobs and market data ---------------------------------------------------------------

    async def job(self, job_id: str) -> g.Job:
        return await self._one("Job", "job", g.Job, id=job_id)

    async def jobs(
        self,
        *,
        job_type: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> g.JobPage:
        return await self._one(
            "Jobs", "jobs", g.JobPage, jobType=job_type, status=status, limit=limit, offset=offset
        )

    async def cancel_job(self, job_id: str) -> g.JobCancel:
        return await self._one("CancelJob", "cancelJob", g.JobCancel, id=job_id)

    async def candles(
        self, symbol: str, timeframe: str, *, limit: int | None = None, **window: Any
    ) -> list[g.Candle]:
        """``window``: ``start`` and ``end`` as ISO 8601 strings."""
        return await self._many(
            "Candles",
            "candles",
            g.Candle,
            symbol=symbol,
            timeframe=timeframe,
            limit=limit,
            **window,
        )


def _unauthorized(body: Any) -> str | None:
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        if (error.get("extensions") or {}).get("code") == "UNAUTHORIZED":
            return str(error.get("message", "unauthorized"))
    return None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
