"""Small helpers shared by every HTTP route: JSON in and out, and who is calling."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS, default=str)


async def read_body(request: Request, *, max_bytes: int | None = None) -> bytes:
    """The whole request body, refused (413) past ``max_bytes`` (by default the hub's
    ``max_body_bytes``) before more than that is read; an empty body is a 400."""
    limit = max_bytes if max_bytes is not None else request.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes, more than the limit of {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is more than the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    return body


async def read_json(request: Request, *, max_bytes: int | None = None) -> Any:
    """The request body as JSON; a malformed or oversized body is a 400, never a 500."""
    body = await read_body(request, max_bytes=max_bytes)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body (or not UTF-8): {exc}") from None
    check_json(data, "body")
    return data


MAX_JSON_DEPTH = 64


def check_json(value: Any, where: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse what no field of the hub accepts and Postgres cannot store: a NUL character in
    any string or key, and nesting deeper than ``max_depth``; the error names the place."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"{path} contains a NUL character", field=path)
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise BadRequest(f"{path} is nested more than {max_depth} levels deep", field=path)
            if isinstance(item, dict):
                for key, child in item.items():
                    if "\x00" in str(key):
                        raise BadRequest(f"a key of {path} contains a NUL character", field=path)
                    stack.append((child, f"{path}.{key}", depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))


async def read_json_object(request: Request) -> dict[str, Any]:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(data).__name__}")
    return data


def client_address(conn: HTTPConnection) -> str | None:
    """The peer's address (proxies' forwarding headers are not trusted)."""
    return conn.client.host if conn.client is not None else None


def current_identity(conn: HTTPConnection) -> Identity | None:
    identity: Identity | None = conn.state.identity
    return identity


def require_identity(conn: HTTPConnection) -> Identity:
    identity = current_identity(conn)
    if identity is None:
        reason = conn.state.auth_error or "authentication required"
        raise Unauthorized(reason)
    if identity.expired():
        raise Unauthorized("token expired")
    return identity


def require_admin(conn: HTTPConnection) -> Identity:
    identity = require_identity(conn)
    if not identity.is_admin:
        raise Forbidden("admin role required")
    return identity


INT64_MAX = 2**63 - 1


def query_int(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int = INT64_MAX
) -> int:
    """An integer query parameter within ``minimum``..``maximum`` (by default what Postgres's
    bigint holds); anything else is a 400 naming the parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if not (text.isascii() and text.lstrip("+-").isdigit()) or len(text) > 40:
        raise BadRequest(f"{name} must be an integer, got {raw[:40]!r}", field=name)
    value = int(text)
    if value < minimum or value > maximum:
        raise BadRequest(f"{name} must be between {minimum} and {maximum}, got {text}", field=name)
    return value
