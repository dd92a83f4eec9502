"""GraphQL for jobs and candles: types, queries, mutations and subscriptions."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.datasets import service as datasets
from hub.errors import BadRequest
from hub.gql.context import Context
from hub.gql.streams import stream_topic
from hub.gql.types import parse_time
from hub.jobs.service import job_document, job_topic, log_topic, parse_job_id
from hub.subscription import Event


@strawberry.enum
class JobStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.type
class Job:
    job_id: strawberry.ID
    job_type: str
    status: JobStatus
    payload: JSON
    progress: float  # Float: row counts can exceed GraphQL's 32-bit Int
    total: float
    result: JSON | None
    error: str | None
    attempts: int
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Job:
        return cls(
            job_id=strawberry.ID(doc["job_id"]),
            job_type=doc["job_type"],
            status=JobStatus(doc["status"]),
            payload=doc["payload"],
            progress=doc["progress"],
            total=doc["total"],
            result=doc["result"],
            error=doc["error"],
            attempts=doc["attempts"],
            cancel_requested=doc["cancel_requested"],
            created_at=parse_time(doc["created_at"]),  # type: ignore[arg-type]
            updated_at=parse_time(doc["updated_at"]),  # type: ignore[arg-type]
            started_at=parse_time(doc["started_at"]),
            completed_at=parse_time(doc["completed_at"]),
        )


@strawberry.type
class JobPage:
    items: list[Job]
    count: int


@strawberry.type(description="One state of a job, as jobProgress delivers it.")
class JobUpdate:
    sequence: int
    job: Job


@strawberry.type(description="One line of a job's durable log.")
class JobLogEntry:
    sequence: int
    message: str
    data: JSON


@strawberry.type
class Candle:
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@strawberry.input
class GenerateSyntheticDatasetInput:
    symbol: str
    timeframe: str = "1h"
    bars: int = 1000
    seed: int = 0
    start: datetime | None = None
    initial_price: float = 100.0
    drift: float = 0.05
    volatility: float = 0.6


async def resolve_job(info: Info[Context, None], id: strawberry.ID) -> Job:
    ctx = info.context
    row = await ctx.state.jobs.get(ctx.require_identity(), str(id))
    return Job.from_document(job_document(row))


async def resolve_jobs(
    info: Info[Context, None],
    job_type: str | None = None,
    status: JobStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> JobPage:
    ctx = info.context
    if not 1 <= limit <= 500:
        raise BadRequest(f"limit must be between 1 and 500, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")
    rows, count = await ctx.state.jobs.list(
        ctx.require_identity(),
        job_type=job_type,
        status=status.value if status else None,
        limit=limit,
        offset=offset,
    )
    return JobPage(items=[Job.from_document(job_document(r)) for r in rows], count=count)


def _ns(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


async def resolve_candles(
    info: Info[Context, None],
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> list[Candle]:
    ctx = info.context
    ctx.require_identity()
    bars = await datasets.candles(
        ctx.pool, symbol, timeframe, start_ns=_ns(start), end_ns=_ns(end), limit=limit
    )
    ts = bars["ts"] // 1000
    return [
        Candle(
            ts=datetime.fromtimestamp(int(t) / 1e6, tz=UTC),
            open=float(o),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=float(v),
        )
        for t, o, h, lo, c, v in zip(
            ts.tolist(),
            bars["open"].tolist(),
            bars["high"].tolist(),
            bars["low"].tolist(),
            bars["close"].tolist(),
            bars["volume"].tolist(),
            strict=True,
        )
    ]


async def generate_synthetic_dataset(
    info: Info[Context, None], input: GenerateSyntheticDatasetInput
) -> Job:
    ctx = info.context
    payload = {
        "symbol": input.symbol,
        "timeframe": input.timeframe,
        "bars": input.bars,
        "seed": input.seed,
        "initial_price": input.initial_price,
        "drift": input.drift,
        "volatility": input.volatility,
    }
    if input.start is not None:
        payload["start"] = input.start.isoformat()
    row = await ctx.state.jobs.create(ctx.require_identity(), "dataset.synthetic", payload)
    return Job.from_document(job_document(row))


async def cancel_job(info: Info[Context, None], id: strawberry.ID) -> Job:
    ctx = info.context
    row = await ctx.state.jobs.cancel(ctx.require_identity(), str(id))
    return Job.from_document(job_document(row))


async def job_progress(
    info: Info[Context, None], job_id: strawberry.ID
) -> AsyncGenerator[JobUpdate, None]:
    """The job's current state first, then each change, until it ends."""
    topic = job_topic(parse_job_id(str(job_id)))
    async for event in stream_topic(info, topic, None):
        doc = event.data()
        yield event.memo("jobProgress", partial(_job_update, event, doc))
        if doc["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return


def _job_update(event: Event, doc: dict[str, Any]) -> JobUpdate:
    return event.keyed(JobUpdate(sequence=event.seq, job=Job.from_document(doc)))


async def job_log(
    info: Info[Context, None], job_id: strawberry.ID, since_sequence: int | None = None
) -> AsyncGenerator[JobLogEntry, None]:
    """The job's log lines after ``sinceSequence`` (all of them for 0), then live."""
    topic = log_topic(parse_job_id(str(job_id)))
    async for event in stream_topic(info, topic, since_sequence):
        data = event.data()
        message = str(data.get("message", "")) if isinstance(data, dict) else ""
        yield event.keyed(JobLogEntry(sequence=event.seq, message=message, data=data))
