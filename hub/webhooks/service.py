"""Decisions about webhooks: who may register, list and delete them, what a delivery carries,
and when a failed attempt is retried.

Other domains emit events through the service (``resources.service("webhooks")``)::

    await webhooks.emit(user_id, "backtest.completed", {"backtest_id": ..., "metrics": {...}})

after their own transaction committed: each of the user's webhooks subscribed to the event gets
a delivery row, and each delivery is an arq job (``webhooks.deliver``) a worker runs. A failed
attempt (no answer, or not a 2xx) is retried after ``TRADEHUB_WEBHOOK_BACKOFF_SECONDS`` doubled
per attempt (capped), up to ``TRADEHUB_WEBHOOK_MAX_ATTEMPTS``; each attempt is logged in
``webhook_attempts``. A delivery whose queued attempt was lost is queued again by the workers'
sweep. The secret is stored sealed (``hub/secretbox.py``) and never returned or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from cryptography.fernet import InvalidToken
from redis.exceptions import RedisError

from hub import secretbox
from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, LimitReached, NotFound
from hub.webhooks import repository
from hub.webhooks.addresses import AddressRefused, parse_url, resolve
from hub.webhooks.delivery import Outcome, Sender
from hub.webhooks.signing import signed_body, unsigned_payload

log = logging.getLogger("tradehub.webhooks")

EVENTS = ("backtest.completed", "signal.generated", "sweep.completed")
MAX_WEBHOOKS_PER_USER = 20
SECRET_LENGTH = (8, 256)
DELIVER_FUNCTION = "webhooks.deliver"
# Every so often each worker queues again the deliveries overdue by this much.
SWEEP_SECONDS = 30.0
SWEEP_GRACE_SECONDS = 60.0
_WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _webhook(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "webhook_id": row["webhook_id"],
        "url": row["url"],
        "events": list(row["events"]),
        "created_at": _stamp(row["created_at"]),
    }


def parse_events(raw: object) -> list[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise BadRequest(
            f"events must be a non-empty list of event names ({', '.join(EVENTS)})",
            field="events",
        )
    for name in raw:
        if name not in EVENTS:
            raise BadRequest(
                f"unknown event {name[:60]!r}; the events are {', '.join(EVENTS)}",
                field="events",
            )
    return list(dict.fromkeys(raw))


def parse_secret(raw: object) -> str:
    low, high = SECRET_LENGTH
    if not isinstance(raw, str) or not low <= len(raw) <= high:
        # The message never quotes the value: it is a secret, even when malformed.
        raise BadRequest(
            f"secret is required: a string of {low} to {high} characters", field="secret"
        )
    return raw


class WebhookService:
    def __init__(self, resources: Any) -> None:
        self.settings = resources.settings
        self.pool: asyncpg.Pool = resources.pool
        self.arq = resources.arq
        self.keys = resources.keys
        self.sender = Sender(
            allow_private=self.settings.webhook_allow_private,
            timeout=self.settings.webhook_timeout,
        )
        self._sweeper: asyncio.Task[None] | None = None

    # -- registrations ------------------------------------------------------------------

    async def create(
        self, identity: Identity, url: object, events: object, secret: object
    ) -> dict[str, Any]:
        """Register a webhook for the caller; its URL must resolve to addresses webhooks may
        reach (400 otherwise)."""
        target = parse_url(url)
        names = parse_events(events)
        key = parse_secret(secret)
        try:
            await resolve(target, self.settings.webhook_allow_private)
        except AddressRefused as exc:
            raise BadRequest(str(exc), field="url") from None
        sealed = secretbox.seal(self.settings, {"secret": key})
        assert sealed is not None
        async with self.pool.acquire() as conn, conn.transaction():
            await repository.lock_user(conn, identity.user_id)
            if await repository.count_webhooks(conn, identity.user_id) >= MAX_WEBHOOKS_PER_USER:
                raise LimitReached(
                    f"a user may register at most {MAX_WEBHOOKS_PER_USER} webhooks; "
                    "delete one first",
                    details={"limit": MAX_WEBHOOKS_PER_USER},
                )
            webhook_id = f"wh_{secrets.token_hex(8)}"
            row = await repository.insert_webhook(
                conn, webhook_id, identity.user_id, target.url, names, sealed
            )
        log.info("webhook registered", extra={"webhook_id": webhook_id, "events": names})
        return _webhook(row)

    async def list_for(self, identity: Identity, limit: int, offset: int) -> dict[str, Any]:
        """The caller's own webhooks."""
        rows, total = await repository.list_webhooks(self.pool, identity.user_id, limit, offset)
        return {
            "items": [_webhook(row) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    async def _owned(self, identity: Identity, webhook_id: str) -> asyncpg.Record:
        """The webhook, if it exists (404) and is the caller's or the caller is an admin (403)."""
        row = None
        if _WEBHOOK_ID.match(webhook_id):
            row = await repository.get_webhook(self.pool, webhook_id)
        if row is None:
            raise NotFound(f"no webhook {webhook_id[:40]!r}", field="webhook_id")
        if str(row["user_id"]) != identity.user_id and not identity.is_admin:
            raise Forbidden(f"webhook {webhook_id!r} is another user's")
        return row

    async def delete(self, identity: Identity, webhook_id: str) -> None:
        """Delete a webhook with its deliveries and their attempts."""
        await self._owned(identity, webhook_id)
        await repository.delete_webhook(self.pool, webhook_id)
        log.info("webhook deleted", extra={"webhook_id": webhook_id})

    async def deliveries(
        self, identity: Identity, webhook_id: str, limit: int, offset: int
    ) -> dict[str, Any]:
        """A webhook's deliveries, newest first, each with every attempt."""
        await self._owned(identity, webhook_id)
        rows, total = await repository.list_deliveries(self.pool, webhook_id, limit, offset)
        attempts: dict[str, list[dict[str, Any]]] = {}
        ids = [str(row["delivery_id"]) for row in rows]
        for a in await repository.attempts_of(self.pool, ids):
            attempts.setdefault(str(a["delivery_id"]), []).append(
                {
                    "attempt": a["attempt"],
                    "status_code": a["status_code"],
                    "error": a["error"],
                    "duration_ms": a["duration_ms"],
                    "attempted_at": _stamp(a["attempted_at"]),
                }
            )
        items = [
            {
                "delivery_id": str(row["delivery_id"]),
                "event": row["event"],
                "status": row["status"],
                "attempts": attempts.get(str(row["delivery_id"]), []),
                "next_attempt_at": _stamp(row["next_attempt_at"])
                if row["status"] == "pending"
                else None,
                "created_at": _stamp(row["created_at"]),
                "completed_at": _stamp(row["completed_at"]),
            }
            for row in rows
        ]
        return {"items": items, "total": total, "limit": limit, "offset": offset}

    # -- deliveries ---------------------------------------------------------------------

    async def emit(
        self, user_id: str, event: str, data: dict[str, Any], *, at: datetime | None = None
    ) -> list[str]:
        """Deliver ``event`` with ``data`` to each of the user's webhooks subscribed to it
        (the ids of the deliveries queued; none when the user has no such webhook). Call it
        after the transaction that made the event committed."""
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; the events are {EVENTS}")
        uuid.UUID(user_id)
        body = unsigned_payload(event, data, at)
        rows = await repository.insert_deliveries(self.pool, user_id, event, body)
        ids = [str(row["delivery_id"]) for row in rows]
        for delivery_id in ids:
            await self._enqueue(delivery_id)
        return ids

    async def _enqueue(self, delivery_id: str, defer: float | None = None) -> None:
        """Queue an attempt. If Redis refuses, the delivery stays pending and the workers'
        sweep queues it again."""
        try:
            await self.arq.enqueue_job(
                DELIVER_FUNCTION,
                delivery_id,
                _job_id=f"webhook:{delivery_id}",
                _queue_name=self.keys.queue,
                _defer_by=defer,
            )
        except (OSError, RedisError) as exc:
            log.warning(
                "webhook enqueue failed; the sweep will retry",
                extra={"delivery_id": delivery_id, "error": str(exc)},
            )

    def backoff(self, attempts: int) -> float:
        """Seconds before the attempt after ``attempts`` failed ones."""
        base = self.settings.webhook_backoff_seconds
        return float(min(self.settings.webhook_backoff_max_seconds, base * 2 ** (attempts - 1)))

    async def deliver(self, delivery_id: str) -> float | None:
        """One attempt of a pending delivery (run by a worker): the seconds after which to try
        again, or None when it is done (delivered, out of attempts, gone, or held by another
        worker)."""
        lease = self.settings.webhook_timeout + 30.0
        row = await repository.claim_delivery(self.pool, delivery_id, lease)
        if row is None:
            return None
        attempt = row["attempts"]
        try:
            secret = secretbox.unseal(self.settings, row["secret_sealed"])["secret"]
        except InvalidToken:
            # Sealed under another hub secret (TRADEHUB_SECRET changed): no attempt can sign it.
            outcome = Outcome(
                None, "the webhook's secret cannot be decrypted: register it again", 0.0
            )
            unsendable = True
        else:
            body, signature = signed_body(secret, bytes(row["body"]))
            headers = {
                "X-Signature-256": signature,
                "X-Webhook-Event": row["event"],
                "X-Webhook-Delivery": str(row["delivery_id"]),
                "X-Webhook-Attempt": str(attempt),
            }
            outcome = await self.sender.post(row["url"], body, headers)
            unsendable = False
        retry_in: float | None = None
        if outcome.delivered:
            status = "delivered"
        elif unsendable or attempt >= self.settings.webhook_max_attempts:
            status = "failed"
        else:
            status, retry_in = "pending", self.backoff(attempt)
        async with self.pool.acquire() as conn:
            await repository.record_attempt(
                conn,
                delivery_id,
                attempt,
                outcome.status_code,
                outcome.error,
                outcome.duration_ms,
                status=status,
                retry_in=retry_in,
            )
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": delivery_id,
                "webhook_id": row["webhook_id"],
                "attempt": attempt,
                "status_code": outcome.status_code,
                "outcome": status,
                "duration_ms": outcome.duration_ms,
            },
        )
        return retry_in

    async def sweep(self) -> int:
        """Queue again the pending deliveries whose attempt is overdue (its queued job was
        lost); how many. Queuing one still queued is a no-op (the job id is the delivery's)."""
        rows = await repository.overdue_deliveries(self.pool, SWEEP_GRACE_SECONDS, 500)
        for row in rows:
            await self._enqueue(str(row["delivery_id"]))
        return len(rows)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                swept = await self.sweep()
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("webhook sweep failed", extra={"error": str(exc)})
                continue
            if swept:
                log.warning("queued overdue webhook deliveries again", extra={"count": swept})

    def start_sweeping(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="webhook-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self.sender.close()
