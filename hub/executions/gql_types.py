"""GraphQL types of the executions domain: an execution with its nested streams (events, trades,
equity, latest checkpoint), the items its subscriptions send, the strategy catalogue, and the
startBacktest input. The query, mutation and subscription roots that return them are in ``gql``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest
from hub.executions.documents import checkpoint_document, trade_doc_from_row
from hub.executions.model import EventType, ExecutionStatus
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.paced import paced
from hub.times import checked_ns, datetime_of_ns
from hub.times import parse_iso as parse_time

strawberry.enum(ExecutionStatus)  # the domain enum, as a GraphQL enum of the same name
strawberry.enum(EventType)  # the domain enum, as a GraphQL enum of the same name


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


def checkpoint_of(doc: dict[str, Any] | None) -> Checkpoint | None:
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
        return None if row is None else checkpoint_of(checkpoint_document(row))

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
