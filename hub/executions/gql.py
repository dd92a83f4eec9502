"""GraphQL for executions: queries with nested streams, start/stop, and the live subscriptions."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Annotated, Any

import orjson
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest, fields_named
from hub.executions.documents import checkpoint_document, trade_doc_from_row
from hub.executions.livegql import LiveMutation
from hub.executions.model import BacktestRequest, EventType, ExecutionStatus
from hub.executions.service import parse_execution_id
from hub.executions.topics import status_topic, stream_topic
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.paced import paced
from hub.gql.streams import stream_topic as follow
from hub.subscription import Event
from hub.times import checked_ns, datetime_of_ns
from hub.times import parse_iso as parse_time

strawberry.enum(ExecutionStatus)  # the domain enum, as a GraphQL enum of the same name
strawberry.enum(EventType)  # the domain enum, as a GraphQL enum of the same name

# The domain's field names that GraphQL's startBacktest input names otherwise.
INPUT_FIELDS = {"symbols": "symbol", "initial_capital": "initialCapital"}


@strawberry.type
class Checkpoint:
    id: strawberry.ID
    processed: float
    metrics: JSON = strawberry.field(
        description="The checkpoint's metrics as numbers (null when a metric has no value yet)"
    )
    created_at: datetime | None


@strawberry.type
class ExecutionEvent:
    sequence: int
    event_type: EventType
    strategy_type: str
    timestamp: datetime
    event: JSON


@strawberry.type
class Trade:
    sequence: int
    instrument: str
    direction: str
    status: str
    entry_time: datetime
    entry_price: float
    exit_time: datetime
    exit_price: float
    units: float
    pnl: float
    fees: float
    exit_reason: str
    entry_index: float
    exit_index: float
    details: JSON

    @classmethod
    def from_document(cls, sequence: int, doc: dict[str, Any]) -> Trade:
        return cls(
            sequence=sequence,
            instrument=doc["instrument"],
            direction=doc["direction"],
            status=doc["status"],
            entry_time=parse_time(doc["entry_time"]),  # type: ignore[arg-type]
            entry_price=float(doc["entry_price"]),
            exit_time=parse_time(doc["exit_time"]),  # type: ignore[arg-type]
            exit_price=float(doc["exit_price"]),
            units=float(doc["units"]),
            pnl=float(doc["pnl"]),
            fees=float(doc["fees"]),
            exit_reason=doc["exit_reason"],
            entry_index=doc["entry_index"],
            exit_index=doc["exit_index"],
            details=doc["details"],
        )


@strawberry.type
class EquityPoint:
    sequence: int
    timestamp: datetime
    balance: float


@strawberry.type
class StatusUpdate:
    sequence: int
    status: ExecutionStatus
    progress: float
    error_message: str | None
    checkpoint: Checkpoint | None


def _checkpoint(doc: dict[str, Any] | None) -> Checkpoint | None:
    if doc is None:
        return None
    return Checkpoint(
        id=strawberry.ID(str(doc["id"])),
        processed=doc["processed"],
        metrics=JSON(doc),
        created_at=parse_time(doc.get("created_at")),
    )


# Execution fields served as the row stores them.
_AS_STORED = (
    "execution_number", "task_type", "strategy", "params", "timeframe", "processed", "total",
    "error_message", "final_value", "started_at", "completed_at", "created_at", "account_id",
    "mode",
)  # fmt: skip


@strawberry.type
class Execution:
    execution_id: strawberry.ID
    task_id: strawberry.ID
    execution_number: int
    task_type: str
    strategy: str
    params: JSON
    symbols: list[str]
    timeframe: str
    initial_capital: float
    status: ExecutionStatus
    progress: float
    processed: float
    total: float
    error_message: str | None
    final_value: float | None
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    account_id: str | None = strawberry.field(description="a live run's broker account")
    mode: str = strawberry.field(description="backtest, or paper for a live paper run")

    @classmethod
    def from_row(cls, row: Any) -> Execution:
        return cls(
            **{name: row[name] for name in _AS_STORED},
            execution_id=strawberry.ID(str(row["execution_id"])),
            task_id=strawberry.ID(str(row["task_id"])),
            symbols=list(row["symbols"]),
            initial_capital=float(row["initial_capital"]),
            status=ExecutionStatus(row["status"]),
            progress=float(row["progress"]),
        )

    @strawberry.field
    async def latest_checkpoint(self, info: Info[Context, None]) -> Checkpoint | None:
        row = await info.context.state.executions.latest_checkpoint(int(self.execution_id))
        return None if row is None else _checkpoint(checkpoint_document(row))

    @strawberry.field(metadata=rows("limit", 1000))  # type: ignore[untyped-decorator]
    async def events(
        self,
        info: Info[Context, None],
        since_sequence: int = 0,
        event_type: EventType | None = None,
        limit: int = 1000,
    ) -> list[ExecutionEvent]:
        _limit(limit)
        rows, _ = await info.context.state.executions.events_page(
            int(self.execution_id),
            since=since_sequence,
            event_type=event_type.value if event_type else None,
            limit=limit,
            offset=0,
        )
        return paced(
            rows,
            lambda r: ExecutionEvent(
                sequence=r["sequence"],
                event_type=EventType(r["event_type"]),
                strategy_type=r["strategy_type"],
                timestamp=r["ts"],
                event=orjson.loads(r["event"]),
            ),
        )

    @strawberry.field(metadata=rows("limit", 1000))  # type: ignore[untyped-decorator]
    async def trades(
        self, info: Info[Context, None], since_sequence: int = 0, limit: int = 1000
    ) -> list[Trade]:
        _limit(limit)
        rows, _ = await info.context.state.executions.trades_page(
            int(self.execution_id),
            since=since_sequence,
            instrument=None,
            direction=None,
            limit=limit,
            offset=0,
        )
        return paced(rows, lambda r: Trade.from_document(r["sequence"], trade_doc_from_row(r)))

    # strawberry types the field(description=...) decorator form as returning Any.
    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The equity curve, downsampled (LTTB) to at most maxPoints points.",
        metadata=rows("maxPoints", 1000),
    )
    async def equity(
        self,
        info: Info[Context, None],
        max_points: int = 1000,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[EquityPoint]:
        if not 2 <= max_points <= 100_000:
            raise BadRequest(
                f"maxPoints must be between 2 and 100000, got {max_points}", field="maxPoints"
            )
        seq, ts, balance = await info.context.state.executions.equity(
            int(self.execution_id),
            start_ns=checked_ns(start, "start"),
            end_ns=checked_ns(end, "end"),
            max_points=max_points,
        )
        points = list(zip(seq.tolist(), ts.tolist(), balance.tolist(), strict=True))
        return paced(
            points,
            lambda p: EquityPoint(sequence=p[0], timestamp=datetime_of_ns(p[1]), balance=p[2]),
        )


def _limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise BadRequest(f"limit must be between 1 and 1000, got {limit}", field="limit")


@strawberry.type
class StrategyParam:
    name: str
    type: str
    default: JSON | None = strawberry.field(description="null when the parameter has none")
    bounds: JSON | None = strawberry.field(description="[low, high], or null when unbounded")
    description: str


@strawberry.type
class Strategy:
    name: str
    description: str
    params: list[StrategyParam]


@strawberry.input
class StartBacktestInput:
    strategy: str
    params: JSON | None = strawberry.field(
        default=None, description="the strategy's parameters (its defaults when omitted)"
    )
    symbol: str
    timeframe: str = "1h"
    start: datetime | None = None
    end: datetime | None = None
    initial_capital: float = 10_000.0
    options: JSON | None = strawberry.field(
        default=None, description="fill, fees, slippage, direction, sizing..."
    )


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
                checkpoint=_checkpoint(doc["checkpoint"]),
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
