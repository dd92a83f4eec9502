"""The execution topics: events, trades and equity (durable, from their tables) and status (state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from hub.executions import repository as repo
from hub.executions.curvecodec import decode_balances, decode_times
from hub.executions.documents import equity_json, event_json, status_document, trade_doc_from_row
from hub.executions.streams import repository as streams_repo
from hub.times import ns_of
from hub.topics import INTEGER_ID, OwnedBy, StoredEvent, Topic, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    import asyncpg

    from hub.domains import Resources


def status_topic(execution_id: int) -> str:
    return f"execution:{execution_id}:status"


def stream_topic(execution_id: int, stream: str) -> str:
    """``execution:{id}:events``, ``:trades`` or ``:equity``."""
    return f"execution:{execution_id}:{stream}"


class EventsHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        rows = await streams_repo.events_after(self.pool, int(topic.key), after, limit)
        return [
            StoredEvent(
                r["sequence"],
                event_json(
                    r["event_type"], r["strategy_type"], ns_of(r["ts"]), r["event"].encode()
                ),
            )
            for r in rows
        ]

    async def last_sequence(self, topic: Topic) -> int:
        return await streams_repo.last_sequence(self.pool, "execution_events", int(topic.key))


class TradesHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        rows = await streams_repo.trades_after(self.pool, int(topic.key), after, limit)
        return [StoredEvent(r["sequence"], orjson.dumps(trade_doc_from_row(r))) for r in rows]

    async def last_sequence(self, topic: Topic) -> int:
        return await streams_repo.last_sequence(self.pool, "execution_trades", int(topic.key))


class EquityHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        for chunk in await streams_repo.equity_chunks(self.pool, int(topic.key), after, limit):
            ts = decode_times(chunk["ts"], chunk["count"])
            balance = decode_balances(chunk["balance"])
            first = chunk["first_seq"]
            begin = max(0, after + 1 - first)
            end = min(len(ts), begin + limit - len(out))
            out.extend(
                StoredEvent(first + i, equity_json(int(ts[i]), float(balance[i])))
                for i in range(begin, end)
            )
            if len(out) >= limit:
                break
        return out

    async def last_sequence(self, topic: Topic) -> int:
        return await streams_repo.last_sequence(self.pool, "execution_equity", int(topic.key))


class StatusState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def current(self, topic: Topic) -> StoredEvent | None:
        row = await repo.get(self.pool, int(topic.key))
        if row is None:
            return None
        checkpoint = await streams_repo.latest_checkpoint(self.pool, int(topic.key))
        return StoredEvent(row["version"], orjson.dumps(status_document(row, checkpoint)))


def _owner(resources: Resources) -> OwnedBy:
    pool = resources.pool
    return OwnedBy(lambda key: repo.owner(pool, int(key)))


TOPICS = (
    TopicSpec.of(
        "execution_events",
        TopicKind.DURABLE,
        rf"execution:(?P<key>{INTEGER_ID}):events",
        lambda r: TopicFamily(history=EventsHistory(r.pool), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "execution_trades",
        TopicKind.DURABLE,
        rf"execution:(?P<key>{INTEGER_ID}):trades",
        lambda r: TopicFamily(history=TradesHistory(r.pool), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "execution_equity",
        TopicKind.DURABLE,
        rf"execution:(?P<key>{INTEGER_ID}):equity",
        lambda r: TopicFamily(history=EquityHistory(r.pool), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "execution_status",
        TopicKind.STATE,
        rf"execution:(?P<key>{INTEGER_ID}):status",
        lambda r: TopicFamily(state=StatusState(r.pool), authorizer=_owner(r)),
    ),
)
