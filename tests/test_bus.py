"""The bus against real Redis and Postgres: order, resume, backfill, slow consumers, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from hub import marketdata
from hub.bus import Bus
from hub.embedded import EmbeddedValkey, free_port
from hub.eventlog import EventLog
from hub.jobs import repository as jobs_repo
from hub.keys import Keys
from hub.settings import Settings
from hub.subscription import Event, Subscription, SubscriptionClosed, SubscriptionError
from hub.topics import TopicRegistry
from tests.conftest import Account
from tests.helpers import eventually


def registry_for(pool: asyncpg.Pool) -> TopicRegistry:
    from types import SimpleNamespace

    from hub import jobs
    from hub.domains import topic_registry

    registry = topic_registry([jobs.domain, marketdata.domain])
    registry.bind(SimpleNamespace(pool=pool))
    return registry


@pytest.fixture
async def bus(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[Bus]:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    live = Bus(
        redis,
        settings.redis_url,
        Keys(f"{settings.redis_prefix}b{secrets.token_hex(3)}:"),
        registry_for(pool),
    )
    await live.start()
    try:
        yield live
    finally:
        await live.stop()
        await redis.aclose()


def log_topic() -> str:
    return f"job:{uuid.uuid4()}:log"


async def append(pool: asyncpg.Pool, bus: Bus | None, topic: str, items: list[Any]) -> list[int]:
    """Write events durably; announce them unless ``bus`` is None (a lost announcement)."""
    async with pool.acquire() as conn, conn.transaction():
        stored = await EventLog.append(conn, topic, items)
    if bus is not None:
        await bus.publish_many([(topic, seq, data) for seq, data in stored])
    return [seq for seq, _ in stored]


async def take(sub: Subscription, count: int, timeout: float = 20.0) -> list[Event]:
    out: list[Event] = []
    async with asyncio.timeout(timeout):
        async for event in sub:
            out.append(event)
            if len(out) == count:
                break
    return out


async def test_durable_history_then_live_without_gap_or_duplicate(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    topic = log_topic()
    await append(pool, bus, topic, [{"n": i} for i in range(1, 1501)])
    async with bus.stream(topic, since=0) as sub:

        async def writer() -> None:
            for start in range(1501, 3001, 100):
                await append(pool, bus, topic, [{"n": i} for i in range(start, start + 100)])
                await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        events = await take(sub, 3000)
        await task
    assert [e.seq for e in events] == list(range(1, 3001))
    assert [e.data()["n"] for e in events] == list(range(1, 3001))


async def test_since_none_starts_now_and_since_resumes(bus: Bus, pool: asyncpg.Pool) -> None:
    topic = log_topic()
    await append(pool, bus, topic, [{"n": 1}, {"n": 2}])
    async with bus.stream(topic) as live:
        await append(pool, bus, topic, [{"n": 3}])
        assert [e.seq for e in await take(live, 1)] == [3]
    async with bus.stream(topic, since=1) as resumed:
        assert [e.seq for e in await take(resumed, 2)] == [2, 3]


async def test_since_beyond_the_last_sequence_is_refused(bus: Bus, pool: asyncpg.Pool) -> None:
    topic = log_topic()
    await append(pool, bus, topic, [{"n": 1}])
    with pytest.raises(SubscriptionError, match="beyond the last sequence 1"):
        await bus.subscribe(topic, since=5).open()
    assert bus.local_subscriber_count() == 0


async def test_a_jump_is_backfilled_before_delivery_continues(bus: Bus, pool: asyncpg.Pool) -> None:
    topic = log_topic()
    async with bus.stream(topic) as sub:
        await append(pool, None, topic, [{"n": 1}, {"n": 2}, {"n": 3}])  # announcements lost
        await append(pool, bus, topic, [{"n": 4}])
        events = await take(sub, 4)
    assert [e.seq for e in events] == [1, 2, 3, 4]


async def test_state_topic_gives_current_state_then_changes(
    bus: Bus, pool: asyncpg.Pool, alice: Account
) -> None:
    from hub.jobs.service import job_document, job_topic

    row = await jobs_repo.insert(pool, alice.user_id, "dataset.synthetic", {"symbol": "X"}, 10)
    job_id = str(row["job_id"])
    claimed = await jobs_repo.claim(pool, job_id, 60)
    assert claimed is not None
    async with bus.stream(job_topic(job_id)) as sub:
        first = await take(sub, 1)
        assert first[0].seq == claimed["version"]
        assert first[0].data()["status"] == "RUNNING"
        for done in (3, 6):
            updated = await jobs_repo.report_progress(pool, job_id, done, None)
            assert updated is not None
            await bus.publish(job_topic(job_id), updated["version"], job_document(updated))
        changes = await take(sub, 2)
    assert [e.data()["progress"] for e in changes] == [3, 6]
    assert changes[0].seq == claimed["version"] + 1


async def test_recent_topic_history_epoch_and_trimmed_history(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    bus = Bus(
        redis,
        settings.redis_url,
        Keys(f"{settings.redis_prefix}r{secrets.token_hex(3)}:"),
        registry_for(pool),
        recent_maxlen=100,
    )
    await bus.start()
    try:
        topic = "ticks:BTCUSD"
        seqs = [
            await marketdata.publish_tick(bus, "BTCUSD", {"price": float(i)}) for i in range(1, 6)
        ]
        epoch = seqs[0][1]
        assert [s for s, _ in seqs] == [1, 2, 3, 4, 5] and {e for _, e in seqs} == {epoch}
        async with bus.stream(topic, since=2) as sub:
            assert sub.recovered and sub.epoch == epoch
            await marketdata.publish_tick(bus, "BTCUSD", {"price": 6.0})
            events = await take(sub, 4)
        assert [e.seq for e in events] == [3, 4, 5, 6]
        assert all(e.epoch == epoch for e in events)

        stale = bus.subscribe(topic, since=3, epoch="an-old-epoch")
        await stale.open()
        assert not stale.recovered and stale.missed == (4, None)
        await stale.aclose()

        for i in range(1000):
            await marketdata.publish_tick(bus, "BTCUSD", {"price": float(i)})
        trimmed = bus.subscribe(topic, since=0)
        await trimmed.open()
        assert not trimmed.recovered
        assert trimmed.missed is not None and trimmed.missed[0] == 1
        first = (await take(trimmed, 1))[0]
        assert first.seq == trimmed.missed[1] + 1
        await trimmed.aclose()
    finally:
        await bus.stop()
        await redis.aclose()


async def test_a_slow_durable_subscriber_catches_up_from_history_without_delaying_others(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    bus = Bus(
        redis,
        settings.redis_url,
        Keys(f"{settings.redis_prefix}s{secrets.token_hex(3)}:"),
        registry_for(pool),
        queue_size=20,
    )
    await bus.start()
    try:
        topic = log_topic()
        slow = await bus.subscribe(topic).open()
        async with bus.stream(topic) as fast:
            reader = asyncio.create_task(take(fast, 200))
            for start in range(0, 200, 10):
                await append(pool, bus, topic, [{"n": i} for i in range(start, start + 10)])
                await asyncio.sleep(0.001)
            received = await reader
        assert [e.seq for e in received] == list(range(1, 201))
        # The one that read nothing fell out of live delivery and reads history at its pace.
        assert slow.lagged >= 1
        late = await take(slow, 200)
        assert [e.seq for e in late] == list(range(1, 201))
        await append(pool, bus, topic, [{"n": 200}])
        assert [e.seq for e in await take(slow, 1)] == [201]  # and it is live again
        await slow.aclose()

        # A batch larger than the whole queue (one chunk of a big backtest) cuts nobody off.
        big = log_topic()
        async with bus.stream(big) as sub:
            async with pool.acquire() as conn, conn.transaction():
                stored = await EventLog.append(conn, big, [{"n": i} for i in range(5000)])
            await bus.publish_batches([(big, stored[0][0], [data for _, data in stored])])
            assert [e.seq for e in await take(sub, 5000)] == list(range(1, 5001))
    finally:
        await bus.stop()
        await redis.aclose()


async def test_a_slow_recent_subscriber_is_cut_off_with_its_position(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    assert settings.redis_url
    redis = Redis.from_url(settings.redis_url)
    bus = Bus(
        redis,
        settings.redis_url,
        Keys(f"{settings.redis_prefix}q{secrets.token_hex(3)}:"),
        registry_for(pool),
        queue_size=10,
    )
    await bus.start()
    try:
        slow = await bus.subscribe("ticks:SLOW").open()
        async with bus.stream("ticks:SLOW") as fast:
            reader = asyncio.create_task(take(fast, 50))
            for i in range(50):
                await marketdata.publish_tick(bus, "SLOW", {"price": float(i)})
            assert [e.seq for e in await reader] == list(range(1, 51))
        with pytest.raises(SubscriptionClosed) as closed:
            await take(slow, 50)
        assert closed.value.code == "slow_consumer"
    finally:
        await bus.stop()
        await redis.aclose()


async def test_a_subscription_made_while_redis_is_down_is_resynced(
    tmp_path: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    port = free_port()
    valkey = EmbeddedValkey(tmp_path / "valkey", port=port)
    valkey.start()
    redis = Redis.from_url(valkey.url)
    bus = Bus(redis, valkey.url, Keys(f"{settings.redis_prefix}d:"), registry_for(pool))
    await bus.start()
    try:
        valkey.stop()
        await eventually(lambda: asyncio.sleep(0, result=not bus.connected))
        topic = log_topic()
        sub = await bus.subscribe(topic, since=0).open()  # made during the outage
        await append(pool, bus, topic, [{"n": 1}])  # committed; its announcement is lost
        valkey = EmbeddedValkey(tmp_path / "valkey", port=port)
        valkey.start()
        assert [e.seq for e in await take(sub, 1)] == [1]
        await sub.aclose()
    finally:
        await bus.stop()
        await redis.aclose()
        valkey.stop()


async def test_redis_restart_under_a_live_subscription_loses_nothing_durable(
    tmp_path: Any, pool: asyncpg.Pool, settings: Settings
) -> None:
    port = free_port()
    valkey = EmbeddedValkey(tmp_path / "valkey", port=port)
    valkey.start()
    redis = Redis.from_url(valkey.url)
    bus = Bus(redis, valkey.url, Keys(f"{settings.redis_prefix}x:"), registry_for(pool))
    await bus.start()
    try:
        topic = log_topic()
        await append(pool, bus, topic, [{"n": i} for i in range(1, 11)])
        async with bus.stream(topic, since=0) as sub:
            assert [e.seq for e in await take(sub, 10)] == list(range(1, 11))
            valkey.stop()
            await eventually(lambda: asyncio.sleep(0, result=not bus.connected))
            await append(pool, bus, topic, [{"n": i} for i in range(11, 21)])  # announcements fail
            valkey = EmbeddedValkey(tmp_path / "valkey", port=port)
            valkey.start()
            await eventually(lambda: asyncio.sleep(0, result=bus.connected))
            assert [e.seq for e in await take(sub, 10)] == list(range(11, 21))
            await append(pool, bus, topic, [{"n": 21}])
            assert [e.seq for e in await take(sub, 1)] == [21]
        assert bus.reconnects >= 1
    finally:
        await bus.stop()
        await redis.aclose()
        valkey.stop()


async def test_no_leak_after_a_thousand_subscribe_cycles(bus: Bus, pool: asyncpg.Pool) -> None:
    topic = log_topic()
    await append(pool, bus, topic, [{"n": 1}])
    tasks_before = len(asyncio.all_tasks())
    for _ in range(1000):
        async with bus.stream(topic, since=0) as sub:
            await take(sub, 1)
    assert bus.local_subscriber_count() == 0
    await eventually(lambda: asyncio.sleep(0, result=bus.channel_count() == 0))
    counts = await bus.redis.pubsub_numsub(bus.keys.topic_channel(topic))
    assert counts[0][1] == 0
    assert len(asyncio.all_tasks()) <= tasks_before


async def _direct_and_queued(bus: Bus, topic: str, publish: Any, batches: int) -> list[int]:
    """Deliver ``batches`` batches of 10 events of ``topic`` to a consumer whose synchronous
    sink refuses some of them: the order in which events reach the sink or the loop."""
    delivered: list[int] = []
    calls = 0

    def sink(event: Event) -> bool:
        nonlocal calls
        calls += 1
        if calls % 4 == 0:  # "the socket is busy": queue it, and all after it
            return False
        delivered.append(event.seq)
        return True

    async with bus.stream(topic) as sub:
        sub.deliver_directly(sink)

        async def consume() -> None:
            async for event in sub:
                delivered.append(event.seq)
                if event.seq % 3 == 0:
                    await asyncio.sleep(0.002)  # busy sending: later events are queued

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        for i in range(batches):
            await publish(i)  # ten events at once: the reader dispatches them in one go
            if i % 3 == 0:
                await asyncio.sleep(0.003)
        total = batches * 10
        await eventually(lambda: asyncio.sleep(0, result=len(delivered) >= total))
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert calls > 0  # some events went straight to the sink
    return delivered


async def test_direct_delivery_keeps_order_without_gap_or_duplicate(
    bus: Bus, pool: asyncpg.Pool
) -> None:
    durable = log_topic()

    async def append_ten(i: int) -> None:
        await append(pool, bus, durable, [{"n": i * 10 + k} for k in range(10)])

    assert await _direct_and_queued(bus, durable, append_ten, 15) == list(range(1, 151))

    async def tick_ten(i: int) -> None:
        await asyncio.gather(
            *(marketdata.publish_tick(bus, "DIRECT", {"price": i * 10 + k}) for k in range(10))
        )

    got = await _direct_and_queued(bus, "ticks:DIRECT", tick_ten, 15)
    assert got == list(range(got[0], got[0] + 150))


def test_text_frames_are_what_websockets_writes() -> None:
    from websockets.frames import Frame, Opcode

    from hub.wsframe import text_frame

    for size in (0, 1, 125, 126, 127, 65535, 65536, 70000):
        payload = b"a" * size
        expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
        assert text_frame(payload) == expected
