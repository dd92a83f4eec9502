"""Topic names, their kinds, and where each family's history, state and ownership come from.

A topic name is also the ``/ws`` channel name. Its family decides three things: the kind
(durable, state or recent), how to read history (durable) or the current state (state), and
whether a caller may subscribe (their own jobs, executions, accounts; anyone for market data).
Families are declared by the domains (``hub/<domain>/__init__.py``); the registry holds the ones
this process serves.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from hub.auth import Identity

# Building blocks for the patterns the domains declare.
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ACCOUNT = r"[A-Za-z0-9_.-]{1,64}"
INTEGER_ID = r"[0-9]{1,18}"
SYMBOL = r"[A-Za-z0-9/_.:-]{1,32}"
MAX_TOPIC_LENGTH = 200


class TopicKind(enum.StrEnum):
    DURABLE = "durable"  # persisted in Postgres with its sequence, replayable forever
    STATE = "state"  # the current state first, then each change
    RECENT = "recent"  # bounded history in Redis, with an epoch


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    data_json: bytes  # the event's JSON, exactly as it will be delivered


class HistorySource(Protocol):
    """Where a durable family's events live (any table, as long as sequences are gap-free)."""

    async def events_after(self, topic: Topic, after: int, limit: int) -> list[StoredEvent]: ...

    async def last_sequence(self, topic: Topic) -> int: ...


class StateSource(Protocol):
    async def current(self, topic: Topic) -> StoredEvent | None: ...


class Access(enum.Enum):
    ALLOWED = "allowed"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"


class Authorizer(Protocol):
    async def access(self, identity: Identity, topic: Topic) -> Access: ...


class AnyUser:
    """Every authenticated caller may read the topic (market data)."""

    async def access(self, identity: Identity, topic: Topic) -> Access:
        return Access.ALLOWED


class OwnedBy:
    """The caller may read the topic when they own the thing it is about, or are an admin.

    ``owner_of(key)`` returns the owner's user id, or None when the thing does not exist.
    """

    def __init__(self, owner_of: Callable[[str], Any]) -> None:
        self.owner_of = owner_of

    async def access(self, identity: Identity, topic: Topic) -> Access:
        owner = await self.owner_of(topic.key)
        if owner is None:
            return Access.NOT_FOUND
        if identity.is_admin or str(owner) == identity.user_id:
            return Access.ALLOWED
        return Access.FORBIDDEN


@dataclass
class TopicFamily:
    """How this process serves one family: its history or state, and who may read it."""

    history: HistorySource | None = None
    state: StateSource | None = None
    authorizer: Authorizer | None = None


@dataclass(frozen=True)
class TopicSpec:
    """A family of topics as a domain declares it.

    ``pattern`` matches whole names and captures the id inside them as ``key``; ``sources``
    builds the family's history/state/authorizer from the process's resources (the worker,
    which only publishes, never calls it).
    """

    family: str
    kind: TopicKind
    pattern: re.Pattern[str]
    sources: Callable[[Any], TopicFamily] | None = None

    @classmethod
    def of(
        cls,
        family: str,
        kind: TopicKind,
        pattern: str,
        sources: Callable[[Any], TopicFamily] | None = None,
    ) -> TopicSpec:
        if "(?P<key>" not in pattern:
            raise ValueError(f"topic pattern {pattern!r} must capture the id as (?P<key>...)")
        return cls(family, kind, re.compile(pattern), sources)


class UnknownTopic(ValueError):
    pass


@dataclass(frozen=True)
class Topic:
    name: str
    spec: TopicSpec
    key: str  # the id inside the name: a job or execution id, an account, a symbol

    @property
    def kind(self) -> TopicKind:
        return self.spec.kind

    @property
    def family(self) -> str:
        return self.spec.family


class TopicRegistry:
    """The topic families of every domain: parse names, and find their sources and owners."""

    def __init__(self, specs: Iterable[TopicSpec] = ()) -> None:
        self._specs: dict[str, TopicSpec] = {}
        self._families: dict[str, TopicFamily] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: TopicSpec) -> None:
        if spec.family in self._specs:
            raise ValueError(f"two domains declare the topic family {spec.family!r}")
        self._specs[spec.family] = spec

    def bind(self, resources: Any) -> None:
        """Build every family's sources (history, state, authorizer) for a serving process."""
        for spec in self._specs.values():
            self._families[spec.family] = (
                spec.sources(resources) if spec.sources is not None else TopicFamily()
            )

    @property
    def specs(self) -> list[TopicSpec]:
        return list(self._specs.values())

    def parse(self, name: str) -> Topic:
        if not isinstance(name, str) or len(name) > MAX_TOPIC_LENGTH:
            raise UnknownTopic(f"unknown topic {str(name)[:MAX_TOPIC_LENGTH]!r}")
        for spec in self._specs.values():
            match = spec.pattern.fullmatch(name)
            if match is not None:
                return Topic(name, spec, match["key"])
        raise UnknownTopic(f"unknown topic {name!r}")

    def family(self, topic: Topic) -> TopicFamily:
        entry = self._families.get(topic.family)
        if entry is None:
            raise UnknownTopic(f"topic {topic.name!r} is not served by this hub")
        return entry

    def history(self, topic: Topic) -> HistorySource:
        source = self.family(topic).history
        if source is None:
            raise UnknownTopic(f"topic {topic.name!r} has no history")
        return source

    def state(self, topic: Topic) -> StateSource:
        source = self.family(topic).state
        if source is None:
            raise UnknownTopic(f"topic {topic.name!r} has no state")
        return source

    async def access(self, identity: Identity, topic: Topic) -> Access:
        authorizer = self.family(topic).authorizer
        if authorizer is None:
            return Access.FORBIDDEN  # a family nobody may read is safer than one anyone may
        return await authorizer.access(identity, topic)
