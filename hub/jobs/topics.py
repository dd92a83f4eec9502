"""The job topics: ``job:{id}`` (state: the job row) and ``job:{id}:log`` (durable log lines)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from hub.eventlog import EventLog
from hub.jobs import repository as repo
from hub.jobs.service import job_document
from hub.topics import UUID, OwnedBy, StoredEvent, Topic, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    import asyncpg

    from hub.domains import Resources


class JobState:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def current(self, topic: Topic) -> StoredEvent | None:
        row = await repo.get(self.pool, topic.key)
        if row is None:
            return None
        return StoredEvent(row["version"], orjson.dumps(job_document(row)))


def _owner(resources: Resources) -> OwnedBy:
    pool = resources.pool
    return OwnedBy(lambda job_id: repo.owner(pool, job_id))


TOPICS = (
    TopicSpec.of(
        "job",
        TopicKind.STATE,
        rf"job:(?P<key>{UUID})",
        lambda r: TopicFamily(state=JobState(r.pool), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "job_log",
        TopicKind.DURABLE,
        rf"job:(?P<key>{UUID}):log",
        lambda r: TopicFamily(history=EventLog(r.pool), authorizer=_owner(r)),
    ),
)
