"""How the client's subscriptions come back: a consumer too slow for the hub is cut off and
resumes from history with nothing lost; the backoff stays within its bounds and gives up after
its retries when asked to."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest
from tradehub_client import AsyncClient, Backoff, FeedEvent, FeedUnavailable, HistoryGone
from tradehub_client.feed import Cursor, Reconnect

from hub.settings import Settings
from tests.conftest import Account, LiveServer, free_port
from tests.helpers import eventually

TICKS = 3_000
PAD = "x" * 2_000  # big frames fill the socket's buffers quickly


async def test_a_consumer_too_slow_for_the_hub_resumes_with_nothing_lost(
    settings: Settings, alice: Account
) -> None:
    live = LiveServer(settings.model_copy(update={"bus_queue_size": 64, "ws_send_timeout": 1.0}))
    await live.start()
    try:
        symbol = f"SL{secrets.token_hex(4).upper()}"
        topic = f"ticks:{symbol}"
        bus = live.lifespan_state.bus
        async with AsyncClient(
            live.url, api_key=alice.token, backoff=Backoff(initial=0.05, maximum=0.5)
        ) as client:
            gate = asyncio.Event()
            events: list[FeedEvent] = []

            async def consume() -> None:
                async for event in client.subscribe(topic, since=0):
                    events.append(event)
                    if len(events) == 1:
                        await gate.wait()  # stops reading: the hub's queue and socket fill
                    if len(events) == TICKS:
                        return

            consumer = asyncio.create_task(consume())
            await bus.publish_recent(topic, {"price": 0.0, "pad": PAD})
            await eventually(lambda: asyncio.sleep(0, result=bool(events)))
            for start in range(1, TICKS, 500):
                batch = [
                    (topic, b'{"price":%d.0,"pad":"%s"}' % (n, PAD.encode()))
                    for n in range(start, min(start + 500, TICKS))
                ]
                await bus.publish_recent_batch(batch)
            # The hub cut the stalled subscriber off (its queue overflowed or its send timed
            # out) while the consumer sat on its first event.
            await eventually(lambda: asyncio.sleep(0, result=bus.local_subscriber_count() == 0))
            gate.set()
            await asyncio.wait_for(consumer, timeout=60)
        assert [e.seq for e in events] == list(range(1, TICKS + 1))
        assert [e.data["price"] for e in events] == [float(n) for n in range(TICKS)]
        assert client.feed.reconnects >= 1
    finally:
        await live.stop()


async def test_an_unreachable_hub_gives_up_after_the_retries(alice: Account) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backoff = Backoff(initial=0.01, maximum=0.05, retries=3)
    async with AsyncClient(url, api_key=alice.token, backoff=backoff) as client:
        started = time.monotonic()
        with pytest.raises(FeedUnavailable, match="3 attempts failed"):
            async for _ in client.subscribe("ticks:X"):
                pass
        assert client.feed.reconnects == 3
        assert time.monotonic() - started < 30  # a bound, not a measurement


def test_the_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, factor=2.0)
    for attempt in range(12):
        cap = min(2.0, 0.1 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert backoff.delay(10_000) <= 2.0
    with pytest.raises(ValueError, match="initial <= maximum"):
        Backoff(initial=3.0, maximum=1.0)


def test_the_cursor_drops_repeats_and_resubscribes_over_a_hole() -> None:
    """What the client does with frames the hub should never send: a repeat is dropped, a jump
    on a gapless topic reconnects from the last delivered sequence, and another epoch is history
    gone. A state topic may jump (it carries the newest state)."""
    cursor = Cursor("ticks:X", since=4, epoch="e1")
    assert cursor.subscribe_frame() == {
        "op": "subscribe",
        "channel": "ticks:X",
        "since": 4,
        "epoch": "e1",
    }
    assert cursor.accept({"channel": "ticks:X", "seq": 4, "epoch": "e1"}) is None
    assert cursor.accept({"channel": "ticks:X", "seq": 5, "epoch": "e1", "data": 1}) is not None
    with pytest.raises(Reconnect):
        cursor.accept({"channel": "ticks:X", "seq": 7, "epoch": "e1"})
    assert cursor.last == 5 and cursor.subscribe_frame()["since"] == 5
    with pytest.raises(HistoryGone):
        cursor.accept({"channel": "ticks:X", "seq": 6, "epoch": "e2"})
    with pytest.raises(HistoryGone) as gone:
        cursor.subscribed({"op": "subscribed", "recovered": False, "missed": {"from": 6}})
    assert gone.value.missed == (6, None)
    state = Cursor("account:D1:positions", since=None, epoch=None)
    state.subscribed({"op": "subscribed", "channel": "account:D1:positions", "recovered": True})
    assert state.accept({"channel": "account:D1:positions", "seq": 9}) is not None
    assert state.accept({"channel": "account:D1:positions", "seq": 12}) is not None
    assert state.last == 12
