"""The ``bars:{symbol}:{timeframe}`` state topics, and who wants them.

A topic's state lives in one Redis hash (``Keys.topic_state``): its last sequence and current
document, the forming bar (``closed: false``) or the last closed one. One Lua call per flush
takes each topic's next sequence, stores the document and publishes it, so a subscriber's
"current state first" and the live changes after it never disagree, whichever hub process
built the bar.

Interest: the pairs somebody wants live in one sorted set (``Keys.bars_wanted``), each scored
by when the wish expires. Opening a subscription wants its pair, every hub process re-wants the
pairs its local subscribers hold every :data:`REFRESH_SECONDS`, and a live run calls
:meth:`hub.marketdata.service.MarketDataService.want_bars` as often. At most
``TRADEHUB_BARS_MAX_PAIRS`` pairs are wanted at once: past that a new pair is refused
(:class:`~hub.errors.LimitReached`) until one expires.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, LimitReached
from hub.topics import SYMBOL, AnyUser, StoredEvent, Topic, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from hub.domains import Resources
    from hub.keys import Keys

# What hub.datasets.timeframes accepts (tests/test_bars.py checks that both agree).
TIMEFRAME = r"[1-9][0-9]{0,3}[smhdw]"
_SYMBOL = re.compile(SYMBOL)
_TIMEFRAME = re.compile(TIMEFRAME)
WANT_SECONDS = 15.0  # a wish lasts this long unless renewed
REFRESH_SECONDS = 5.0  # how often hub processes and live runs renew theirs
STATE_TTL_SECONDS = 7 * 24 * 3600  # a topic's state outlives the last wish by this much

# KEYS: the wanted set, then each pair's state hash. ARGV: now, expiry, cap, state ttl, then
# each pair's member. Drops expired wishes, adds or renews each pair unless the set is full
# (then the pair is returned as refused), and keeps each wanted topic's state (and sequence).
_WANT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local refused = {}
local cap = tonumber(ARGV[3])
for i = 5, #ARGV do
  local member = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], member) or redis.call('ZCARD', KEYS[1]) < cap then
    redis.call('ZADD', KEYS[1], ARGV[2], member)
    redis.call('EXPIRE', KEYS[i - 3], ARGV[4])
  else
    refused[#refused + 1] = member
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return refused
"""

# KEYS: per topic its state hash and channel. ARGV: the ttl, then each topic's document.
# Returns each topic's new sequence. The message is what Bus.publish sends (no epoch).
_PUBLISH = """
local out = {}
for i = 1, #KEYS / 2 do
  local doc = ARGV[i + 1]
  local seq = redis.call('HINCRBY', KEYS[2 * i - 1], 'seq', 1)
  redis.call('HSET', KEYS[2 * i - 1], 'doc', doc)
  redis.call('EXPIRE', KEYS[2 * i - 1], ARGV[1])
  redis.call('PUBLISH', KEYS[2 * i], seq .. '\\n\\n' .. doc)
  out[i] = seq
end
return out
"""


def bars_topic(symbol: str, timeframe: str) -> str:
    """The topic of ``symbol``'s ``timeframe`` bars; BadRequest naming the bad argument."""
    if not isinstance(symbol, str) or _SYMBOL.fullmatch(symbol) is None:
        raise BadRequest(
            f"invalid symbol {symbol!r}: 1-32 letters, digits and / _ . : -", field="symbol"
        )
    try:
        timeframe_ns(timeframe)
    except (TypeError, ValueError) as exc:
        raise BadRequest(str(exc), field="timeframe") from None
    return f"bars:{symbol}:{timeframe}"


def split_pair(key: str, separator: str = ":") -> tuple[str, str]:
    """``symbol:timeframe`` (a topic's key) or ``symbol|timeframe`` (a wish) as its parts: the
    timeframe is after the last separator (a symbol may hold ``:``)."""
    symbol, _, timeframe = key.rpartition(separator)
    return symbol, timeframe


def parse_pairs(entries: Iterable[str]) -> dict[str, set[str]]:
    """``TRADEHUB_BARS`` (``BTC/USD:1m``, ...) as timeframes by symbol; ValueError names a bad
    entry."""
    pairs: dict[str, set[str]] = {}
    for entry in entries:
        symbol, timeframe = split_pair(entry.strip())
        try:
            bars_topic(symbol, timeframe)
        except BadRequest as exc:
            raise ValueError(f"TRADEHUB_BARS entry {entry!r}: {exc.message}") from None
        pairs.setdefault(symbol, set()).add(timeframe)
    return pairs


class Wishes:
    """The shared set of wanted pairs."""

    def __init__(self, redis: Redis, keys: Keys, cap: int) -> None:
        self.redis = redis
        self.keys = keys
        self.cap = cap
        self._want = redis.register_script(_WANT)

    async def want(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Want each pair for the next :data:`WANT_SECONDS`; returns those refused (full)."""
        pairs = list(pairs)
        if not pairs:
            return []
        now = time.time()
        refused = await self._want(
            keys=[
                self.keys.bars_wanted,
                *(self.keys.topic_state(f"bars:{s}:{tf}") for s, tf in pairs),
            ],
            args=[
                now,
                now + WANT_SECONDS,
                self.cap,
                STATE_TTL_SECONDS,
                *(f"{s}|{tf}" for s, tf in pairs),
            ],
        )
        return [split_pair(_text(m), "|") for m in refused]

    async def want_one(self, symbol: str, timeframe: str) -> None:
        if await self.want([(symbol, timeframe)]):
            raise LimitReached(
                f"bars are built for at most {self.cap} (symbol, timeframe) pairs at once "
                f"(TRADEHUB_BARS_MAX_PAIRS); {symbol} {timeframe} is not one of them yet: "
                "try again once fewer are wanted"
            )

    async def wanted(self) -> dict[str, set[str]]:
        """The pairs wanted now, at most ``cap`` of them, as timeframes by symbol."""
        members = await self.redis.zrangebyscore(
            self.keys.bars_wanted, time.time(), "+inf", start=0, num=self.cap
        )
        pairs: dict[str, set[str]] = {}
        for member in members:
            symbol, timeframe = split_pair(_text(member), "|")
            if _SYMBOL.fullmatch(symbol) and _TIMEFRAME.fullmatch(timeframe):
                pairs.setdefault(symbol, set()).add(timeframe)
        return pairs


class StatePublisher:
    """Publishes bar documents on their state topics (one Redis call for many)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.keys = keys
        self._publish = redis.register_script(_PUBLISH)

    async def publish(self, items: list[tuple[str, bytes]]) -> list[int]:
        """``(topic, document JSON)`` each, in order; returns their sequences."""
        if not items:
            return []
        keys: list[str] = []
        for topic, _ in items:
            keys += [self.keys.topic_state(topic), self.keys.topic_channel(topic)]
        seqs = await self._publish(keys=keys, args=[STATE_TTL_SECONDS, *(doc for _, doc in items)])
        return [int(s) for s in seqs]


class BarsState:
    """A bars topic's current state, read from Redis. Reading it wants the pair: a
    subscription is what asks for bars to be built."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def current(self, topic: Topic) -> StoredEvent | None:
        symbol, timeframe = split_pair(topic.key)
        await self.resources.service("marketdata").want_bars(symbol, timeframe)
        seq, doc = await self.resources.redis.hmget(  # type: ignore[misc]
            self.resources.keys.topic_state(topic.name), ["seq", "doc"]
        )
        if not seq or not doc:
            return None
        return StoredEvent(int(seq), bytes(doc))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


TOPICS = (
    TopicSpec.of(
        "bars",
        TopicKind.STATE,
        rf"bars:(?P<key>{SYMBOL}:{TIMEFRAME})",
        lambda r: TopicFamily(state=BarsState(r), authorizer=AnyUser()),
    ),
)
