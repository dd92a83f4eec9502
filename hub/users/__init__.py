"""Users: accounts, passwords, API keys, and who a presented credential belongs to."""

from __future__ import annotations

from hub.domains import Domain, Resources
from hub.users import gql
from hub.users.service import UserService


async def start(resources: Resources) -> None:
    if resources.role == "hub":  # open sockets live in hubs: re-check their credentials
        await resources.service("users").sessions.start()


async def stop(resources: Resources) -> None:
    if resources.role == "hub":
        await resources.service("users").sessions.stop()


domain = Domain(name="users", service=UserService, query=gql.Query, start=start, stop=stop)
