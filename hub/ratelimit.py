"""Rate limits in Redis, shared by every hub process: how many times a subject may do something
within a window.

A limit is a fixed window per (scope, subject): the first hit starts the window, its key expires
with it, and ``retry_after`` says when the next window opens. Limits never fail closed: when
Redis cannot answer, the request is let through (Postgres-backed checks still hold) and the
failure logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.errors import RateLimited
from hub.keys import Keys

log = logging.getLogger("tradehub.ratelimit")

_HIT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Limit:
    scope: str  # what is limited: "login:user", "login:address", "api"...
    limit: int  # hits allowed per window
    window_seconds: float


@dataclass(frozen=True)
class Usage:
    limit: Limit
    count: int
    retry_after: float  # seconds until the window ends

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit.limit - self.count)

    def headers(self) -> dict[str, str]:
        """``Retry-After`` and ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (seconds)."""
        reset = str(max(1, math.ceil(self.retry_after)))
        headers = {
            "X-RateLimit-Limit": str(self.limit.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset,
        }
        if self.exceeded:
            headers["Retry-After"] = reset
        return headers


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._hit = redis.register_script(_HIT)

    def _key(self, limit: Limit, subject: str) -> str:
        # Subjects (usernames, addresses) are hashed: the key names no one.
        digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return self.keys.rate_limit(limit.scope, digest)

    async def hit(self, limit: Limit, subject: str, amount: int = 1) -> Usage:
        """Count ``amount`` hits of ``subject`` (0 reads the count without adding)."""
        try:
            count, ttl_ms = await self._hit(
                keys=[self._key(limit, subject)],
                args=[amount, int(limit.window_seconds * 1000)],
            )
        except (OSError, RedisError) as exc:
            log.warning(
                "rate limit unavailable; letting the request through", extra={"error": str(exc)}
            )
            return Usage(limit, 0, limit.window_seconds)
        return Usage(limit, int(count), int(ttl_ms) / 1000)

    async def check(self, limit: Limit, subject: str) -> Usage:
        """Raise :class:`RateLimited` (429 with ``Retry-After``) if ``subject`` already used
        up its window; counts nothing."""
        usage = await self.hit(limit, subject, 0)
        if usage.count >= limit.limit:
            exhausted = Usage(limit, limit.limit + 1, usage.retry_after)
            raise RateLimited(
                f"too many attempts; try again in {math.ceil(usage.retry_after)} s",
                headers=exhausted.headers(),
                details={"retry_after": math.ceil(usage.retry_after), "limit": limit.limit},
            )
        return usage

    async def reset(self, limit: Limit, subject: str) -> None:
        try:
            await self.redis.delete(self._key(limit, subject))
        except (OSError, RedisError):
            pass
