"""The bus: publish after commit, subscribe by sequence, one supervised Redis reader per process.

Publishers send ``seq\\nepoch\\n<json>`` on the topic's channel; the JSON is encoded once by the
publisher and never re-encoded: each process turns a message into one :class:`Event` whose
``/ws`` frame is built once and shared by every local subscriber.

A :class:`Subscription` hands over from history to live without gap, duplicate or reordering:
while it replays history it ignores live traffic, then it switches to live and reads history once
more, so whatever was committed in between is found there; any later jump in sequence is
backfilled from history before delivery continues. When the Redis connection drops, the reader
reconnects, resubscribes, and every subscription backfills from where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hub.keys import Keys
from hub.pubsub import PubSubClosed, PubSubConnection
from hub.recentscripts import PUBLISH_RECENT, PUBLISH_RECENT_BATCH
from hub.subscription import Event, Subscription, SubscriptionClosed
from hub.topics import Topic, TopicKind, TopicRegistry

log = logging.getLogger("tradehub.bus")

PING_INTERVAL = 10.0
READ_TIMEOUT = 25.0
ACTIVE_TIMEOUT = 5.0
RECENT_TTL_SECONDS = 7 * 24 * 3600
BATCH_LIMIT = 20_000  # events per batch message (keeps each Redis message to a few MB)


def wire(seq: int, epoch: str, data_json: bytes) -> bytes:
    return b"%d\n%s\n%s" % (seq, epoch.encode(), data_json)


class _Channel:
    """One Redis channel this process listens to, and its local subscribers."""

    __slots__ = ("active", "confirmed", "needs_resync", "sent", "subs", "topic", "wanted")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.subs: set[Subscription] = set()
        self.wanted = True
        self.sent = 0
        self.confirmed = 0
        self.active = asyncio.Event()
        self.needs_resync = False


class Bus:
    def __init__(
        self,
        redis: Redis,
        redis_url: str,
        keys: Keys,
        registry: TopicRegistry,
        *,
        queue_size: int = 2048,
        recent_maxlen: int = 10_000,
        on_slow_consumer: Any = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.registry = registry
        self.queue_size = queue_size
        self.recent_maxlen = recent_maxlen
        self._url = redis_url
        self._channels: dict[bytes, _Channel] = {}
        self._conn: PubSubConnection | None = None
        self._connected = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._prefix = keys.topic_channel("").encode()
        self._publish_recent = redis.register_script(PUBLISH_RECENT)
        self._publish_recent_batch = redis.register_script(PUBLISH_RECENT_BATCH)
        self._on_slow_consumer = on_slow_consumer
        self.reconnects = 0

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        self._reader = asyncio.create_task(self._run_reader(), name="bus-reader")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._connected.wait()

    async def stop(self) -> None:
        self._stopping = True
        for channel in list(self._channels.values()):
            for sub in list(channel.subs):
                sub.close("bus stopped", code="bus_stopped")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def local_subscriber_count(self) -> int:
        return sum(len(c.subs) for c in self._channels.values())

    def channel_count(self) -> int:
        return sum(1 for c in self._channels.values() if c.wanted)

    def local_topics(self, prefix: str = "") -> list[str]:
        """The topics (starting with ``prefix``) that subscribers in this process read now."""
        return [c.topic for c in self._channels.values() if c.subs and c.topic.startswith(prefix)]

    # -- publishing -------------------------------------------------------------------

    async def publish(
        self, topic: str, seq: int, data: Any, *, data_json: bytes | None = None
    ) -> None:
        """Announce an event already committed to Postgres (durable and state topics).

        Best effort by design: if Redis is down the event is still in Postgres, and every
        subscriber backfills from there once the reader reconnects.
        """
        await self.publish_many(
            [(topic, seq, data_json if data_json is not None else orjson.dumps(data))]
        )

    async def publish_many(self, items: list[tuple[str, int, bytes]]) -> None:
        if not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for topic, seq, data_json in items:
                    pipe.publish(self.keys.topic_channel(topic), wire(seq, "", data_json))
                await pipe.execute()
        except (OSError, RedisError) as exc:
            log.warning("publish failed; subscribers will backfill", extra={"error": str(exc)})

    async def listened(self, topics: list[str]) -> set[str]:
        """Which of ``topics`` some process listens to now (Redis PUBSUB NUMSUB).

        A writer may skip encoding and publishing events nobody listens to: anyone who
        subscribes after this answer reads them from history, since they are already committed.
        When Redis cannot say, every topic counts as listened to.
        """
        try:
            counts = await self.redis.pubsub_numsub(*[self.keys.topic_channel(t) for t in topics])
        except Exception:  # noqa: BLE001 - unknown means "publish"
            return set(topics)
        heard = {
            name.decode() if isinstance(name, bytes) else name for name, n in counts if int(n) > 0
        }
        return {t for t in topics if self.keys.topic_channel(t) in heard}

    async def publish_batches(self, batches: list[tuple[str, int, list[bytes]]]) -> None:
        """Announce runs of consecutive events, one Redis message per run: ``(topic,
        first_seq, [json, ...])``. Receivers split them back into single events, so a chunk of
        100,000 equity points costs one PUBLISH instead of 100,000."""
        items = [(t, first, payloads) for t, first, payloads in batches if payloads]
        if not items:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for topic, first, payloads in items:
                    for start in range(0, len(payloads), BATCH_LIMIT):
                        part = payloads[start : start + BATCH_LIMIT]
                        pipe.publish(
                            self.keys.topic_channel(topic),
                            b"*%d\n\n" % (first + start) + b"\n".join(part),
                        )
                await pipe.execute()
        except (OSError, RedisError) as exc:
            # The events are in Postgres: subscribers backfill once Redis answers again.
            log.warning("publish failed; subscribers will backfill", extra={"error": str(exc)})

    async def publish_recent(
        self, topic: str, data: Any, *, data_json: bytes | None = None
    ) -> tuple[int, str]:
        """Append to a recent topic's bounded history in Redis and publish; returns (seq, epoch)."""
        payload = data_json if data_json is not None else orjson.dumps(data)
        seq, epoch = await self._publish_recent(
            keys=[
                self.keys.topic_sequence(topic),
                self.keys.topic_history(topic),
                self.keys.topic_channel(topic),
            ],
            args=[payload, secrets.token_hex(8), self.recent_maxlen, RECENT_TTL_SECONDS],
        )
        return int(seq), epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def publish_recent_batch(self, items: list[tuple[str, bytes]]) -> list[tuple[int, str]]:
        """Publish many events on recent topics, ``(topic, json)`` each, in one Redis call per
        ``BATCH_LIMIT`` events: each topic's events keep their order and take consecutive
        sequences, and reach subscribers as one batch message per topic. Returns the
        (seq, epoch) of each item, in the order given. The JSON must hold no raw newline
        (orjson never writes one)."""
        out: list[tuple[int, str]] = []
        for start in range(0, len(items), BATCH_LIMIT):
            out.extend(await self._publish_recent_slice(items[start : start + BATCH_LIMIT]))
        return out

    async def _publish_recent_slice(self, items: list[tuple[str, bytes]]) -> list[tuple[int, str]]:
        by_topic: dict[str, list[int]] = {}
        for i, (topic, _) in enumerate(items):
            by_topic.setdefault(topic, []).append(i)
        keys: list[str] = []
        args: list[Any] = [secrets.token_hex(8), self.recent_maxlen, RECENT_TTL_SECONDS]
        for topic, indices in by_topic.items():
            keys += [
                self.keys.topic_sequence(topic),
                self.keys.topic_history(topic),
                self.keys.topic_channel(topic),
            ]
            args.append(len(indices))
            args.extend(items[i][1] for i in indices)
        if not keys:
            return []
        replies = await self._publish_recent_batch(keys=keys, args=args)
        out: list[tuple[int, str]] = [(0, "")] * len(items)
        for indices, (first, raw_epoch) in zip(by_topic.values(), replies, strict=True):
            epoch = raw_epoch.decode() if isinstance(raw_epoch, bytes) else str(raw_epoch)
            for offset, i in enumerate(indices):
                out[i] = (int(first) + offset, epoch)
        return out

    # -- recent topic history (used by Subscription) ----------------------------------

    async def recent_position(self, topic: str) -> tuple[int, str | None]:
        # redis-py types the shared sync/async command as ``Awaitable[list] | list``.
        reply = self.redis.hmget(self.keys.topic_sequence(topic), ["seq", "epoch"])
        seq, epoch = await cast("Awaitable[list[bytes | None]]", reply)
        return (int(seq) if seq else 0), (epoch.decode() if epoch else None)

    async def recent_after(self, topic: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        entries = await self.redis.xrange(
            self.keys.topic_history(topic), min=f"({after}-0", max="+", count=limit
        )
        out = []
        for entry_id, fields in entries:
            seq = int(entry_id.split(b"-", 1)[0])
            out.append((seq, fields[b"d"]))
        return out

    # -- subscribing ------------------------------------------------------------------

    def subscribe(
        self, topic: str | Topic, since: int | None = None, *, epoch: str | None = None
    ) -> Subscription:
        parsed = topic if isinstance(topic, Topic) else self.registry.parse(topic)
        return Subscription(self, parsed, since, epoch=epoch, maxsize=self.queue_size)

    @contextlib.asynccontextmanager
    async def stream(
        self, topic: str | Topic, since: int | None = None
    ) -> AsyncIterator[Subscription]:
        sub = self.subscribe(topic, since)
        try:
            await sub.open()
            yield sub
        finally:
            await sub.aclose()

    async def attach(self, sub: Subscription) -> None:
        name = self.keys.topic_channel(sub.topic.name).encode()
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(sub.topic.name)
            channel.wanted = False
        channel.subs.add(sub)
        if not channel.wanted:
            channel.wanted = True
            channel.active.clear()
            if self._conn is not None:
                channel.sent += 1
                try:
                    self._conn.subscribe([name.decode()])
                except (PubSubClosed, OSError):
                    pass
        if self._connected.is_set() and not channel.active.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ACTIVE_TIMEOUT):
                    await channel.active.wait()

    def detach(self, sub: Subscription) -> None:
        name = self.keys.topic_channel(sub.topic.name).encode()
        channel = self._channels.get(name)
        if channel is None:
            return
        channel.subs.discard(sub)
        if not channel.subs and channel.wanted:
            channel.wanted = False
            channel.active.clear()
            if self._conn is not None:
                with contextlib.suppress(PubSubClosed, OSError):
                    self._conn.unsubscribe([name.decode()])
            else:
                del self._channels[name]

    def slow_consumer(self, sub: Subscription) -> None:
        if self._on_slow_consumer is not None:
            self._on_slow_consumer(sub)

    # -- the reader -------------------------------------------------------------------

    async def _run_reader(self) -> None:
        backoff = 0.05
        while not self._stopping:
            conn = PubSubConnection(self._url)
            try:
                await conn.connect()
                self._conn = conn
                self._resubscribe(conn)
                self._connected.set()
                backoff = 0.05
                await self._read_loop(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, (OSError, ConnectionError, TimeoutError)):
                    log.exception("bus reader failed; reconnecting")
                elif self._connected.is_set() or backoff == 0.05:
                    log.warning(
                        "bus reader lost redis; reconnecting",
                        extra={"error": str(exc) or type(exc).__name__},
                    )
            finally:
                was_connected = self._connected.is_set()
                self._conn = None
                self._connected.clear()
                if was_connected:
                    self.reconnects += 1
                for channel in self._channels.values():
                    channel.active.clear()
                    channel.needs_resync = True
                await conn.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _resubscribe(self, conn: PubSubConnection) -> None:
        for name, channel in list(self._channels.items()):
            if not channel.wanted:
                del self._channels[name]
                continue
            channel.sent, channel.confirmed = 1, 0
            # Channels made while disconnected missed events too: every one backfills.
            channel.needs_resync = True
        names = [name.decode() for name in self._channels]
        # A control channel keeps the connection in subscriber mode even with no topics.
        conn.subscribe([self.keys.topic_channel("-control-"), *names])

    async def _read_loop(self, conn: PubSubConnection) -> None:
        loop = asyncio.get_running_loop()
        last_ping = loop.time()
        while True:
            try:
                async with asyncio.timeout(PING_INTERVAL):
                    reply = await conn.read()
            except TimeoutError:
                if loop.time() - last_ping > READ_TIMEOUT:
                    raise TimeoutError("no reply from redis to PING") from None
                conn.ping()
                continue
            last_ping = loop.time()
            self._dispatch(reply)
            for reply in conn.read_ready():
                self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or not reply:
            return
        kind = reply[0]
        if kind == b"message":
            channel = self._channels.get(reply[1])
            if channel is None or not channel.subs:
                return
            payload = reply[2]
            if payload[:1] == b"*":
                events = self._decode_batch(channel.topic, payload)
                for sub in tuple(channel.subs):
                    sub.push_many(events)
                return
            event = self._decode(channel.topic, payload)
            if event is None:
                return
            for sub in tuple(channel.subs):
                sub.push(event)
        elif kind == b"subscribe":
            channel = self._channels.get(reply[1])
            if channel is None:
                return
            channel.confirmed += 1
            if channel.wanted and channel.confirmed >= channel.sent:
                channel.active.set()
                if channel.needs_resync:
                    channel.needs_resync = False
                    for sub in tuple(channel.subs):
                        sub.resync()
        elif kind == b"unsubscribe":
            channel = self._channels.get(reply[1])
            if (
                channel is not None
                and not channel.wanted
                and not channel.subs
                and channel.confirmed >= channel.sent
            ):
                del self._channels[reply[1]]

    @staticmethod
    def _decode_batch(topic: str, payload: bytes) -> list[Event]:
        try:
            first_raw, epoch_raw, body = payload[1:].split(b"\n", 2)
            first = int(first_raw)
            epoch = epoch_raw.decode()
        except ValueError:
            log.warning("dropping malformed bus batch", extra={"topic": topic})
            return []
        return [Event(topic, first + i, data, epoch) for i, data in enumerate(body.split(b"\n"))]

    @staticmethod
    def _decode(topic: str, payload: bytes) -> Event | None:
        try:
            seq_raw, epoch_raw, data_json = payload.split(b"\n", 2)
            return Event(topic, int(seq_raw), data_json, epoch_raw.decode())
        except ValueError:
            log.warning("dropping malformed bus message", extra={"topic": topic})
            return None


__all__ = ["Bus", "Event", "Subscription", "SubscriptionClosed", "TopicKind", "wire"]
