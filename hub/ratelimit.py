"""Rate limits in Redis, shared by every hub process: how many times a subject may do something
within a window.

A limit is a fixed window per (scope, subject): the first hit starts the window, its key expires
with it, and ``retry_after`` says when the next window opens. Several limits on one request (a
minute's and an hour's) are counted by :meth:`RateLimiter.admit` in one Lua script: either every
window has room and each counts the hit, or none counts it and the request is refused, so a
refused request never spends another window's budget and two hub processes never both take the
last hit. Limits never fail closed: when Redis cannot answer, the request is let through
(Postgres-backed checks still hold) and the failure logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
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

# KEYS: one counter per limit. ARGV: the amount, then per limit its allowance and window (ms).
# Returns {admitted (1/0), count_1, ttl_1, count_2, ttl_2, ...}: the counts after the hit when
# admitted, as they stood when refused.
_ADMIT = """
local amount = tonumber(ARGV[1])
local n = #KEYS
local out = {1}
for i = 1, n do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl < 0 then
    count = 0
    ttl = tonumber(ARGV[1 + 2 * i])
  end
  if count + amount > tonumber(ARGV[2 * i]) then out[1] = 0 end
  out[2 * i] = count
  out[2 * i + 1] = ttl
end
if out[1] == 1 then
  for i = 1, n do
    local window = tonumber(ARGV[1 + 2 * i])
    if redis.call('PTTL', KEYS[i]) < 0 then
      redis.call('SET', KEYS[i], amount, 'PX', window)
      out[2 * i + 1] = window
    else
      redis.call('INCRBY', KEYS[i], amount)
    end
    out[2 * i] = out[2 * i] + amount
  end
end
return out
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
    at: float = 0.0  # when it was counted (epoch seconds); 0 means now

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit.limit - self.count)

    @property
    def reset_at(self) -> int:
        """When the window ends, in epoch seconds (rounded up)."""
        return math.ceil((self.at or time.time()) + self.retry_after)

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-Limit``/``-Remaining``, ``-Reset`` (the window's end in epoch seconds,
        as Sigma Lab's seed shows it) and, once exceeded, ``Retry-After`` (seconds)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if self.exceeded:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


@dataclass(frozen=True)
class Verdict:
    """What :meth:`RateLimiter.admit` decided about one request under several limits."""

    admitted: bool
    usages: tuple[Usage, ...]

    @property
    def binding(self) -> Usage:
        """The usage a caller is shown: when refused, the exceeded window that ends last (the
        wait that actually lets the request through); else the one with the least left."""
        if not self.admitted:
            exceeded = [u for u in self.usages if u.exceeded]
            return max(exceeded, key=lambda u: u.retry_after)
        return min(self.usages, key=lambda u: (u.remaining, u.limit.window_seconds))

    def headers(self) -> dict[str, str]:
        return self.binding.headers() if self.usages else {}


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._hit = redis.register_script(_HIT)
        self._admit = redis.register_script(_ADMIT)

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

    async def admit(self, limits: Sequence[tuple[Limit, str]], amount: int = 1) -> Verdict:
        """Count one request of ``amount`` hits against every (limit, subject) at once, or
        against none of them when any would go past its allowance (then ``admitted`` is
        False and the exceeded usages show ``count`` past the limit)."""
        if not limits:
            return Verdict(True, ())
        now = time.time()
        args: list[int] = [amount]
        for limit, _ in limits:
            args += [limit.limit, int(limit.window_seconds * 1000)]
        try:
            out = await self._admit(keys=[self._key(lim, subj) for lim, subj in limits], args=args)
        except (OSError, RedisError) as exc:
            log.warning(
                "rate limit unavailable; letting the request through", extra={"error": str(exc)}
            )
            return Verdict(True, ())
        admitted = int(out[0]) == 1
        usages = []
        for i, (limit, _) in enumerate(limits):
            count, ttl_ms = int(out[1 + 2 * i]), int(out[2 + 2 * i])
            if not admitted and count + amount > limit.limit:
                count = limit.limit + amount  # shown as exceeded: what this request would make
            usages.append(Usage(limit, count, ttl_ms / 1000, now))
        return Verdict(admitted, tuple(usages))

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
