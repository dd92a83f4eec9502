"""SQL for jobs. Every UPDATE bumps ``version``: the sequence of the job's state topic."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn

COLUMNS = """job_id, owner_id, job_type, status, payload, progress, total, result, error, attempts,
    cancel_requested, version, created_at, updated_at, started_at, completed_at"""


async def insert(
    conn: Conn, owner_id: str, job_type: str, payload: dict[str, Any], total: int
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"insert into jobs (owner_id, job_type, payload, total) values ($1, $2, $3, $4) returning {COLUMNS}",
        owner_id,
        job_type,
        payload,
        total,
    )
    assert row is not None
    return row


async def lock_owner(conn: Conn, owner_id: str) -> None:
    """Serialise this transaction with the owner's other job creations (until it ends)."""
    await conn.execute("select pg_advisory_xact_lock(hashtextextended($1::text, 7))", owner_id)


async def active_load(conn: Conn, owner_id: str) -> tuple[int, int]:
    """How many of the owner's jobs are pending or running, and the units (bars) they cover."""
    row = await conn.fetchrow(
        """select count(*) as jobs, coalesce(sum(total), 0) as units from jobs
           where owner_id = $1 and status in ('PENDING', 'RUNNING')""",
        owner_id,
    )
    assert row is not None
    return int(row["jobs"]), int(row["units"])


async def add_to_payload(conn: Conn, job_id: str, values: dict[str, Any]) -> None:
    await conn.execute(
        "update jobs set payload = payload || $2::jsonb where job_id = $1", job_id, values
    )


async def queue_position(conn: Conn, job_id: str) -> int:
    """How many jobs wait before this one (itself included): pending jobs created no later."""
    position = await conn.fetchval(
        """select count(*) from jobs where status = 'PENDING'
             and created_at <= (select created_at from jobs where job_id = $1)""",
        job_id,
    )
    return int(position or 0)


async def get(conn: Conn, job_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"select {COLUMNS} from jobs where job_id = $1", job_id)


async def list_jobs(
    conn: Conn,
    *,
    owner_id: str | None,
    job_type: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    where = [
        "($1::uuid is null or owner_id = $1)",
        "($2::text is null or job_type = $2)",
        "($3::text is null or status = $3)",
    ]
    clause = " and ".join(where)
    rows = await conn.fetch(
        f"select {COLUMNS} from jobs where {clause} order by created_at desc, job_id limit $4 offset $5",
        owner_id,
        job_type,
        status,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"select count(*) from jobs where {clause}", owner_id, job_type, status
    )
    return rows, int(total)


async def claim(conn: Conn, job_id: str, lease_seconds: float) -> asyncpg.Record | None:
    """PENDING -> RUNNING, atomically: of many workers offered the same job, one gets the row.

    A RUNNING job whose heartbeat is older than the lease lost its worker and may be claimed
    again (arq re-delivers a job once its in-progress key expires).
    """
    return await conn.fetchrow(
        f"""
        update jobs set status = 'RUNNING', attempts = attempts + 1, started_at = coalesce(started_at, now()),
            heartbeat_at = now(), updated_at = now(), version = version + 1, error = null
        where job_id = $1 and not cancel_requested and (
            status = 'PENDING'
            or (status = 'RUNNING' and heartbeat_at < now() - make_interval(secs => $2))
        )
        returning {COLUMNS}
        """,
        job_id,
        lease_seconds,
    )


async def report_progress(
    conn: Conn, job_id: str, progress: int, total: int | None, attempt: int | None = None
) -> asyncpg.Record | None:
    """Record progress and the heartbeat; the returned row says whether a cancel was asked."""
    return await conn.fetchrow(
        f"""
        update jobs set progress = $2, total = coalesce($3, total), heartbeat_at = now(),
            updated_at = now(), version = version + 1
        where job_id = $1 and status = 'RUNNING' and ($4::int is null or attempts = $4)
        returning {COLUMNS}
        """,
        job_id,
        progress,
        total,
        attempt,
    )


async def finish(
    conn: Conn,
    job_id: str,
    status: str,
    *,
    result: Any = None,
    error: str | None = None,
    attempt: int | None = None,
) -> asyncpg.Record | None:
    """End a job; with ``attempt``, only if that attempt still holds it (its claim)."""
    return await conn.fetchrow(
        f"""
        update jobs set status = $2, result = $3, error = $4, completed_at = now(), updated_at = now(),
            version = version + 1, progress = case when $2 = 'COMPLETED' then greatest(progress, total) else progress end
        where job_id = $1 and status in ('PENDING', 'RUNNING')
          and ($5::int is null or (status = 'RUNNING' and attempts = $5))
        returning {COLUMNS}
        """,
        job_id,
        status,
        result,
        error,
        attempt,
    )


async def back_to_pending(
    conn: Conn, job_id: str, error: str, attempt: int | None = None
) -> asyncpg.Record | None:
    """A transient failure: the job waits for its retry as PENDING, keeping the error seen
    (or ends CANCELLED, if its owner asked for that meanwhile)."""
    return await conn.fetchrow(
        f"""
        update jobs set
            status = case when cancel_requested then 'CANCELLED' else 'PENDING' end,
            completed_at = case when cancel_requested then now() else completed_at end,
            error = $2, updated_at = now(), version = version + 1
        where job_id = $1 and status = 'RUNNING' and ($3::int is null or attempts = $3)
        returning {COLUMNS}
        """,
        job_id,
        error,
        attempt,
    )


async def request_cancel(conn: Conn, job_id: str) -> asyncpg.Record | None:
    """PENDING jobs end CANCELLED at once; RUNNING ones are flagged and stop at their next progress point."""
    return await conn.fetchrow(
        f"""
        update jobs set
            cancel_requested = true,
            status = case when status = 'PENDING' then 'CANCELLED' else status end,
            completed_at = case when status = 'PENDING' then now() else completed_at end,
            updated_at = now(), version = version + 1
        where job_id = $1 and status in ('PENDING', 'RUNNING') and not cancel_requested
        returning {COLUMNS}
        """,
        job_id,
    )


async def heartbeat(conn: Conn, job_id: str, attempt: int | None) -> None:
    """Refresh a running job's lease (no version bump: not a change of its state)."""
    await conn.execute(
        "update jobs set heartbeat_at = now() where job_id = $1 and status = 'RUNNING' "
        "and ($2::int is null or attempts = $2)",
        job_id,
        attempt,
    )


async def cancel_requested(conn: Conn, job_id: str) -> bool:
    return bool(await conn.fetchval("select cancel_requested from jobs where job_id = $1", job_id))


async def owner(conn: Conn, job_id: str) -> str | None:
    value = await conn.fetchval("select owner_id from jobs where job_id = $1", job_id)
    return None if value is None else str(value)


async def stale_running(conn: Conn, lease_seconds: float) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""
        select {COLUMNS} from jobs
        where status = 'RUNNING' and heartbeat_at < now() - make_interval(secs => $1)
        order by heartbeat_at limit 100
        """,
        lease_seconds,
    )


async def stale_pending(conn: Conn, older_than_seconds: float) -> list[asyncpg.Record]:
    """PENDING jobs nobody picked up (e.g. the enqueue after commit was lost with its process)."""
    return await conn.fetch(
        f"""
        select {COLUMNS} from jobs
        where status = 'PENDING' and updated_at < now() - make_interval(secs => $1)
        order by updated_at limit 100
        """,
        older_than_seconds,
    )
