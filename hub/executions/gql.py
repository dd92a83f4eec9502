"""GraphQL for executions: the query, mutation and subscription roots and their resolvers
(queries with nested streams, start/stop, and the live subscriptions). The types they return are
in ``gql_types``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest, fields_named
from hub.executions.gql_types import (
    EquityPoint,
    Execution,
    ExecutionEvent,
    StartBacktestInput,
    StatusUpdate,
    Strategy,
    StrategyParam,
    Trade,
    checkpoint_of,
)
from hub.executions.livegql import LiveMutation
from hub.executions.model import BacktestRequest, EventType, ExecutionStatus
from hub.executions.service import parse_execution_id
from hub.executions.topics import status_topic, stream_topic
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.streams import stream_topic as follow
from hub.subscription import Event
from hub.times import parse_iso as parse_time

# The domain's field names that GraphQL's startBacktest input names otherwise.
INPUT_FIELDS = {"symbols": "symbol", "initial_capital": "initialCapital"}


async def resolve_execution(info: Info[Context, None], id: strawberry.ID) -> Execution:
    ctx = info.context
    return Execution.from_row(await ctx.state.executions.get(ctx.require_identity(), str(id)))


async def resolve_executions(
    info: Info[Context, None],
    status: ExecutionStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    task_type: Annotated[
        str | None, strawberry.argument(description="backtest or live (every type when omitted)")
    ] = None,
) -> list[Execution]:
    ctx = info.context
    if not 1 <= limit <= 500 or offset < 0:
        raise BadRequest(
            f"limit must be 1-500 and offset not negative, got {limit}, {offset}", field="limit"
        )
    rows = await ctx.state.executions.list(
        ctx.require_identity(),
        status=status.value if status else None,
        limit=limit,
        offset=offset,
        task_type=task_type,
    )
    return [Execution.from_row(r) for r in rows]


def resolve_strategies(info: Info[Context, None]) -> list[Strategy]:
    from engine.backtest import describe_strategies

    info.context.require_identity()
    return [
        Strategy(
            name=s["name"],
            description=s["description"],
            params=[
                StrategyParam(
                    name=p["name"],
                    type=p["type"],
                    default=p["default"],
                    bounds=JSON(list(p["bounds"]) if p["bounds"] is not None else None),
                    description=p["description"],
                )
                for p in s["params"]
            ],
        )
        for s in describe_strategies()
    ]


async def start_backtest(info: Info[Context, None], input: StartBacktestInput) -> Execution:
    ctx = info.context
    params: Any = {} if input.params is None else input.params
    options: Any = {} if input.options is None else input.options
    if not isinstance(params, dict) or not isinstance(options, dict):
        raise BadRequest("params and options must be JSON objects", field="params")
    with fields_named(INPUT_FIELDS):
        row = await ctx.state.executions.start_backtest(
            ctx.require_identity(),
            BacktestRequest(
                strategy=input.strategy,
                params=params,
                symbols=[input.symbol],
                timeframe=input.timeframe,
                start=input.start,
                end=input.end,
                initial_capital=input.initial_capital,
                options=options,
            ),
        )
    return Execution.from_row(row)


async def stop_execution(
    info: Info[Context, None],
    id: strawberry.ID,
    keep_position: Annotated[
        bool | None,
        strawberry.argument(
            description="a live run: true keeps its position open, false closes it at market "
            "(default: the run's close_on_stop option, which closes it)"
        ),
    ] = None,
) -> Execution:
    ctx = info.context
    row = await ctx.state.executions.stop(
        ctx.require_identity(), str(id), keep_position=keep_position
    )
    return Execution.from_row(row)


async def execution_events(
    info: Info[Context, None],
    execution_id: strawberry.ID,
    since_sequence: int | None = None,
    event_type: EventType | None = None,
) -> AsyncGenerator[ExecutionEvent, None]:
    """The execution's events after ``sinceSequence`` (from now when omitted), then live."""
    topic = stream_topic(parse_execution_id(str(execution_id)), "events")
    async for event in follow(info, topic, since_sequence):
        doc = event.data()
        if event_type is not None and doc["event_type"] != event_type.value:
            continue
        yield event.keyed(
            ExecutionEvent(
                sequence=event.seq,
                event_type=EventType(doc["event_type"]),
                strategy_type=doc["strategy_type"],
                timestamp=datetime.fromisoformat(doc["timestamp"]),
                event=doc["event"],
            )
        )


async def execution_trades(
    info: Info[Context, None], execution_id: strawberry.ID, since_sequence: int | None = None
) -> AsyncGenerator[Trade, None]:
    topic = stream_topic(parse_execution_id(str(execution_id)), "trades")
    async for event in follow(info, topic, since_sequence):
        yield event.memo("trade", partial(_trade, event))


def _trade(event: Event) -> Trade:
    return event.keyed(Trade.from_document(event.seq, event.data()))


async def equity(
    info: Info[Context, None], execution_id: strawberry.ID, since_sequence: int | None = None
) -> AsyncGenerator[EquityPoint, None]:
    topic = stream_topic(parse_execution_id(str(execution_id)), "equity")
    async for event in follow(info, topic, since_sequence):
        doc = event.data()
        yield event.keyed(
            EquityPoint(
                sequence=event.seq,
                timestamp=parse_time(doc["timestamp"]),  # type: ignore[arg-type]
                balance=doc["balance"],
            )
        )


async def execution_status(
    info: Info[Context, None], execution_id: strawberry.ID
) -> AsyncGenerator[StatusUpdate, None]:
    """The current status first, then each change, until the execution ends."""
    topic = status_topic(parse_execution_id(str(execution_id)))
    async for event in follow(info, topic, None):
        doc = event.data()
        yield event.keyed(
            StatusUpdate(
                sequence=event.seq,
                status=ExecutionStatus(doc["status"]),
                progress=doc["progress"],
                error_message=doc["error_message"],
                checkpoint=checkpoint_of(doc["checkpoint"]),
            )
        )
        if ExecutionStatus(doc["status"]).terminal:
            return


@strawberry.type
class Query:
    execution: Execution = strawberry.field(
        resolver=resolve_execution, description="One of your executions."
    )
    executions: list[Execution] = strawberry.field(
        resolver=resolve_executions,
        metadata=rows("limit", 50),
        description="Your executions (every one, for an admin), newest first.",
    )
    strategies: list[Strategy] = strawberry.field(
        resolver=resolve_strategies,
        metadata=rows(fixed=20),
        description="Every strategy with its parameter schema and defaults.",
    )


@strawberry.type
class Mutation(LiveMutation):
    start_backtest: Execution = strawberry.mutation(
        resolver=start_backtest, description="Start a backtest execution (a job runs it)."
    )
    stop_execution: Execution = strawberry.mutation(
        resolver=stop_execution,
        description="Stop an execution: a backtest at its next chunk, a live run at once "
        "(its working orders cancelled, its position closed unless kept).",
    )


@strawberry.type
class Subscription:
    # strawberry types subscription(resolver=...) as the resolver's return type, the
    # AsyncGenerator, not the item type that the schema field has.
    execution_events: ExecutionEvent = strawberry.subscription(resolver=execution_events)  # type: ignore[assignment]
    execution_trades: Trade = strawberry.subscription(resolver=execution_trades)  # type: ignore[assignment]
    equity: EquityPoint = strawberry.subscription(resolver=equity)  # type: ignore[assignment]
    execution_status: StatusUpdate = strawberry.subscription(resolver=execution_status)  # type: ignore[assignment]
