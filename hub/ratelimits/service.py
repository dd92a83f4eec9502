"""The ratelimits domain's service: which limits a request is counted in (by its family and the
caller's tier), the tiers admins set, and the concurrent-backtest slots other domains take.

A tier is read from Postgres and trusted for ``TIER_CACHE_SECONDS`` in each process: a tier an
admin changes applies at once on the process that changed it and within that time on the others
(as a changed role does, ``hub/users/service.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, LimitReached, NotFound
from hub.ratelimit import RateLimiter, Verdict
from hub.ratelimits import repository
from hub.ratelimits.policy import (
    FAMILIES,
    Kind,
    Plan,
    classify,
    fixed_limits,
    sigmalab_limits,
    subject_of,
)
from hub.ratelimits.slots import Slots
from hub.ratelimits.tiers import TIERS, Tier, parse_tier

log = logging.getLogger("tradehub.ratelimit")

TIER_CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000


class RateLimits:
    def __init__(self, resources: Any) -> None:
        self.settings = resources.settings
        self.pool: asyncpg.Pool = resources.pool
        self.limiter = RateLimiter(resources.redis, resources.keys)
        self.backtests = Slots(resources.redis, resources.keys, "backtests")
        self._tiers: dict[str, tuple[float, Tier]] = {}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.rate_limits)

    # -- tiers --------------------------------------------------------------------------

    async def tier_of(self, user_id: str) -> Tier:
        """The user's tier (``free`` when Postgres cannot say: limits never fail closed)."""
        now = time.monotonic()
        cached = self._tiers.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            stored = await repository.get_tier(self.pool, user_id)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("tier unavailable; counting as free", extra={"error": str(exc)})
            return Tier.FREE
        tier = Tier(stored) if stored is not None else Tier.FREE
        if len(self._tiers) >= _CACHE_LIMIT:
            self._tiers.clear()
        self._tiers[user_id] = (now + TIER_CACHE_SECONDS, tier)
        return tier

    async def set_tier(self, admin: Identity, username: str, raw_tier: object) -> dict[str, Any]:
        """An admin sets ``username``'s tier; its limits apply from the user's next request."""
        if not admin.is_admin:
            raise Forbidden("only an admin may set a user's tier")
        try:
            tier = parse_tier(raw_tier)
        except ValueError as exc:
            raise BadRequest(str(exc), field="tier") from None
        row = await repository.set_tier(self.pool, username, tier.value)
        if row is None:
            raise NotFound(f"no user {username[:64]!r}", field="username")
        self._tiers.pop(str(row["user_id"]), None)
        return self.describe_tier(row["username"], tier)

    async def get_tier(self, caller: Identity, username: str) -> dict[str, Any]:
        """A user's tier and its limits: an admin reads anyone's, a user their own."""
        if not caller.is_admin and caller.username != username:
            raise Forbidden("only an admin may read another user's tier")
        user_id = await repository.user_id_of(self.pool, username)
        if user_id is None:
            raise NotFound(f"no user {username[:64]!r}", field="username")
        self._tiers.pop(str(user_id), None)
        return self.describe_tier(username, await self.tier_of(str(user_id)))

    @staticmethod
    def describe_tier(username: str, tier: Tier) -> dict[str, Any]:
        return {"username": username, "tier": tier.value, "limits": TIERS[tier].as_dict()}

    # -- requests -----------------------------------------------------------------------

    async def plan(self, path: str, identity: Identity | None, address: str | None) -> Plan | None:
        """The limits a request to ``path`` is counted in; None when it has none."""
        if not self.enabled:
            return None
        kind = classify(path)
        if kind is None:
            return None
        if kind is Kind.SIGMALAB:
            tier = Tier.FREE if identity is None else await self.tier_of(identity.user_id)
            limits = sigmalab_limits(tier, subject_of(identity, address))
        else:
            limits = fixed_limits(kind, self.settings, identity, address)
        return Plan(kind, FAMILIES[kind], limits) if limits else None

    async def admit(
        self, path: str, identity: Identity | None, address: str | None
    ) -> tuple[Plan, Verdict] | None:
        """Count one request (atomically in every window it is limited by); None when the
        route has no limits for this caller (an ``enterprise`` user, an unlimited family)."""
        plan = await self.plan(path, identity, address)
        if plan is None:
            return None
        return plan, await self.limiter.admit(plan.limits)

    # -- concurrent backtests -----------------------------------------------------------

    async def backtest_capacity(self, user_id: str) -> int | None:
        """Backtests the user may run at once (None: unlimited, or limits are off)."""
        if not self.enabled:
            return None
        return TIERS[await self.tier_of(user_id)].concurrent_backtests

    async def acquire_backtest(self, user_id: str, backtest_id: str) -> None:
        """Take one of the user's concurrent-backtest slots for ``backtest_id`` (its owner
        token), or raise :class:`LimitReached` (429, with ``X-RateLimit-Limit`` and
        ``-Remaining: 0``) when the user's tier has none free.

        Call it before the backtest is written (so a refused request leaves nothing behind) and
        :meth:`release_backtest` when it ends however it ends (a job's ``on_ended`` hook and its
        success path). The slot lapses after ``TRADEHUB_BACKTEST_SLOT_SECONDS`` even if nobody
        releases it (a worker killed mid-run), so it cannot leak; a backtest that may run longer
        calls :meth:`renew_backtest` as it goes. Taking a slot the token already holds renews it.
        """
        capacity = await self.backtest_capacity(user_id)
        if capacity is None:
            return
        try:
            taken = await self.backtests.take(
                user_id, backtest_id, capacity, self.settings.backtest_slot_seconds
            )
        except (OSError, RedisError) as exc:
            log.warning("backtest slots unavailable; letting it run", extra={"error": str(exc)})
            return
        if not taken.taken:
            raise LimitReached(
                f"your tier runs at most {capacity} backtest{'s' if capacity != 1 else ''} at "
                f"once and {taken.held} {'are' if taken.held != 1 else 'is'} running; retry "
                "when one has finished",
                details={"limit": capacity, "running": taken.held},
                headers={"X-RateLimit-Limit": str(capacity), "X-RateLimit-Remaining": "0"},
            )

    async def renew_backtest(self, user_id: str, backtest_id: str) -> bool:
        """Extend the slot's lease; False when it had lapsed or was released."""
        try:
            return await self.backtests.renew(
                user_id, backtest_id, self.settings.backtest_slot_seconds
            )
        except (OSError, RedisError):
            return False

    async def release_backtest(self, user_id: str, backtest_id: str) -> None:
        """Give the slot back (idempotent: releasing a slot not held does nothing)."""
        try:
            await self.backtests.release(user_id, backtest_id)
        except (OSError, RedisError) as exc:
            log.warning("backtest slot not released; it lapses", extra={"error": str(exc)})

    async def running_backtests(self, user_id: str) -> int:
        return await self.backtests.held(user_id)

    @contextlib.asynccontextmanager
    async def concurrent_backtest(self, user_id: str, backtest_id: str) -> AsyncIterator[None]:
        """``async with ratelimits.concurrent_backtest(user_id, backtest_id):`` holds a slot
        for a backtest run start to end in one process (429 on entry when none is free)."""
        await self.acquire_backtest(user_id, backtest_id)
        try:
            yield
        finally:
            await self.release_backtest(user_id, backtest_id)
