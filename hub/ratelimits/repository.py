"""SQL for users' rate-limit tiers (the ``tier`` column of ``users``)."""

from __future__ import annotations

import asyncpg

from hub.db import Conn


async def get_tier(conn: Conn, user_id: str) -> str | None:
    """The user's tier; None for no such user."""
    tier: str | None = await conn.fetchval("select tier from users where user_id = $1", user_id)
    return tier


async def user_id_of(conn: Conn, username: str) -> str | None:
    value = await conn.fetchval("select user_id from users where username = $1", username)
    return None if value is None else str(value)


async def set_tier(conn: Conn, username: str, tier: str) -> asyncpg.Record | None:
    """The user's row after the change; None for no such user."""
    return await conn.fetchrow(
        "update users set tier = $2 where username = $1 returning user_id, username, tier",
        username,
        tier,
    )
