"""Credentials already handed out, checked again: a socket authenticated with an API key is closed
once the key is revoked, and any session once its user is disabled or changes role.

One task per hub process looks at every watched credential in two queries every few seconds,
whatever the number of open sockets, and tells each socket whose credential no longer holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from hub.auth import Identity
from hub.users import repository

log = logging.getLogger("tradehub.sessions")

CHECK_SECONDS = 5.0
UNAUTHORIZED = 4401  # the credential is gone: reconnect with a valid one
FORBIDDEN = 4403  # the user's rights changed: reconnect to get the new ones

OnInvalid = Callable[[int, str], None]


@dataclass(frozen=True)
class _Watched:
    identity: Identity
    on_invalid: OnInvalid


class SessionMonitor:
    def __init__(self, pool: asyncpg.Pool, interval: float = CHECK_SECONDS) -> None:
        self.pool = pool
        self.interval = interval
        self._watched: dict[int, _Watched] = {}
        self._ids = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def watch(self, identity: Identity, on_invalid: OnInvalid) -> Callable[[], None]:
        """Call ``on_invalid(close_code, reason)`` once when ``identity`` stops being valid;
        returns the function that stops watching it."""
        number = next(self._ids)
        self._watched[number] = _Watched(identity, on_invalid)

        def unwatch() -> None:
            self._watched.pop(number, None)

        return unwatch

    def __len__(self) -> int:
        return len(self._watched)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="session-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("could not re-check sessions", extra={"error": str(exc)})

    async def check(self) -> None:
        """One look at every watched credential."""
        watched = list(self._watched.items())
        if not watched:
            return
        user_ids = sorted({w.identity.user_id for _, w in watched})
        key_ids = sorted({w.identity.key_id for _, w in watched if w.identity.key_id})
        users = {
            str(row["user_id"]): row for row in await repository.user_states(self.pool, user_ids)
        }
        revoked = await repository.revoked_keys(self.pool, key_ids) if key_ids else set()
        for number, entry in watched:
            verdict = _verdict(entry.identity, users.get(entry.identity.user_id), revoked)
            if verdict is not None and self._watched.pop(number, None) is not None:
                entry.on_invalid(*verdict)


def _verdict(
    identity: Identity, user: asyncpg.Record | None, revoked: set[str]
) -> tuple[int, str] | None:
    if user is None or user["disabled"]:
        return UNAUTHORIZED, "user disabled"
    if identity.key_id is not None and identity.key_id in revoked:
        return UNAUTHORIZED, "API key revoked"
    if user["role"] != identity.role.value:
        return FORBIDDEN, f"role changed to {user['role']}; reconnect"
    return None
