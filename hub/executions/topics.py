"""The execution topics: events, trades and equity (durable, from their tables) and status (state)."""

from __future__ import annotations

import asyncpg
import orjson

from hub.auth import Identity
from hub.executions import repository as repo
from hub.executions.documents import equity_json, event_json, ns_of, trade_doc_from_row
from hub.executions.service import status_document
from hub.topics import Access, StoredEvent, Topic, TopicFamily, TopicRegistry


class EventsHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        rows = await repo.events_after(self.pool, int(topic.key), after, limit)
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
        return await repo.last_sequence(self.pool, "execution_events", int(topic.key))


class TradesHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        rows = await repo.trades_after(self.pool, int(topic.key), after, limit)
        return [StoredEvent(r["sequence"], orjson.dumps(trade_doc_from_row(r))) for r in rows]

    async def last_sequence(self, topic: Topic) -> int:
        return await repo.last_sequence(self.pool, "execution_trades", int(topic.key))


class EquityHistory:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        import numpy as np

        out: list[StoredEvent] = []
        for chunk in await repo.equity_chunks(self.pool, int(topic.key), after, limit):
            ts = np.frombuffer(chunk["ts"], dtype="<i8")
            balance = np.frombuffer(chunk["balance"], dtype="<f8")
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
        return await repo.last_sequence(self.pool, "execution_equity", int(topic.key))


class StatusState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def current(self, topic: Topic) -> StoredEvent | None:
        row = await repo.get(self.pool, int(topic.key))
        if row is None:
            return None
        checkpoint = await repo.latest_checkpoint(self.pool, int(topic.key))
        return StoredEvent(row["version"], orjson.dumps(status_document(row, checkpoint)))


class ExecutionOwner:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def access(self, identity: Identity, topic: Topic) -> Access:
        owner = await repo.owner(self.pool, int(topic.key))
        if owner is None:
            return Access.NOT_FOUND
        return (
            Access.ALLOWED if identity.is_admin or owner == identity.user_id else Access.FORBIDDEN
        )


def register(registry: TopicRegistry, pool: asyncpg.Pool) -> None:
    owner = ExecutionOwner(pool)
    registry.register(
        "execution_events", TopicFamily(history=EventsHistory(pool), authorizer=owner)
    )
    registry.register(
        "execution_trades", TopicFamily(history=TradesHistory(pool), authorizer=owner)
    )
    registry.register(
        "execution_equity", TopicFamily(history=EquityHistory(pool), authorizer=owner)
    )
    registry.register("execution_status", TopicFamily(state=StatusState(pool), authorizer=owner))
