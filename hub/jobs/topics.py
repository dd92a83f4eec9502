"""The job topics: ``job:{id}`` (state: the job row) and ``job:{id}:log`` (durable log lines)."""

from __future__ import annotations

import asyncpg
import orjson

from hub.auth import Identity
from hub.eventlog import EventLog
from hub.jobs import repository as repo
from hub.jobs.service import job_document
from hub.topics import Access, StoredEvent, Topic, TopicFamily, TopicRegistry


class JobState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def current(self, topic: Topic) -> StoredEvent | None:
        row = await repo.get(self.pool, topic.key)
        if row is None:
            return None
        return StoredEvent(row["version"], orjson.dumps(job_document(row)))


class JobOwner:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def access(self, identity: Identity, topic: Topic) -> Access:
        owner = await repo.owner(self.pool, topic.key)
        if owner is None:
            return Access.NOT_FOUND
        if identity.is_admin or owner == identity.user_id:
            return Access.ALLOWED
        return Access.FORBIDDEN


def register(registry: TopicRegistry, pool: asyncpg.Pool) -> None:
    owner = JobOwner(pool)
    registry.register("job", TopicFamily(state=JobState(pool), authorizer=owner))
    registry.register("job_log", TopicFamily(history=EventLog(pool), authorizer=owner))
