"""``signals:{model_id}``: a model's signals as they are emitted, filled and cancelled (durable,
in ``topic_events``; any signed-in caller may read a model that exists)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.auth import Identity
from hub.eventlog import EventLog
from hub.signals import repository as repo
from hub.topics import Access, Topic, TopicFamily, TopicKind, TopicSpec

if TYPE_CHECKING:
    import asyncpg

MODEL_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"


class ModelExists:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def access(self, identity: Identity, topic: Topic) -> Access:
        found = await repo.model_exists(self.pool, topic.key)
        return Access.ALLOWED if found else Access.NOT_FOUND


TOPICS = (
    TopicSpec.of(
        "signals",
        TopicKind.DURABLE,
        rf"signals:(?P<key>{MODEL_ID})",
        lambda r: TopicFamily(history=EventLog(r.pool), authorizer=ModelExists(r.pool)),
    ),
)
