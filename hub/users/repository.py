"""SQL for users and API keys."""

from __future__ import annotations

import asyncpg

from hub.db import Conn


async def get_user_by_name(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "select user_id, username, password_hash, role, disabled from users where username = $1",
        username,
    )


async def insert_user(
    conn: asyncpg.Connection, username: str, role: str, password_hash: str | None
) -> asyncpg.Record:
    # on conflict: two processes ensuring the same user at once both get the one row.
    row = await conn.fetchrow(
        """
        insert into users (username, role, password_hash) values ($1, $2, $3)
        on conflict (username) do update set username = excluded.username
        returning user_id, username, password_hash, role, disabled
        """,
        username,
        role,
        password_hash,
    )
    assert row is not None
    return row


async def set_role(conn: asyncpg.Connection, user_id: str, role: str) -> None:
    await conn.execute("update users set role = $2 where user_id = $1", user_id, role)


async def set_password(conn: asyncpg.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute(
        "update users set password_hash = $2 where user_id = $1", user_id, password_hash
    )


async def list_users(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch(
        "select user_id, username, role, disabled, created_at from users order by created_at"
    )


async def insert_api_key(
    conn: asyncpg.Connection,
    key_id: str,
    user_id: str,
    key_hash: bytes,
    name: str,
    scopes: list[str] | None = None,
) -> None:
    await conn.execute(
        "insert into api_keys (key_id, user_id, key_hash, name, scopes) "
        "values ($1, $2, $3, $4, $5)",
        key_id,
        user_id,
        key_hash,
        name,
        scopes or [],
    )


async def get_api_key(conn: Conn, key_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        select k.key_hash, k.revoked_at, k.scopes, u.user_id, u.username, u.role, u.disabled
        from api_keys k join users u using (user_id)
        where k.key_id = $1
        """,
        key_id,
    )


async def touch_api_key(conn: Conn, key_id: str) -> None:
    await conn.execute("update api_keys set last_used_at = now() where key_id = $1", key_id)


async def revoke_api_key(conn: Conn, key_id: str, user_id: str) -> bool:
    status = await conn.execute(
        "update api_keys set revoked_at = now() where key_id = $1 and user_id = $2 and revoked_at is null",
        key_id,
        user_id,
    )
    return str(status).endswith(" 1")


async def lock_user(conn: asyncpg.Connection, user_id: str) -> None:
    """Hold the user's row until the transaction ends (serialises decisions about their keys)."""
    await conn.execute("select 1 from users where user_id = $1 for update", user_id)


async def newest_active_api_key(conn: Conn, user_id: str, name: str) -> asyncpg.Record | None:
    """The user's newest unrevoked key named ``name`` or ``name`` followed by a space and more."""
    return await conn.fetchrow(
        """
        select key_id, name, created_at from api_keys
        where user_id = $1 and revoked_at is null and (name = $2 or starts_with(name, $2 || ' '))
        order by created_at desc
        limit 1
        """,
        user_id,
        name,
    )


async def user_states(conn: Conn, user_ids: list[str]) -> list[asyncpg.Record]:
    """Role and status of each user, for re-checking credentials already handed out."""
    return await conn.fetch(
        "select user_id, role, disabled from users where user_id = any($1::uuid[])", user_ids
    )


async def revoked_keys(conn: Conn, key_ids: list[str]) -> set[str]:
    """Which of ``key_ids`` are revoked or gone."""
    rows = await conn.fetch(
        "select key_id from api_keys where key_id = any($1::text[]) and revoked_at is null",
        key_ids,
    )
    return set(key_ids) - {row["key_id"] for row in rows}


async def update_user(
    conn: Conn, user_id: str, role: str | None, disabled: bool | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """
        update users set role = coalesce($2, role), disabled = coalesce($3, disabled)
        where user_id = $1
        returning user_id, username, role, disabled
        """,
        user_id,
        role,
        disabled,
    )
