"""HTTP under the client: the bearer token on every call, one retry with a fresh JWT when the
hub answers 401, and the REST families' error formats read into :class:`ApiError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from tradehub_client.errors import ApiError, AuthenticationError

if TYPE_CHECKING:
    from tradehub_client.auth import TokenSource

M = TypeVar("M", bound=BaseModel)


def error_message(body: Any) -> tuple[str, str | None]:
    """The message and code of an error answer, in whichever family's format it came."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):  # Stage1, Executions
            return error, None
        if isinstance(error, dict):  # Sigma Lab, Cracktrader
            return str(error.get("message", error)), error.get("code")
        detail = body.get("detail")  # ORCA
        if isinstance(detail, str):
            return detail, None
        if detail is not None:
            return str(detail), None
    return str(body)[:500], None


def raise_for_answer(response: httpx.Response, *, error: type[ApiError] = ApiError) -> None:
    if response.status_code < 400:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    message, code = error_message(body)
    raise error(response.status_code, message, body, code)


class AsyncHttp:
    def __init__(self, http: httpx.AsyncClient, tokens: TokenSource) -> None:
        self.client = http
        self.tokens = tokens

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        refused: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The JSON answer of one call; a 401 once trades the JWT for a fresh one and retries.
        ``refused`` reads a 200 answer that refuses the credential (GraphQL's ``UNAUTHORIZED``
        error) and returns its message."""
        if params is not None:
            params = {k: _param(v) for k, v in params.items() if v is not None}
        for attempt in (0, 1):
            token = await self.tokens.token()
            response = await self.client.request(
                method,
                path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 401 and attempt == 0 and self.tokens.invalidate(token):
                continue
            raise_for_answer(
                response, error=AuthenticationError if response.status_code == 401 else ApiError
            )
            body = response.json()
            reason = refused(body) if refused is not None else None
            if reason is not None:
                if attempt == 0 and self.tokens.invalidate(token):
                    continue
                raise AuthenticationError(401, reason, body)
            return body
        raise AssertionError("unreachable")

    async def get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate(await self.request("GET", path, params=params))


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
