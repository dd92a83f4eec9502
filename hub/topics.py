"""Topic names, their kinds, and where each family's history and ownership come from.

A topic name is also the ``/ws`` channel name. Its family decides three things: the kind
(durable, state or recent), how to read history (durable) or the current state (state), and
whether a caller may subscribe (their own jobs, executions, accounts; anyone for market data).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Protocol

from hub.auth import Identity

UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ACCOUNT = r"[A-Za-z0-9_.-]{1,64}"
EXECUTION = r"[0-9]{1,18}"
SYMBOL = r"[A-Za-z0-9/_.:-]{1,32}"


class TopicKind(enum.StrEnum):
    DURABLE = "durable"  # persisted in Postgres with its sequence, replayable forever
    STATE = "state"  # the current state first, then each change
    RECENT = "recent"  # bounded history in Redis, with an epoch


@dataclass(frozen=True)
class TopicSpec:
    family: str
    kind: TopicKind
    pattern: re.Pattern[str]


SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "execution_events",
        TopicKind.DURABLE,
        re.compile(rf"execution:(?P<key>{EXECUTION}):events"),
    ),
    TopicSpec(
        "execution_trades",
        TopicKind.DURABLE,
        re.compile(rf"execution:(?P<key>{EXECUTION}):trades"),
    ),
    TopicSpec(
        "execution_equity",
        TopicKind.DURABLE,
        re.compile(rf"execution:(?P<key>{EXECUTION}):equity"),
    ),
    TopicSpec(
        "execution_status", TopicKind.STATE, re.compile(rf"execution:(?P<key>{EXECUTION}):status")
    ),
    TopicSpec("job", TopicKind.STATE, re.compile(rf"job:(?P<key>{UUID})")),
    TopicSpec("job_log", TopicKind.DURABLE, re.compile(rf"job:(?P<key>{UUID}):log")),
    TopicSpec(
        "account_orders", TopicKind.DURABLE, re.compile(rf"account:(?P<key>{ACCOUNT}):orders")
    ),
    TopicSpec(
        "account_positions", TopicKind.STATE, re.compile(rf"account:(?P<key>{ACCOUNT}):positions")
    ),
    TopicSpec(
        "account_balances", TopicKind.STATE, re.compile(rf"account:(?P<key>{ACCOUNT}):balances")
    ),
    TopicSpec("ticks", TopicKind.RECENT, re.compile(rf"ticks:(?P<key>{SYMBOL})")),
)


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


def parse_topic(name: str) -> Topic:
    if not isinstance(name, str) or len(name) > 200:
        raise UnknownTopic(f"unknown topic {name!r}")
    for spec in SPECS:
        match = spec.pattern.fullmatch(name)
        if match is not None:
            return Topic(name, spec, match["key"])
    raise UnknownTopic(f"unknown topic {name!r}")


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


@dataclass
class TopicFamily:
    history: HistorySource | None = None
    state: StateSource | None = None
    authorizer: Authorizer | None = None


class TopicRegistry:
    """Family name -> how to replay it and who may read it; filled in by each domain."""

    def __init__(self) -> None:
        self._families: dict[str, TopicFamily] = {}

    def register(self, family: str, entry: TopicFamily) -> None:
        if family not in {spec.family for spec in SPECS}:
            raise ValueError(f"no topic family named {family!r}")
        self._families[family] = entry

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
            return Access.ALLOWED
        return await authorizer.access(identity, topic)
