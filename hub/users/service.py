"""Decisions about users and credentials: who exists, who may log in, which key is whose."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.auth import (
    AuthError,
    Identity,
    Role,
    Scope,
    api_key_matches,
    decode_jwt,
    generate_api_key,
    hash_password,
    looks_like_jwt,
    parse_api_key,
    verify_password,
)
from hub.errors import BadRequest, Forbidden, NotFound, Unauthorized
from hub.ratelimit import Limit, RateLimiter
from hub.users import repository
from hub.users.sessions import SessionMonitor

# How long a resolved credential is trusted without asking Postgres again: a revoked key, a
# disabled user or a changed role takes effect within this many seconds on every process.
API_KEY_CACHE_SECONDS = 5.0
USER_CACHE_SECONDS = 5.0
_CACHE_LIMIT = 10_000


def _identity(row: asyncpg.Record, key_id: str | None = None) -> Identity:
    return Identity(
        user_id=str(row["user_id"]),
        username=row["username"],
        role=Role(row["role"]),
        key_id=key_id,
        scopes=_scopes(row["scopes"]) if key_id is not None else frozenset(),
    )


def _scopes(stored: list[str] | None) -> frozenset[Scope]:
    """A key's scopes as stored; one this hub does not know (a newer hub's) grants nothing."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(name) for name in stored or () if name in known)


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


async def create_api_key(
    conn: asyncpg.Connection, identity: Identity, name: str = "", scopes: Iterable[Scope] = ()
) -> str:
    """A new API key for ``identity`` (granted ``scopes``: the caller decided it may); the
    returned token is the only copy that will exist."""
    key = generate_api_key()
    await repository.insert_api_key(
        conn,
        key.key_id,
        identity.user_id,
        key.key_hash,
        name[:200],
        sorted(Scope(scope).value for scope in scopes),
    )
    return key.token


@dataclass(frozen=True)
class NamedKey:
    key_id: str
    created_at: datetime
    token: str | None  # the whole key: only when this call minted it, since it is not stored


async def ensure_named_api_key(conn: asyncpg.Connection, identity: Identity, name: str) -> NamedKey:
    """The user's active key named ``name`` (or ``name ...``), minted if there is none.

    The user's row is locked meanwhile, so two callers at once still leave one key.
    """
    async with conn.transaction():
        await repository.lock_user(conn, identity.user_id)
        row = await repository.newest_active_api_key(conn, identity.user_id, name)
        if row is not None:
            return NamedKey(row["key_id"], row["created_at"], None)
        key = generate_api_key()
        await repository.insert_api_key(conn, key.key_id, identity.user_id, key.key_hash, name)
        row = await repository.newest_active_api_key(conn, identity.user_id, name)
        assert row is not None and row["key_id"] == key.key_id
        return NamedKey(key.key_id, row["created_at"], key.token)


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
        self._users: dict[str, tuple[float, str | None, bool]] = {}  # id -> (until, role, disabled)

    def forget_user(self, user_id: str) -> None:
        """Drop a changed user from this process's caches (others drop it within the TTL)."""
        self._users.pop(user_id, None)
        for token in [t for t, c in self._cache.items() if c.identity.user_id == user_id]:
            del self._cache[token]

    def forget(self, key_id: str) -> None:
        """Drop a revoked key from this process's cache (others drop it within the TTL)."""
        for token in [t for t in self._cache if parse_api_key(t) == key_id]:
            del self._cache[token]

    async def _current_role(self, user_id: str) -> Role:
        """The user's role now (a JWT's claim may be stale); AuthError if disabled or gone."""
        now = time.monotonic()
        cached = self._users.get(user_id)
        if cached is None or cached[0] <= now:
            rows = await repository.user_states(self._pool, [user_id])
            row = rows[0] if rows else None
            cached = (
                now + USER_CACHE_SECONDS,
                None if row is None else row["role"],
                True if row is None else bool(row["disabled"]),
            )
            if len(self._users) >= _CACHE_LIMIT:
                self._users.clear()
            self._users[user_id] = cached
        _, role, disabled = cached
        if role is None or disabled:
            raise AuthError("user disabled")
        return Role(role)

    async def authenticate(self, token: str) -> Identity:
        if looks_like_jwt(token):
            identity = decode_jwt(token, self._secret)
            role = await self._current_role(identity.user_id)
            return identity if role is identity.role else dataclasses.replace(identity, role=role)
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
        identity = _identity(row, key_id)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[token] = _Cached(identity, now + API_KEY_CACHE_SECONDS)
        await repository.touch_api_key(self._pool, key_id)
        return identity


class UserService:
    """The users domain's service: logins, keys, the user list, and resolving credentials."""

    def __init__(self, resources: Any) -> None:
        self.pool: asyncpg.Pool = resources.pool
        self.authenticator = Authenticator(self.pool, resources.settings.jwt_secret)
        self.sessions = SessionMonitor(self.pool)
        settings = resources.settings
        self.limiter = RateLimiter(resources.redis, resources.keys)
        window = settings.login_window_seconds
        self.user_failures = Limit("login:user", settings.login_failures_per_user, window)
        self.address_failures = Limit("login:address", settings.login_failures_per_address, window)

    async def authenticate(self, token: str) -> Identity:
        return await self.authenticator.authenticate(token)

    async def login(self, username: str, password: str, address: str | None = None) -> Identity:
        """A password login, refused (429 with Retry-After) once a username or an address has
        failed too often within the window, before the password is even looked at."""
        limits = [(self.user_failures, username)]
        if address:
            limits.append((self.address_failures, address))
        for limit, subject in limits:
            await self.limiter.check(limit, subject)
        try:
            identity = await login(self.pool, username, password)
        except Unauthorized:
            for limit, subject in limits:
                await self.limiter.hit(limit, subject)
            raise
        await self.limiter.reset(self.user_failures, username)
        return identity

    async def create_api_key(
        self,
        identity: Identity,
        name: str,
        scopes: Iterable[Scope] = (),
        *,
        for_user: str | None = None,
    ) -> str:
        """A key for the caller, or (an admin) for the user ``for_user``. Only an admin grants
        scopes: they are rights beyond a user's role (``marketdata:write`` lets a feed publish
        ticks every bot and the paper broker trade on)."""
        granted = tuple(scopes)
        if granted and not identity.is_admin:
            raise Forbidden(
                f"only an admin may grant the scope {granted[0].value!r}", field="scopes"
            )
        owner = identity
        if for_user is not None and for_user != identity.user_id:
            if not identity.is_admin:
                raise Forbidden("only an admin may create a key for another user")
            try:
                uuid.UUID(for_user)
            except ValueError:
                raise NotFound(f"no user {for_user!r}") from None
            rows = await repository.user_states(self.pool, [for_user])
            if not rows:
                raise NotFound(f"no user {for_user!r}")
            owner = Identity(user_id=str(rows[0]["user_id"]), username="", role=Role.USER)
        async with self.pool.acquire() as conn:
            return await create_api_key(conn, owner, name, granted)

    async def revoke_api_key(self, identity: Identity, key_id: str) -> bool:
        revoked = await revoke_api_key(self.pool, identity, key_id)
        if revoked:
            self.authenticator.forget(key_id)
        return revoked

    async def list_users(self) -> list[asyncpg.Record]:
        return await list_users(self.pool)

    async def update_user(
        self, admin: Identity, user_id: str, *, role: Role | None, disabled: bool | None
    ) -> asyncpg.Record:
        """Set a user's role and/or disabled flag. An admin may not demote or disable
        themselves (the hub would be left without the admin who could undo it)."""
        try:
            uuid.UUID(user_id)
        except ValueError:
            raise NotFound(f"no user {user_id!r}") from None
        if user_id == admin.user_id and (role is Role.USER or disabled):
            raise BadRequest("you may not demote or disable yourself", field="role")
        row = await repository.update_user(
            self.pool, user_id, None if role is None else role.value, disabled
        )
        if row is None:
            raise NotFound(f"no user {user_id!r}")
        self.authenticator.forget_user(user_id)
        return row

    async def create_user(self, username: str, *, role: Role, password: str | None) -> Identity:
        async with self.pool.acquire() as conn:
            return await ensure_user(conn, username, role=role, password=password)
