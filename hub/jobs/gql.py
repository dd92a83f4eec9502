"""GraphQL for jobs: the job types, ``job``/``jobs``, ``cancelJob``, ``jobProgress``, ``jobLog``."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from functools import partial
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.gql.streams import stream_topic
from hub.jobs.service import JobStatus, job_document, job_topic, log_topic, parse_job_id
from hub.subscription import Event
from hub.times import parse_iso

strawberry.enum(JobStatus)  # the domain enum, as a GraphQL enum of the same name


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
            created_at=parse_iso(doc["created_at"]),  # type: ignore[arg-type]
            updated_at=parse_iso(doc["updated_at"]),  # type: ignore[arg-type]
            started_at=parse_iso(doc["started_at"]),
            completed_at=parse_iso(doc["completed_at"]),
        )

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls.from_document(job_document(row))


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


async def resolve_job(info: Info[Context, None], id: strawberry.ID) -> Job:
    ctx = info.context
    return Job.from_row(await ctx.state.jobs.get(ctx.require_identity(), str(id)))


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
    return JobPage(items=[Job.from_row(r) for r in rows], count=count)


async def cancel_job(info: Info[Context, None], id: strawberry.ID) -> Job:
    ctx = info.context
    return Job.from_row(await ctx.state.jobs.cancel(ctx.require_identity(), str(id)))


async def job_progress(
    info: Info[Context, None], job_id: strawberry.ID
) -> AsyncGenerator[JobUpdate, None]:
    """The job's current state first, then each change, until it ends."""
    topic = job_topic(parse_job_id(str(job_id)))
    async for event in stream_topic(info, topic, None):
        doc = event.data()
        yield event.memo("jobProgress", partial(_job_update, event, doc))
        if JobStatus(doc["status"]).terminal:
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


@strawberry.type
class Query:
    job: Job = strawberry.field(resolver=resolve_job, description="One of your jobs.")
    jobs: JobPage = strawberry.field(
        resolver=resolve_jobs,
        description="Your jobs (every job, for an admin), newest first.",
        metadata=rows("limit", 50),
    )


@strawberry.type
class Mutation:
    cancel_job: Job = strawberry.mutation(
        resolver=cancel_job,
        description="Cancel a job: a pending one at once, a running one at its next progress point.",
    )


@strawberry.type
class Subscription:
    # strawberry types subscription(resolver=...) as the resolver's return type, the
    # AsyncGenerator, not the item type that the schema field has.
    job_progress: JobUpdate = strawberry.subscription(resolver=job_progress)  # type: ignore[assignment]
    job_log: JobLogEntry = strawberry.subscription(resolver=job_log)  # type: ignore[assignment]
