"""Decisions about jobs: who may create, see and cancel them; enqueue only after commit."""

from __future__ import annotations

import builtins
import enum
import logging
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic import ValidationError
from redis.exceptions import RedisError

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, LimitReached, NotFound
from hub.eventlog import EventLog
from hub.jobs import repository as repo
from hub.times import iso

if TYPE_CHECKING:
    from hub.domains import Resources

log = logging.getLogger("tradehub.jobs")

RUN_FUNCTION = "run_job"


class JobStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def job_document(row: asyncpg.Record) -> dict[str, Any]:
    """The job as every interface sees it (the state carried on topic ``job:{id}``)."""
    return {
        "job_id": str(row["job_id"]),
        "owner_id": str(row["owner_id"]),
        "job_type": row["job_type"],
        "status": row["status"],
        "payload": row["payload"],
        "progress": row["progress"],
        "total": row["total"],
        "result": row["result"],
        "error": row["error"],
        "attempts": row["attempts"],
        "cancel_requested": row["cancel_requested"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
    }


def job_topic(job_id: str) -> str:
    return f"job:{job_id}"


def log_topic(job_id: str) -> str:
    return f"job:{job_id}:log"


def parse_job_id(raw: str) -> str:
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        raise NotFound(f"no job {raw!r}") from None


class JobService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool = resources.pool
        self.bus = resources.bus
        self.arq = resources.arq
        self.keys = resources.keys
        self.types = resources.job_types

    # -- commands from users ----------------------------------------------------------

    async def create(
        self, identity: Identity, job_type: str, payload: dict[str, Any]
    ) -> asyncpg.Record:
        spec = self.types.get(job_type)
        if spec is None:
            raise BadRequest(f"unknown job type {job_type!r}", field="job_type")
        try:
            model = spec.payload.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "payload"
            raise BadRequest(f"{field}: {first['msg']}", field=field) from None
        if spec.check is not None:
            await spec.check(self.resources, identity, model)
        clean = model.model_dump(mode="json")
        total = int(model.total_units()) if hasattr(model, "total_units") else 0
        async with self.pool.acquire() as conn, conn.transaction():
            await self._within_caps(conn, identity, total)
            row = await repo.insert(conn, identity.user_id, job_type, clean, total)
        # Committed: only now may a worker see it.
        await self.enqueue(str(row["job_id"]), attempt=1)
        await self._announce(row)
        return row

    async def insert(
        self,
        conn: asyncpg.Connection,
        identity: Identity,
        job_type: str,
        payload: dict[str, Any],
        *,
        total: int,
    ) -> asyncpg.Record:
        """A job row written in the caller's transaction (a domain row that owns the job is
        written beside it); call :meth:`after_insert` once that transaction commits."""
        if self.types.get(job_type) is None:
            raise BadRequest(f"unknown job type {job_type!r}", field="job_type")
        await self._within_caps(conn, identity, total)
        return await repo.insert(conn, identity.user_id, job_type, payload, total)

    async def _within_caps(self, conn: asyncpg.Connection, identity: Identity, units: int) -> None:
        """Refuse (429) a job that would take its owner past the jobs or bars they may have
        pending or running at once; the owner's creations are serialised meanwhile."""
        settings = self.resources.settings
        await repo.lock_owner(conn, identity.user_id)
        jobs, load = await repo.active_load(conn, identity.user_id)
        if jobs + 1 > settings.max_active_jobs_per_user:
            raise LimitReached(
                f"you have {jobs} jobs pending or running, and at most "
                f"{settings.max_active_jobs_per_user} may be at once "
                "(TRADEHUB_MAX_ACTIVE_JOBS_PER_USER): wait for one to end, or cancel one",
                details={
                    "cap": "max_active_jobs_per_user",
                    "limit": settings.max_active_jobs_per_user,
                },
            )
        if load + units > settings.max_active_bars_per_user:
            raise LimitReached(
                f"this job covers {units:,} bars and your running jobs {load:,}: more than the "
                f"{settings.max_active_bars_per_user:,} one user may have in work at once "
                "(TRADEHUB_MAX_ACTIVE_BARS_PER_USER)",
                details={
                    "cap": "max_active_bars_per_user",
                    "limit": settings.max_active_bars_per_user,
                },
            )

    async def add_to_payload(self, conn: asyncpg.Connection, job_id: str, **values: Any) -> None:
        """Add keys to a job's payload in the caller's transaction (an id the domain row got
        only after the job row was written)."""
        await repo.add_to_payload(conn, job_id, values)

    async def after_insert(self, job_id: str) -> None:
        await self.enqueue(job_id, attempt=1)
        row = await repo.get(self.pool, job_id)
        if row is not None:
            await self._announce(row)

    async def enqueue(self, job_id: str, *, attempt: int) -> None:
        """Queue the committed job. If Redis refuses, the job stays PENDING and the reaper
        enqueues it again once Redis answers: the caller still gets its job, not a 500."""
        try:
            await self.arq.enqueue_job(
                RUN_FUNCTION, job_id, _job_id=f"{job_id}:{attempt}", _queue_name=self.keys.queue
            )
        except (OSError, RedisError) as exc:
            log.warning(
                "enqueue failed; the reaper will retry", extra={"job_id": job_id, "error": str(exc)}
            )

    async def get(self, identity: Identity, job_id: str) -> asyncpg.Record:
        row = await repo.get(self.pool, parse_job_id(job_id))
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        if not identity.is_admin and str(row["owner_id"]) != identity.user_id:
            raise Forbidden(f"job {job_id} belongs to another user")
        return row

    async def list(
        self,
        identity: Identity,
        *,
        job_type: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[asyncpg.Record], int]:
        if status is not None and status not in JobStatus.__members__:
            raise BadRequest(
                f"status must be one of {', '.join(JobStatus)}, got {status!r}", field="status"
            )
        owner = None if identity.is_admin else identity.user_id
        return await repo.list_jobs(
            self.pool, owner_id=owner, job_type=job_type, status=status, limit=limit, offset=offset
        )

    async def cancel(self, identity: Identity, job_id: str) -> asyncpg.Record:
        row = await self.get(identity, job_id)
        if row["status"] in TERMINAL:
            return row
        updated = await repo.request_cancel(self.pool, row["job_id"])
        if updated is None:  # it finished or was cancelled meanwhile
            current = await repo.get(self.pool, row["job_id"])
            assert current is not None
            return current
        await self._announce(updated)
        await self._ended(updated)
        return updated

    # -- what workers report ----------------------------------------------------------

    async def claim(self, job_id: str, lease_seconds: float) -> asyncpg.Record | None:
        row = await repo.claim(self.pool, job_id, lease_seconds)
        if row is not None:
            await self._announce(row)
        return row

    async def progress(
        self, job_id: str, done: int, total: int | None = None, *, attempt: int | None = None
    ) -> asyncpg.Record | None:
        row = await repo.report_progress(self.pool, job_id, done, total, attempt)
        if row is not None:
            await self._announce(row)
        return row

    async def heartbeat(self, job_id: str, attempt: int | None = None) -> None:
        await repo.heartbeat(self.pool, job_id, attempt)

    async def cancel_requested(self, job_id: str) -> bool:
        return await repo.cancel_requested(self.pool, job_id)

    async def queue_position(self, job_id: str) -> int:
        """Where a job waits in the queue: pending jobs created no later, itself included."""
        return await repo.queue_position(self.pool, job_id)

    async def owner(self, job_id: str) -> str | None:
        return await repo.owner(self.pool, job_id)

    async def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: Any = None,
        error: str | None = None,
        attempt: int | None = None,
    ) -> asyncpg.Record | None:
        row = await repo.finish(
            self.pool, job_id, status, result=result, error=error, attempt=attempt
        )
        if row is not None:
            await self._announce(row)
            await self._ended(row)
        return row

    async def _ended(self, row: asyncpg.Record) -> None:
        if row["status"] not in (JobStatus.FAILED, JobStatus.CANCELLED):
            return
        spec = self.types.get(row["job_type"])
        hook = spec.on_ended if spec is not None else None
        if hook is not None:
            try:
                await hook(self.resources, row)
            except Exception:
                log.exception("job end hook failed", extra={"job_id": str(row["job_id"])})

    async def back_to_pending(self, job_id: str, error: str, attempt: int | None = None) -> None:
        row = await repo.back_to_pending(self.pool, job_id, error, attempt)
        if row is not None:
            await self._announce(row)

    async def append_log(
        self, job_id: str, entries: builtins.list[dict[str, Any]]
    ) -> builtins.list[int]:
        """Durable log lines of a job, on topic ``job:{id}:log``."""
        topic = log_topic(job_id)
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await EventLog.append(conn, topic, entries)
        await self.bus.publish_many([(topic, seq, data) for seq, data in stored])
        return [seq for seq, _ in stored]

    async def reap(self, lease_seconds: float, pending_after_seconds: float) -> dict[str, int]:
        """Jobs whose worker vanished are re-run (or FAILED after their last try); lost enqueues are redone."""
        counts = {"requeued": 0, "failed": 0, "reenqueued": 0}
        for row in await repo.stale_running(self.pool, lease_seconds):
            job_id = str(row["job_id"])
            spec = self.types.get(row["job_type"])
            max_tries = spec.max_tries if spec is not None else 1
            if row["cancel_requested"]:
                await self.finish(job_id, "CANCELLED", error="cancelled; its worker stopped")
            elif row["attempts"] < max_tries:
                await self.back_to_pending(job_id, "worker lost (no heartbeat); re-running")
                await self.enqueue(job_id, attempt=row["attempts"] + 1)
                counts["requeued"] += 1
            else:
                await self.finish(
                    job_id,
                    "FAILED",
                    error=f"worker lost (no heartbeat for {lease_seconds:.0f} s) after {row['attempts']} attempts",
                )
                counts["failed"] += 1
        for row in await repo.stale_pending(self.pool, pending_after_seconds):
            await self.enqueue(str(row["job_id"]), attempt=row["attempts"] + 1)
            counts["reenqueued"] += 1
        return counts

    async def _announce(self, row: asyncpg.Record) -> None:
        await self.bus.publish(job_topic(str(row["job_id"])), row["version"], job_document(row))
