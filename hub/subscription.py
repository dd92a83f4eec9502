"""One subscriber of one topic: history, then live, in order, exactly once."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from hub.topics import Topic, TopicKind
from hub.wsframe import text_frame

if TYPE_CHECKING:
    from hub.bus import Bus

HISTORY_PAGE = 1000
_UNSET: Any = object()
T = TypeVar("T")


class Event:
    """One event as this process received it: encoded once, framed once, shared by all."""

    __slots__ = (
        "_data", "_frame", "_memo", "_text", "_wire", "data_json", "epoch", "seq", "topic"
    )  # fmt: skip

    def __init__(self, topic: str, seq: int, data_json: bytes, epoch: str = "") -> None:
        self.topic = topic
        self.seq = seq
        self.data_json = data_json
        self.epoch = epoch
        self._data: Any = _UNSET
        self._frame: bytes | None = None
        self._text: str | None = None
        self._wire: bytes | None = None
        self._memo: dict[Any, Any] | None = None

    def data(self) -> Any:
        if self._data is _UNSET:
            self._data = orjson.loads(self.data_json)
        return self._data

    def ws_frame(self) -> bytes:
        """The ``/ws`` frame ``{"channel", "seq", ["epoch",] "data"}``, built once per process."""
        if self._frame is None:
            epoch = b',"epoch":"%s"' % self.epoch.encode() if self.epoch else b""
            self._frame = b'{"channel":%s,"seq":%d%s,"data":%s}' % (
                orjson.dumps(self.topic),
                self.seq,
                epoch,
                self.data_json,
            )
        return self._frame

    def ws_text(self) -> str:
        """The ``/ws`` frame as text (what WebSocket text frames carry), decoded once."""
        if self._text is None:
            self._text = self.ws_frame().decode()
        return self._text

    def ws_wire(self) -> bytes | None:
        """The ``/ws`` frame as a WebSocket text frame, ready for the socket, built once; None
        when the event is not valid UTF-8 (the ordinary send path then reports the failure)."""
        if self._wire is None:
            try:
                self.ws_text()
            except UnicodeDecodeError:
                return None
            self._wire = text_frame(self.ws_frame())
        return self._wire

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.topic, self.seq, self.epoch)

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """One object per event and ``key`` for every local subscriber (a GraphQL payload built
        once, not once per subscriber)."""
        if self._memo is None:
            self._memo = {}
        found = self._memo.get(key, _UNSET)
        if found is _UNSET:
            found = self._memo[key] = build()
        return found  # type: ignore[no-any-return]

    def keyed(self, obj: T) -> T:
        """Tag a GraphQL payload with this event's identity, so that its execution result can
        be shared by every subscriber running the same operation."""
        obj.__dict__["_th_event_key"] = self.key
        return obj

    def __repr__(self) -> str:
        return f"Event({self.topic!r}, seq={self.seq})"


class SubscriptionError(ValueError):
    """The subscription cannot start: an impossible ``since``, an unknown topic."""


class SubscriptionClosed(Exception):
    """The subscription ended; resume with ``since=last`` (``code`` says why)."""

    def __init__(self, reason: str, code: str, last: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.last = last


class Subscription:
    def __init__(
        self, bus: Bus, topic: Topic, since: int | None, *, epoch: str | None, maxsize: int
    ) -> None:
        if since is not None and since < 0:
            raise SubscriptionError(f"since must be a non-negative sequence, got {since}")
        self.bus = bus
        self.topic = topic
        self._kind = topic.kind
        self.since = since
        self.requested_epoch = epoch
        self.maxsize = maxsize
        self.epoch: str | None = None
        self.recovered = True
        self.missed: tuple[int, int | None] | None = None
        self.last = 0
        # The sequence after which delivery starts (None for a state topic opened without since).
        self.start_after: int | None = since
        self._ready: deque[Event] = deque()
        self._buffer: deque[Event] = deque()
        # What the consumer waits on when it has nothing to deliver (set by _wake).
        self._waiter: asyncio.Future[None] | None = None
        # See deliver_directly: the consumer's synchronous sink, and whether it waits now.
        self._direct: Callable[[Event], bool] | None = None
        self._parked = False
        self._live = False
        self._resync = False
        self._closed: SubscriptionClosed | None = None
        self._attached = False
        self.lagged = 0  # times it fell behind live and caught up from history

    # -- opening ----------------------------------------------------------------------

    async def open(self) -> Subscription:
        kind = self.topic.kind
        registry = self.bus.registry
        if kind is TopicKind.DURABLE:
            source = registry.history(self.topic)
            self._live = self.since is None
            await self._attach()
            newest = await source.last_sequence(self.topic)
            if self.since is None:
                self.last = newest
                self.start_after = newest
            else:
                if self.since > newest:
                    await self.aclose()
                    raise SubscriptionError(
                        f"since {self.since} is beyond the last sequence {newest} of {self.topic.name}"
                    )
                self.last = self.since
        elif kind is TopicKind.STATE:
            source_state = registry.state(self.topic)
            self._live = True
            await self._attach()
            current = await source_state.current(self.topic)
            if current is not None and (self.since is None or current.seq > self.since):
                self._ready.append(Event(self.topic.name, current.seq, current.data_json))
                self.last = current.seq
            else:
                self.last = self.since or (current.seq if current is not None else 0)
        else:
            self._live = True
            await self._attach()
            await self._open_recent()
        return self

    async def _attach(self) -> None:
        await self.bus.attach(self)
        self._attached = True

    async def _open_recent(self) -> None:
        newest, epoch = await self.bus.recent_position(self.topic.name)
        self.epoch = epoch
        if self.since is None:
            self.last = newest
            self.start_after = newest
            return
        if epoch is None and self.since > 0:
            # Redis holds nothing for this topic any more (expired, or lost in a restart).
            self.recovered = False
            self.missed = (self.since + 1, None)
            self.last = newest
            self.start_after = newest
            return
        if self.requested_epoch and epoch and self.requested_epoch != epoch:
            # Redis lost this topic's history: what came after `since` in the old epoch is gone.
            self.recovered = False
            self.missed = (self.since + 1, None)
            self.last = newest
            self.start_after = newest
            return
        if self.since > newest:
            await self.aclose()
            raise SubscriptionError(
                f"since {self.since} is beyond the last sequence {newest} of {self.topic.name}"
            )
        entries = await self.bus.recent_after(self.topic.name, self.since, self.bus.recent_maxlen)
        first = entries[0][0] if entries else newest + 1
        if first > self.since + 1:
            self.recovered = False
            self.missed = (self.since + 1, first - 1)
        self.last = self.since
        for seq, data_json in entries:
            if seq > self.last:
                self._ready.append(Event(self.topic.name, seq, data_json, epoch or ""))
                self.last = seq

    def deliver_directly(self, sink: Callable[[Event], bool] | None) -> None:
        """Let the bus reader hand live events to ``sink`` while the consumer waits.

        When the consumer is waiting in ``async for`` with nothing queued, an event that comes
        next in order (the sequence after the last delivered, in the same epoch) is given to
        ``sink`` at once, without queueing it or waking the consumer: the /ws feed writes its
        frame to the socket there, so a fan-out costs no task switch per subscriber. ``sink``
        must not block or raise; it returns False when it cannot take the event now, and then
        that event and every later one are queued as usual until the consumer has caught up
        and waits again. Everything else (history, gaps, a slow consumer) is unchanged.
        """
        self._direct = sink

    # -- called by the bus reader (synchronously, never blocking) ---------------------

    def push(self, event: Event) -> None:
        if self._closed is not None or not self._live:
            return
        if self._parked:
            if self._in_order(event) and self._direct(event):  # type: ignore[misc]
                self.last = event.seq
                return
            self._parked = False
        if len(self._buffer) >= self.maxsize:
            self._overflow()
            return
        self._buffer.append(event)
        self._wake()

    def push_many(self, events: list[Event]) -> None:
        if self._closed is not None or not self._live or not events:
            return
        if self._parked:
            sink = self._direct
            taken = 0
            for event in events:
                if not (self._in_order(event) and sink(event)):  # type: ignore[misc]
                    break
                self.last = event.seq
                taken += 1
            if taken == len(events):
                return
            self._parked = False
            events = events[taken:]
        if len(self._buffer) + len(events) > self.maxsize:
            self._overflow()
            return
        self._buffer.extend(events)
        self._wake()

    def _in_order(self, event: Event) -> bool:
        """``event`` is the very next one to deliver: nothing to check against history."""
        kind = self._kind
        if kind is TopicKind.STATE:
            return event.seq > self.last
        if kind is TopicKind.RECENT and (self.epoch is None or event.epoch != self.epoch):
            return False
        return event.seq == self.last + 1

    def _wake(self) -> None:
        self._parked = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _overflow(self) -> None:
        """More live events than the queue holds: what to do depends on what history can give.

        A durable topic drops its live queue and reads history at its own pace, then goes live
        again (nothing is lost, memory stays bounded, nobody waits). A state topic only needs the
        newest state. A recent topic cannot promise its history, so the subscriber is cut off
        and told where it stood.
        """
        self.bus.slow_consumer(self)
        kind = self.topic.kind
        if kind is TopicKind.DURABLE:
            self._buffer.clear()
            self._live = False
            self.lagged += 1
        elif kind is TopicKind.STATE:
            self._buffer.clear()
            self._resync = True
            self.lagged += 1
        else:
            self.close(
                f"slow consumer: more than {self.maxsize} events behind on {self.topic.name}",
                code="slow_consumer",
            )
            return
        self._wake()

    def resync(self) -> None:
        self._resync = True
        self._wake()

    def close(self, reason: str, *, code: str) -> None:
        if self._closed is None:
            self._closed = SubscriptionClosed(reason, code, self.last)
        self._detach()
        self._wake()

    def _detach(self) -> None:
        if self._attached:
            self._attached = False
            self.bus.detach(self)

    async def aclose(self) -> None:
        self.close("unsubscribed", code="unsubscribed")

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # -- iteration --------------------------------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._closed is not None:
                if self._closed.code == "unsubscribed":
                    raise StopAsyncIteration
                raise self._closed
            if not self._live:
                await self._catch_up()
                continue
            if self._resync:
                self._resync = False
                await self._backfill(None)
                continue
            if self._buffer:
                event = self._buffer.popleft()
                if self._in_order(event):
                    self.last = event.seq
                    return event
                await self._accept(event)
                continue
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            self._parked = self._direct is not None
            try:
                await waiter
            finally:
                self._parked = False
                self._waiter = None

    async def _catch_up(self) -> None:
        """Replay durable history page by page, then go live and look once more."""
        got = await self._read_history(self.last, None)
        if got < HISTORY_PAGE:
            self._live = True
            await self._read_history(self.last, None)

    async def _read_history(self, after: int, upto: int | None) -> int:
        source = self.bus.registry.history(self.topic)
        stored = await source.events_after(self.topic, after, HISTORY_PAGE)
        for item in stored:
            if item.seq != self.last + 1:
                break
            if upto is not None and item.seq > upto:
                break
            self._ready.append(Event(self.topic.name, item.seq, item.data_json))
            self.last = item.seq
        return len(stored)

    async def _accept(self, event: Event) -> None:
        kind = self.topic.kind
        if kind is TopicKind.STATE:
            if event.seq > self.last:
                self.last = event.seq
                self._ready.append(event)
            return
        if kind is TopicKind.RECENT:
            if self.epoch is None:
                self.epoch = event.epoch
            elif event.epoch != self.epoch:
                self.close(
                    f"history of {self.topic.name} was reset (epoch {self.epoch} -> {event.epoch}); "
                    "subscribe again",
                    code="epoch_changed",
                )
                return
        if event.seq <= self.last:
            return
        if event.seq > self.last + 1:
            await self._backfill(event.seq - 1)
            if self._closed is not None:
                return
        if event.seq == self.last + 1:
            self.last = event.seq
            self._ready.append(event)

    async def _backfill(self, upto: int | None) -> None:
        """Fill the hole before ``upto`` (or anything new, on a resync) from history."""
        kind = self.topic.kind
        if kind is TopicKind.STATE:
            current = await self.bus.registry.state(self.topic).current(self.topic)
            if current is not None and current.seq > self.last:
                self._ready.append(Event(self.topic.name, current.seq, current.data_json))
                self.last = current.seq
            return
        if kind is TopicKind.RECENT:
            await self._backfill_recent(upto)
            return
        # Durable: drop the live queue and catch up from history page by page, then go live
        # again (and look at history once more), exactly as a new subscription does.
        self._buffer.clear()
        self._live = False

    async def _backfill_recent(self, upto: int | None) -> None:
        _, epoch = await self.bus.recent_position(self.topic.name)
        if self.epoch is not None and epoch != self.epoch:
            self.close(
                f"history of {self.topic.name} was reset (epoch {self.epoch} -> {epoch}); subscribe again",
                code="epoch_changed",
            )
            return
        entries = await self.bus.recent_after(self.topic.name, self.last, self.bus.recent_maxlen)
        for seq, data_json in entries:
            if upto is not None and seq > upto:
                break
            if seq != self.last + 1:
                self.close(
                    f"events {self.last + 1}..{seq - 1} of {self.topic.name} are no longer in history",
                    code="history_lost",
                )
                return
            self._ready.append(Event(self.topic.name, seq, data_json, self.epoch or ""))
            self.last = seq
        if upto is not None and self.last < upto:
            self.close(
                f"events {self.last + 1}..{upto} of {self.topic.name} are no longer in history",
                code="history_lost",
            )
