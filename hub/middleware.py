"""Pure ASGI middleware: request context (id, access log, metrics), authentication and rate
limits."""

from __future__ import annotations

import logging
import math
import re
import time
import urllib.parse
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import AuthError, credentials_from_headers
from hub.errors import BadRequest, HubError, RateLimited
from hub.metrics import Metrics
from hub.users.service import Authenticator

access_log = logging.getLogger("tradehub.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    root = scope.get("root_path", "")
    return f"{root}{path}" if root and not path.startswith(root) else str(path)


class RequestContextMiddleware:
    """Gives every request an id (echoed in ``X-Request-ID``), one access-log line and metrics.

    An incoming ``X-Request-ID`` is kept when it is a sane token, so ids follow a request
    across services. Only the method, path, status and timing are logged: never headers or query
    strings, which may carry credentials.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _headers(scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        accepted = False
        route = scope["path"]
        gauge = self.metrics.websockets

        async def tracking_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                gauge.labels(route).inc()
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            if accepted:
                gauge.labels(route).dec()
            access_log.info(
                "websocket",
                extra={
                    "path": scope["path"],
                    "accepted": accepted,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "request_id": request_id,
                },
            )


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def bad_input(scope: Scope) -> HubError | None:
    """The first thing wrong with a request's path or query string that no route accepts:
    bytes that are not UTF-8 once percent-decoded, or control characters (NUL included)."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode()
    try:
        path = urllib.parse.unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return BadRequest("the path is not UTF-8 once percent-decoded", field="path")
    if _CONTROL.search(path):
        return BadRequest("the path contains a control character", field="path")
    query = scope.get("query_string", b"")
    if query:
        try:
            pairs = urllib.parse.parse_qsl(
                query.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict"
            )
        except (UnicodeDecodeError, ValueError):
            return BadRequest("the query string is not UTF-8 once percent-decoded", field="query")
        for name, value in pairs:
            if _CONTROL.search(name) or _CONTROL.search(value):
                field = name if not _CONTROL.search(name) else "query"
                return BadRequest(f"{field} contains a control character", field=field)
    return None


class InputValidationMiddleware:
    """Refuse, before any route runs, a path or query string that no route accepts; the 400 is
    rendered by ``render`` (each REST family's own format, by path)."""

    def __init__(self, app: ASGIApp, render: Any) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = bad_input(scope)
            if error is not None:
                response = self.render(scope, error)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AuthenticationMiddleware:
    """Resolves ``Authorization: Bearer`` / ``X-Stage1-Token`` into ``scope["state"]["identity"]``.

    It never rejects: routes decide what needs a caller (401) or an admin (403), and the
    reason a presented credential failed is kept in ``auth_error`` for their message.
    """

    def __init__(self, app: ASGIApp, authenticator_key: str = "auth") -> None:
        self.app = app
        self.authenticator_key = authenticator_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state: dict[str, Any] = scope.setdefault("state", {})
            state["identity"] = None
            state["auth_error"] = None
            token = credentials_from_headers(_headers(scope))
            authenticator: Authenticator | None = state.get(self.authenticator_key)
            if token is not None and authenticator is not None:
                try:
                    state["identity"] = await authenticator.authenticate(token)
                except AuthError as exc:
                    state["auth_error"] = str(exc)
        await self.app(scope, receive, send)


_WINDOWS = {60.0: "a minute", 3600.0: "an hour"}


class RateLimitMiddleware:
    """Counts every HTTP request in the limits of the REST family its path belongs to
    (``hub/ratelimits/policy.py``: Sigma Lab's tiers, Cracktrader's per key, ORCA's per
    address), in Redis, so every hub process shares the count.

    A limited request's answer carries ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset``
    (the window's end, epoch seconds); one past a limit is answered here, 429 in that family's
    error format with ``Retry-After``, and never reaches its route. Runs after authentication:
    the caller's identity decides the subject and, for Sigma Lab, the tier.
    """

    def __init__(self, app: ASGIApp, service_key: str = "ratelimits") -> None:
        self.app = app
        self.service_key = service_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: dict[str, Any] = scope.get("state") or {}
        limits = state.get(self.service_key)
        if scope["type"] != "http" or limits is None:
            await self.app(scope, receive, send)
            return
        identity = state.get("identity")
        if identity is not None and identity.expired():
            identity = None  # its route answers 401; the request counts as anonymous
        client = scope.get("client")
        decided = await limits.admit(scope["path"], identity, client[0] if client else None)
        if decided is None:
            await self.app(scope, receive, send)
            return
        plan, verdict = decided
        headers = verdict.headers()
        if not verdict.admitted:
            usage = verdict.binding
            window = _WINDOWS.get(usage.limit.window_seconds, f"{usage.limit.window_seconds:g} s")
            retry = max(1, math.ceil(usage.retry_after))
            error = RateLimited(
                f"rate limit exceeded: {usage.limit.limit} requests {window}; retry in {retry} s",
                headers=headers,
                details={
                    "limit": usage.limit.limit,
                    "window_seconds": int(usage.limit.window_seconds),
                    "retry_after": retry,
                },
            )
            response = plan.family.render(Request(scope), error)
            await response(scope, receive, send)
            return
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ]

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start" and raw:
                present = message.get("headers", [])
                # A route that answered its own limit (a login's) keeps its headers.
                if not any(name.lower() == b"x-ratelimit-limit" for name, _ in present):
                    message = {**message, "headers": [*present, *raw]}
            await send(message)

        await self.app(scope, receive, send_with_limits)
