"""SQL for webhooks, their deliveries and the attempts of each delivery."""

from __future__ import annotations

import asyncpg

from hub.db import Conn

WEBHOOK_COLUMNS = "webhook_id, user_id, url, events, created_at"
DELIVERY_COLUMNS = """delivery_id, webhook_id, event, status, attempts, next_attempt_at,
    created_at, completed_at"""


# -- webhooks -----------------------------------------------------------------------------


async def lock_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Serialise a user's registrations (the cap on their webhooks holds under races)."""
    await conn.execute("select 1 from users where user_id = $1 for update", user_id)


async def count_webhooks(conn: Conn, user_id: str) -> int:
    count: int = await conn.fetchval("select count(*) from webhooks where user_id = $1", user_id)
    return count


async def insert_webhook(
    conn: Conn, webhook_id: str, user_id: str, url: str, events: list[str], sealed: bytes
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""insert into webhooks (webhook_id, user_id, url, events, secret_sealed)
            values ($1, $2, $3, $4, $5) returning {WEBHOOK_COLUMNS}""",
        webhook_id,
        user_id,
        url,
        events,
        sealed,
    )
    assert row is not None
    return row


async def get_webhook(conn: Conn, webhook_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {WEBHOOK_COLUMNS} from webhooks where webhook_id = $1", webhook_id
    )


async def list_webhooks(
    conn: Conn, user_id: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"""select {WEBHOOK_COLUMNS}, count(*) over () as total from webhooks
            where user_id = $1 order by created_at, webhook_id limit $2 offset $3""",
        user_id,
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else await count_webhooks(conn, user_id)
    return rows, total


async def delete_webhook(conn: Conn, webhook_id: str) -> bool:
    done = await conn.execute("delete from webhooks where webhook_id = $1", webhook_id)
    return bool(done == "DELETE 1")


# -- deliveries ---------------------------------------------------------------------------


async def insert_deliveries(
    conn: Conn, user_id: str, event: str, body: bytes
) -> list[asyncpg.Record]:
    """One delivery of ``event`` to each of the user's webhooks subscribed to it."""
    return await conn.fetch(
        """insert into webhook_deliveries (webhook_id, event, body)
           select webhook_id, $2, $3 from webhooks where user_id = $1 and $2 = any(events)
           returning delivery_id, webhook_id""",
        user_id,
        event,
        body,
    )


async def claim_delivery(
    conn: Conn, delivery_id: str, lease_seconds: float
) -> asyncpg.Record | None:
    """Take a pending delivery for one attempt (counted now): its body and its webhook's URL
    and sealed secret. None when it is not pending, or another worker holds it."""
    return await conn.fetchrow(
        """
        update webhook_deliveries d
           set attempts = d.attempts + 1,
               claimed_until = now() + make_interval(secs => $2)
          from webhooks w
         where d.delivery_id = $1 and w.webhook_id = d.webhook_id and d.status = 'pending'
           and (d.claimed_until is null or d.claimed_until < now())
        returning d.delivery_id, d.webhook_id, d.event, d.body, d.attempts, w.url,
                  w.secret_sealed
        """,
        delivery_id,
        lease_seconds,
    )


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: str,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    *,
    status: str,
    retry_in: float | None,
) -> None:
    """The attempt's log line and the delivery's new state, in one transaction."""
    async with conn.transaction():
        await conn.execute(
            """insert into webhook_attempts
                   (delivery_id, attempt, status_code, error, duration_ms)
               values ($1, $2, $3, $4, $5) on conflict do nothing""",
            delivery_id,
            attempt,
            status_code,
            error,
            duration_ms,
        )
        await conn.execute(
            """update webhook_deliveries
                  set status = $2, claimed_until = null,
                      next_attempt_at = case when $3::float8 is null then next_attempt_at
                                             else now() + make_interval(secs => $3) end,
                      completed_at = case when $2 = 'pending' then null else now() end
                where delivery_id = $1""",
            delivery_id,
            status,
            retry_in,
        )


async def list_deliveries(
    conn: Conn, webhook_id: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    rows = await conn.fetch(
        f"""select {DELIVERY_COLUMNS}, count(*) over () as total from webhook_deliveries
            where webhook_id = $1 order by created_at desc, delivery_id limit $2 offset $3""",
        webhook_id,
        limit,
        offset,
    )
    if rows:
        return rows, rows[0]["total"]
    total: int = await conn.fetchval(
        "select count(*) from webhook_deliveries where webhook_id = $1", webhook_id
    )
    return rows, total


async def attempts_of(conn: Conn, delivery_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select delivery_id, attempt, status_code, error, duration_ms, attempted_at
             from webhook_attempts where delivery_id = any($1::uuid[])
            order by delivery_id, attempt""",
        delivery_ids,
    )


async def overdue_deliveries(conn: Conn, grace_seconds: float, limit: int) -> list[asyncpg.Record]:
    """Pending deliveries due more than ``grace_seconds`` ago that nobody holds: their queued
    attempt was lost (Redis restarted, the enqueue failed)."""
    return await conn.fetch(
        """select delivery_id from webhook_deliveries
            where status = 'pending'
              and next_attempt_at < now() - make_interval(secs => $1)
              and (claimed_until is null or claimed_until < now())
            order by next_attempt_at limit $2""",
        grace_seconds,
        limit,
    )
