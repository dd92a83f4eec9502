"""Gap-free sequences for durable topics, and the generic durable event log.

A durable topic without a table of its own (a job's log, a plug-in domain's stream) appends
through :class:`EventLog`: :func:`allocate` takes the next sequences from the topic's counter row
in ``topic_sequences`` inside the writer's transaction (the row lock makes commit order equal
sequence order), the events go to ``topic_events``, and the log is also the topic's history
source for the bus. A domain whose table is the history (execution events, trades and equity)
numbers its rows itself: only the attempt holding the run's job writes them, continuing from the
last sequence committed (or checkpointed), so its sequences are gap-free without a counter.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from hub.topics import StoredEvent, Topic

SMALL_APPEND = 32  # up to this many events go in one statement; more go by COPY


def append_statement(ctes: str = "", *, first: int = 1) -> str:
    """One statement that takes a topic's next sequences and stores events under them, with
    parameters ``$first`` (topic), ``$first+1`` (count) and ``$first+2`` (the events' JSON texts,
    a text[]); ``ctes`` (``name as (...), ``) lets a writer run its own changes in the same
    round trip. Returns the sequences."""
    topic, count, data = f"${first}", f"${first + 1}", f"${first + 2}"
    return f"""
    with {ctes}counter as (
        insert into topic_sequences (topic, last_seq) values ({topic}, {count})
        on conflict (topic) do update set last_seq = topic_sequences.last_seq + excluded.last_seq
        returning last_seq
    )
    insert into topic_events (topic, seq, data)
    select {topic}, counter.last_seq - {count} + item.n, item.data::json
    from counter, unnest({data}::text[]) with ordinality as item (data, n)
    returning seq
    """


_APPEND = append_statement()


async def allocate(conn: asyncpg.Connection, topic: str, count: int = 1) -> int:
    """Reserve ``count`` sequences for ``topic`` in the caller's transaction; returns the first."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    last = await conn.fetchval(
        """
        insert into topic_sequences (topic, last_seq) values ($1, $2)
        on conflict (topic) do update set last_seq = topic_sequences.last_seq + excluded.last_seq
        returning last_seq
        """,
        topic,
        count,
    )
    return int(last) - count + 1


async def last_sequence(conn: asyncpg.Connection | asyncpg.Pool, topic: str) -> int:
    value = await conn.fetchval("select last_seq from topic_sequences where topic = $1", topic)
    return int(value or 0)


class EventLog:
    """Durable events as JSON rows in ``topic_events``; a HistorySource for the bus."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @staticmethod
    async def append(
        conn: asyncpg.Connection, topic: str, items: list[Any]
    ) -> list[tuple[int, bytes]]:
        """Store ``items`` under the next sequences (call inside the writer's transaction).

        Returns ``(seq, json)`` pairs to publish once the transaction commits.
        """
        if not items:
            return []
        encoded = [orjson.dumps(item) for item in items]
        if len(encoded) <= SMALL_APPEND:
            # One round trip: take the sequences and store the events in one statement.
            rows = await conn.fetch(_APPEND, topic, len(encoded), [d.decode() for d in encoded])
            first = min(row["seq"] for row in rows)
        else:
            first = await allocate(conn, topic, len(items))
            await conn.copy_records_to_table(
                "topic_events",
                records=[(topic, first + i, data.decode()) for i, data in enumerate(encoded)],
                columns=["topic", "seq", "data"],
            )
        return [(first + i, data) for i, data in enumerate(encoded)]

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            "select seq, data::text as data from topic_events where topic = $1 and seq > $2 order by seq limit $3",
            topic.name,
            after,
            limit,
        )
        return [StoredEvent(row["seq"], row["data"].encode()) for row in rows]

    async def last_sequence(self, topic: Topic) -> int:
        return await last_sequence(self.pool, topic.name)
