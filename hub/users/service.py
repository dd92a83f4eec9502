"""Decisions about users and credentials: who exists, who may log in, which key is whose."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from hub.auth import (
    AuthError,
    Identity,
    Role,
    api_key_matches,
    decode_jwt,
    generate_api_key,
    hash_password,
    looks_like_jwt,
    parse_api_key,
    verify_password,
)
from hub.errors import Unauthorized
from hub.users import repository

# How long a resolved API key is trusted without asking Postgres again; a revoked key stops
# working within this many seconds on every process.
API_KEY_CACHE_SECONDS = 10.0
_CACHE_LIMIT = 10_000


def _identity(row: asyncpg.Record) -> Identity:
    return Identity(user_id=str(row["user_id"]), username=row["username"], role=Role(row["role"]))


async def ensure_user(
    conn: asyncpg.Connection,
    username: str,
    *,
    role: Role | None = None,
    password: str | None = None,
) -> Identity:
    """Create the user if missing; promote to ``role`` if given; set the password if given."""
    if not username or len(username) > 64 or not username.isprintable():
        raise ValueError(f"username must be 1-64 printable characters, got {username!r}")
    async with conn.transaction():
        row = await repository.get_user_by_name(conn, username)
        if row is None:
            row = await repository.insert_user(
                conn,
                username,
                (role or Role.USER).value,
                await asyncio.to_thread(hash_password, password) if password else None,
            )
        else:
            if role is not None and row["role"] != role.value:
                await repository.set_role(conn, row["user_id"], role.value)
            if password:
                await repository.set_password(
                    conn, row["user_id"], await asyncio.to_thread(hash_password, password)
                )
            row = await repository.get_user_by_name(conn, username)
            assert row is not None
    return _identity(row)


async def create_api_key(conn: asyncpg.Connection, identity: Identity, name: str = "") -> str:
    """A new API key for ``identity``; the returned token is the only copy that will exist."""
    key = generate_api_key()
    await repository.insert_api_key(conn, key.key_id, identity.user_id, key.key_hash, name[:200])
    return key.token


async def revoke_api_key(pool: asyncpg.Pool, identity: Identity, key_id: str) -> bool:
    return await repository.revoke_api_key(pool, key_id, identity.user_id)


async def list_users(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await repository.list_users(pool)


async def login(pool: asyncpg.Pool, username: str, password: str) -> Identity:
    row = await repository.get_user_by_name(pool, username)
    # Verify even for an unknown user, so timing does not reveal which usernames exist.
    stored = row["password_hash"] if row is not None else None
    # argon2 takes ~0.1 s of CPU by design: off the event loop, or every socket waits for it.
    ok = (
        await asyncio.to_thread(verify_password, stored or _DUMMY_HASH, password)
        and stored is not None
    )
    if row is None or not ok or row["disabled"]:
        raise Unauthorized("invalid username or password")
    return _identity(row)


_DUMMY_HASH = hash_password("not a real password")


@dataclass
class _Cached:
    identity: Identity
    until: float


class Authenticator:
    """Turns a presented credential into an Identity; one per process, created in the lifespan."""

    def __init__(self, pool: asyncpg.Pool, jwt_secret: str) -> None:
        self._pool = pool
        self._secret = jwt_secret
        self._cache: dict[str, _Cached] = {}

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from this process's cache (others drop it within the TTL)."""
        for token in [t for t in self._cache if parse_api_key(t) == key_id]:
            del self._cache[token]

    async def authenticate(self, token: str) -> Identity:
        if looks_like_jwt(token):
            return decode_jwt(token, self._secret)
        key_id = parse_api_key(token)
        if key_id is None:
            raise AuthError("invalid token")
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached.until > now:
            return cached.identity
        row = await repository.get_api_key(self._pool, key_id)
        if row is None or not api_key_matches(token, row["key_hash"]):
            raise AuthError("invalid token")
        if row["revoked_at"] is not None:
            raise AuthError("API key revoked")
        if row["disabled"]:
            raise AuthError("user disabled")
        identity = _identity(row)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = _Cached(identity, now + API_KEY_CACHE_SECONDS)
        await repository.touch_api_key(self._pool, key_id)
        return identity
