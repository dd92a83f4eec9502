"""GraphQL for live runs: ``startLive``. Reading, stopping and following a live run are the
execution's own fields and subscriptions (``execution``, ``stopExecution``, ``equity``...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest, fields_named
from hub.executions.model import LiveRequest
from hub.gql.context import Context

if TYPE_CHECKING:
    from hub.executions.gql_types import Execution

LazyExecution = Annotated["Execution", strawberry.lazy("hub.executions.gql_types")]

INPUT_FIELDS = {
    "account_id": "account",
    "initial_capital": "initialCapital",
}


@strawberry.input(description="A live paper run: a bar strategy trading a symbol's ticks.")
class StartLiveInput:
    strategy: str = strawberry.field(
        description="sma_crossover, ema_crossover, rsi_reversion or bollinger_breakout"
    )
    params: JSON | None = strawberry.field(
        default=None, description="the strategy's parameters (its defaults when omitted)"
    )
    symbol: str
    timeframe: str = strawberry.field(default="1m", description="the bars it trades on")
    account: str = strawberry.field(description="your paper account's id")
    initial_capital: float | None = strawberry.field(
        default=None, description="the capital it sizes from (the account's cash when omitted)"
    )
    options: JSON | None = strawberry.field(
        default=None, description="direction, sizing, size, close_on_stop"
    )


async def start_live(info: Info[Context, None], input: StartLiveInput) -> LazyExecution:
    from hub.executions.gql_types import Execution

    ctx = info.context
    params: Any = {} if input.params is None else input.params
    options: Any = {} if input.options is None else input.options
    if not isinstance(params, dict) or not isinstance(options, dict):
        raise BadRequest("params and options must be JSON objects", field="params")
    with fields_named(INPUT_FIELDS):
        row = await ctx.state.executions.start_live(
            ctx.require_identity(),
            LiveRequest(
                strategy=input.strategy,
                params=params,
                symbol=input.symbol,
                timeframe=input.timeframe,
                account_id=input.account,
                initial_capital=input.initial_capital,
                options=options,
            ),
        )
    return Execution.from_row(row)


@strawberry.type
class LiveMutation:
    start_live: LazyExecution = strawberry.mutation(
        resolver=start_live,
        description="Start a live paper run (a worker runs it until stopped).",
    )
