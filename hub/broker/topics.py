"""The account topics: ``account:{id}:orders`` (durable, the orders' event log) and
``account:{id}:positions`` / ``account:{id}:balances`` (state: the whole document, then each
change). Only the account's owner (or an admin) may read them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.eventlog import EventLog
from hub.topics import (
    ACCOUNT,
    SYMBOL,
    OwnedBy,
    StoredEvent,
    Topic,
    TopicFamily,
    TopicKind,
    TopicSpec,
)

if TYPE_CHECKING:
    from hub.domains import Resources


def orders_topic(account_id: str) -> str:
    return f"account:{account_id}:orders"


def positions_topic(account_id: str) -> str:
    return f"account:{account_id}:positions"


def balances_topic(account_id: str) -> str:
    return f"account:{account_id}:balances"


def book_topic(symbol: str) -> str:
    """Internal: order news for the hub that matches ``symbol`` (no client may subscribe)."""
    return f"book:{symbol}"


def book_payload(row: Any) -> dict[str, Any]:
    return {
        "order_id": row["order_id"],
        "account_id": row["account_id"],
        "status": row["status"],
        "version": row["version"],
    }


class AccountState:
    """The current positions or balances document of an account, at its state version."""

    def __init__(self, resources: Resources, which: str) -> None:
        self.resources = resources
        self.which = which

    async def current(self, topic: Topic) -> StoredEvent | None:
        broker: Any = self.resources.service("broker")
        found = await broker.state_documents(topic.key)
        if found is None:
            return None
        version, positions, balances = found
        return StoredEvent(version, positions if self.which == "positions" else balances)


def _owner(resources: Resources) -> OwnedBy:
    from hub.broker import repository as repo

    pool = resources.pool
    return OwnedBy(lambda account_id: repo.owner(pool, account_id))


TOPICS = (
    TopicSpec.of(
        "account_orders",
        TopicKind.DURABLE,
        rf"account:(?P<key>{ACCOUNT}):orders",
        lambda r: TopicFamily(history=EventLog(r.pool), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "account_positions",
        TopicKind.STATE,
        rf"account:(?P<key>{ACCOUNT}):positions",
        lambda r: TopicFamily(state=AccountState(r, "positions"), authorizer=_owner(r)),
    ),
    TopicSpec.of(
        "account_balances",
        TopicKind.STATE,
        rf"account:(?P<key>{ACCOUNT}):balances",
        lambda r: TopicFamily(state=AccountState(r, "balances"), authorizer=_owner(r)),
    ),
    # No authorizer: the registry refuses every client; only matchers read it, in-process.
    TopicSpec.of("book", TopicKind.RECENT, rf"book:(?P<key>{SYMBOL})", lambda r: TopicFamily()),
)
