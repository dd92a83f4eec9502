"""Where the client's bearer token comes from: an API key (never expires), a token handed in
(used until it stops working), or a username and password traded for a JWT at
``POST /api/v1/auth/token`` and traded again before it expires or when the hub refuses it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable

import httpx

from tradehub_client.errors import AuthenticationError
from tradehub_client.http import raise_for_answer
from tradehub_client.models import AccessToken

LOGIN_PATH = "/api/v1/auth/token"


class TokenSource:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        refresh_margin: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        given = sum(x is not None for x in (api_key, token, username))
        if given != 1:
            raise ValueError("pass exactly one of api_key, token, or username and password")
        if (username is None) != (password is None):
            raise ValueError("username and password go together")
        self._http = http
        self._username = username
        self._password = password
        self._current = api_key or token
        self._expires_at: float | None = None
        self._issued_for: float | None = None  # the current JWT's lifetime, seconds
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self.logins = 0  # how many JWTs this source obtained

    @property
    def can_refresh(self) -> bool:
        return self._username is not None

    @property
    def expires_at(self) -> float | None:
        """When the current JWT expires (epoch seconds); None for a key or a handed-in token."""
        return self._expires_at

    def refresh_at(self) -> float | None:
        """When to trade the current JWT for a new one: ``refresh_margin`` seconds before it
        expires (default: a fifth of its life, at most a minute)."""
        if self._expires_at is None or self._issued_for is None:
            return None
        margin = self._refresh_margin
        if margin is None:
            margin = min(60.0, 0.2 * self._issued_for)
        return self._expires_at - margin

    async def token(self) -> str:
        """A token to send now: the current one, or a fresh JWT when it is due for refresh."""
        current = self._current
        due = self.refresh_at()
        if current is not None and (due is None or self._clock() < due):
            return current
        async with self._lock:
            due = self.refresh_at()
            if self._current is not None and (due is None or self._clock() < due):
                return self._current
            return await self._login()

    def invalidate(self, token: str) -> bool:
        """The hub refused ``token``: forget it so the next :meth:`token` logs in again. False
        when nothing can replace it (an API key or a handed-in token)."""
        if not self.can_refresh:
            return False
        if self._current == token:
            self._current = None
        return True

    async def _login(self) -> str:
        assert self._username is not None and self._password is not None
        started = self._clock()
        response = await self._http.post(
            LOGIN_PATH, json={"username": self._username, "password": self._password}
        )
        if response.status_code == 401:
            raise_for_answer(response, error=AuthenticationError)
        raise_for_answer(response)
        answer = AccessToken.model_validate(response.json())
        self._current = answer.access_token
        self._issued_for = float(answer.expires_in)
        # The JWT's own exp is whole seconds, so it may come up to a second before
        # expires_in says: take whichever is sooner.
        claimed = jwt_expiry(answer.access_token)
        self._expires_at = min(started + answer.expires_in, claimed or float("inf"))
        self.logins += 1
        return self._current


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (read, not verified: the hub verifies it), if it has one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
