"""One error renderer per REST family, and the one wrapper that applies it.

Every route of a family is wrapped by :meth:`Family.endpoint`, so the domain errors its
services raise, and its auth failures, answer in the family's own format; the app's exception
handlers use :func:`family_for` so that unknown paths (404), wrong methods (405) and server
errors under a family's base path answer in that format too.

| family | base paths | format |
|---|---|---|
| Executions (seed 003) | ``/api/trading/executions/`` | ``{"error": "..."}`` |
| ORCA (seed 002) | ``/api/v1/trading/``, ``/api/v1/run-bot/``, ``/api/upload-tick-data``, ``/api/health/`` | ``{"detail", "status_code"}`` |
| Sigma Lab (seed 001) | ``/api/v1/`` (shared with Cracktrader) | ``{"error": {code, message, details}, "request_id"}`` |
| Cracktrader (seed 004) | its routes under ``/api/v1/`` | ``{"error": {code, message, details}}`` |
| the hub's own | ``/api/v1/marketdata/`` (and its routes elsewhere) | ``{"error": "..."}`` |
| InfluxDB's write API | ``/api/v2/``, ``/write`` | ``{"code", "message"}`` (+ ``"line"``) |
| Stage1 (seed 000) | everything else | ``{"error": "..."}`` |

Sigma Lab and Cracktrader share ``/api/v1``: an unknown path there answers in Sigma Lab's
format, which is Cracktrader's plus ``request_id``, so a client of either reads it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from hub.errors import HubError
from hub.http import JSONResponse

Endpoint = Callable[[Request], Awaitable[Response]]
Renderer = Callable[[Request, HubError], dict[str, object]]


def _plain(request: Request, exc: HubError) -> dict[str, object]:
    return {"error": exc.message}


def _coded(exc: HubError, code: str | None = None) -> dict[str, object]:
    return {"code": code or exc.code, "message": exc.message, "details": exc.details}


def _sigmalab(request: Request, exc: HubError) -> dict[str, object]:
    error = _coded(exc)
    if exc.field is not None and "reason" not in exc.details:
        # Seed 001's details name the field and the reason it was refused.
        error["details"] = {**exc.details, "reason": exc.message}
    return {"error": error, "request_id": getattr(request.state, "request_id", None)}


def _cracktrader(request: Request, exc: HubError) -> dict[str, object]:
    # Seed 004 names a refused symbol INVALID_SYMBOL, with the symbols that would work.
    code = "INVALID_SYMBOL" if exc.status_code == 400 and exc.field == "symbols" else None
    return {"error": _coded(exc, code)}


def _orca(request: Request, exc: HubError) -> dict[str, object]:
    return {"detail": exc.message, "status_code": exc.status_code}


# InfluxDB's error codes (its API's ``Error.code``), by status.
INFLUX_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    405: "method not allowed",
    409: "conflict",
    413: "request too large",
    415: "unsupported media type",
    422: "unprocessable entity",
    429: "too many requests",
    501: "not implemented",
    503: "unavailable",
}


def _influx(request: Request, exc: HubError) -> dict[str, object]:
    """InfluxDB's ``{"code", "message"}``, and QuestDB's ``line`` for a line that failed."""
    status = exc.status_code
    code = INFLUX_CODES.get(status, "internal error" if status >= 500 else "invalid")
    body: dict[str, object] = {"code": code, "message": exc.message}
    line = exc.details.get("line")
    if isinstance(line, int):
        body["line"] = line
    return body


@dataclass(frozen=True)
class Family:
    name: str
    render_body: Renderer
    prefixes: tuple[str, ...] = ()  # base paths: every path under them is the family's
    paths: tuple[str, ...] = ()  # single routes the family owns outside a base of its own

    def render(self, request: Request, exc: HubError) -> Response:
        return JSONResponse(
            self.render_body(request, exc), status_code=exc.status_code, headers=exc.headers
        )

    def endpoint(self, fn: Endpoint) -> Endpoint:
        """Answer every domain error ``fn`` raises in this family's format."""

        @functools.wraps(fn)
        async def wrapper(request: Request) -> Response:
            try:
                return await fn(request)
            except HubError as exc:
                return self.render(request, exc)

        return wrapper


STAGE1 = Family("stage1", _plain)
EXECUTIONS = Family("executions", _plain, ("/api/trading/executions/",))
ORCA = Family(
    "orca",
    _orca,
    ("/api/v1/trading/", "/api/v1/run-bot/"),
    ("/api/upload-tick-data", "/api/health/"),
)
SIGMALAB = Family("sigmalab", _sigmalab, ("/api/v1/",))
CRACKTRADER = Family("cracktrader", _cracktrader)
# The hub's own routes answer like Stage1, {"error": "..."}, even those under Sigma Lab's /api/v1.
HUB = Family("hub", _plain, ("/api/v1/marketdata/",))
# InfluxDB's write API (v2 under /api/v2, v1's /write), as InfluxDB and QuestDB answer it.
INFLUX = Family("influx", _influx, ("/api/v2/",), ("/write",))

_BASED = (EXECUTIONS, ORCA, SIGMALAB, HUB, INFLUX)
_BY_PREFIX = sorted(
    ((prefix, family) for family in _BASED for prefix in family.prefixes),
    key=lambda pair: -len(pair[0]),
)


_BY_PATH = {path: family for family in _BASED for path in family.paths}


@functools.cache
def cracktrader_paths() -> frozenset[str]:
    """Cracktrader's routes under Sigma Lab's ``/api/v1`` (its ``/api/v1/health`` too: Sigma
    Lab's is ``/api/v1/healthz``), read from its route list (imported late: ``rest.cracktrader``
    imports this module), so a route added there needs no second list."""
    from rest import cracktrader

    return frozenset(getattr(route, "path", "") for route in cracktrader.routes())


def family_for(path: str) -> Family:
    """The family that owns ``path``: its own route, else the most specific base holding it
    (a base's own path without its final slash included)."""
    found = _BY_PATH.get(path)
    if found is not None:
        return found
    if path in cracktrader_paths():  # a wrong method on one of them answers in its format
        return CRACKTRADER
    for prefix, family in _BY_PREFIX:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return family
    return HUB
