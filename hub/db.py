"""Postgres: the asyncpg pool and the numbered SQL migrations under ``hub/migrations``."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import asyncpg
import orjson

# pg_advisory_lock key for migrations: any constant shared by every tradehub process.
MIGRATION_LOCK_KEY = 0x7472616465687562  # "tradehub"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Conn(Protocol):
    """What the repositories call on an ``asyncpg.Connection`` or ``asyncpg.Pool``.

    asyncpg ships no type hints; this names the query methods both share.
    """

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str: ...

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> list[asyncpg.Record]: ...

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None
    ) -> asyncpg.Record | None: ...

    async def fetchval(
        self, query: str, *args: Any, column: int = 0, timeout: float | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def load_migrations() -> list[Migration]:
    """Every ``NNNN_name.sql`` shipped in the package, in version order."""
    found = []
    for entry in resources.files("hub.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb travels in binary: a version byte (1) then the JSON text; orjson both ways.
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
        format="binary",
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs before its next use, beyond the rollback of an open
    transaction that asyncpg always does: nothing. No code here leaves session state on a pooled
    connection (no SET, LISTEN, cursors or session advisory locks: those live on a connection of
    their own, or end with their transaction), so asyncpg's default reset query (RESET ALL,
    UNLISTEN *, CLOSE ALL, pg_advisory_unlock_all) would cost a round trip per checkout for
    nothing: about a sixth of what placing an order costs Postgres."""


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
    )
    assert pool is not None
    return pool


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, timeout=10)
    await _init_connection(conn)
    return conn


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration, in order, each in its own transaction.

    Runs under a session advisory lock, so processes starting together migrate once: the
    others wait for the lock, then find nothing left to do.
    """
    migrations = load_migrations()
    await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            """
            create table if not exists schema_migrations (
                version    integer primary key,
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        applied = {
            row["version"]: row["checksum"]
            for row in await conn.fetch("select version, checksum from schema_migrations")
        }
        done = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        "was applied; add a new migration instead of editing a landed one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "insert into schema_migrations (version, name, checksum) values ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration)
        return done
    finally:
        await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate_url(url: str) -> list[Migration]:
    conn = await connect(url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def ping(pool: asyncpg.Pool) -> bool:
    """Postgres answers a query."""
    return bool(await pool.fetchval("select 1") == 1)
