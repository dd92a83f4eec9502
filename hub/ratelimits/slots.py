"""Slots: how many of something one subject may hold at once (a user's running backtests),
counted in Redis across every hub and worker process.

A slot is a member of the subject's sorted set: the holder's token (a backtest id), scored by
when it lapses. Taking one first drops the lapsed ones, so a holder that died without
releasing frees its slot when its lease runs out instead of leaking it for good; a long holder
renews. Each step is one Lua script on Redis's own clock, so processes on machines whose
clocks differ agree, and two processes never both take the last slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from hub.keys import Keys

# KEYS[1] the set; ARGV: token, capacity, lease ms. Returns {taken (1/0), held after}. A token
# already holding a slot keeps it (renewed): taking is idempotent.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if held >= tonumber(ARGV[2]) then return {0, held} end
  held = held + 1
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return {1, held}
"""

# KEYS[1] the set; ARGV: token, lease ms. 1 renewed, 0 the slot is not held (lapsed or released).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
local until_ = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not until_ or tonumber(until_) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 1
"""

# KEYS[1] the set: how many slots are held now.
_HELD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class Taken:
    taken: bool
    held: int  # slots held after the attempt (the refused one not among them)


class Slots:
    """The slots of one scope (``backtests``), per subject."""

    def __init__(self, redis: Redis, keys: Keys, scope: str) -> None:
        self.keys = keys
        self.scope = scope
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._held = redis.register_script(_HELD)

    def _key(self, subject: str) -> str:
        return self.keys.slots(self.scope, subject)

    async def take(self, subject: str, token: str, capacity: int, lease_seconds: float) -> Taken:
        taken, held = await self._take(
            keys=[self._key(subject)], args=[token, capacity, int(lease_seconds * 1000)]
        )
        return Taken(bool(taken), int(held))

    async def renew(self, subject: str, token: str, lease_seconds: float) -> bool:
        renewed = await self._renew(
            keys=[self._key(subject)], args=[token, int(lease_seconds * 1000)]
        )
        return bool(renewed)

    async def release(self, subject: str, token: str) -> bool:
        return bool(await self.redis.zrem(self._key(subject), token))

    async def held(self, subject: str) -> int:
        return int(await self._held(keys=[self._key(subject)]))
