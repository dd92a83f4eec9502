"""InfluxDB's write API: ``POST /write`` (v1, and what QuestDB's HTTP clients call) and
``POST /api/v2/write`` (v2) take line protocol, answer 204 with no body, and refuse in
InfluxDB's ``{"code", "message"}`` (with QuestDB's ``"line"`` for a bad line).

The route authenticates the way InfluxDB clients do (see :func:`influx_identity`), reads the
body (gzip or not, bounded by ``TRADEHUB_LINE_PROTOCOL_MAX_BYTES`` as sent and again as
decompressed) and hands it to :mod:`hub.timeseries.lineproto`, which decides and writes.
``db``, ``rp``, ``org`` and ``bucket`` name InfluxDB's containers; the hub has one, the ``ts``
schema, so they are accepted (up to 256 characters) and otherwise ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import zlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.auth import AuthError, Identity
from hub.errors import BadRequest, PayloadTooLarge, Unauthorized
from hub.http import current_identity
from hub.openapi import describe
from hub.timeseries.lineproto import LineProtocolIngest
from rest.errors import INFLUX

# Precisions each version names (both spellings of each unit are taken by both).
V1_PRECISIONS = ("n", "ns", "u", "us", "ms", "s", "m", "h")
V2_PRECISIONS = ("ns", "n", "us", "u", "ms", "s")
MAX_NAME = 256  # db, rp, org, bucket


class LineProtocol(RootModel[str]):
    """InfluxDB line protocol, one point a line (gzip with ``Content-Encoding: gzip``)."""

    root: str = Field(
        min_length=1,
        description="measurement[,tag=value...] [field=value[,...]] [timestamp], one a line: "
        "floats (1.5), integers (1i), unsigned (1u), booleans (t, true, f, false), quoted "
        "strings, and QuestDB's timestamp fields (1t microseconds, 1n nanoseconds); lines of "
        "the measurement ticks (tag symbol; fields price, size or volume, bid, ask) are ticks",
        examples=["cpu,host=a usage=0.5,count=3i 1700000000000000000"],
    )


class WriteV1Query(BaseModel):
    model_config = ConfigDict(extra="allow")

    db: str | None = Field(None, max_length=MAX_NAME, description="accepted, ignored")
    rp: str | None = Field(None, max_length=MAX_NAME, description="accepted, ignored")
    precision: Literal["n", "ns", "u", "us", "ms", "s", "m", "h"] = Field(
        "n", description="the unit of timestamps without a t or n suffix"
    )
    u: str | None = Field(None, description="InfluxDB v1 credentials: any user name")
    p: str | None = Field(None, description="InfluxDB v1 credentials: the API key or a JWT")


class WriteV2Query(BaseModel):
    model_config = ConfigDict(extra="allow")

    org: str | None = Field(None, max_length=MAX_NAME, description="accepted, ignored")
    orgID: str | None = Field(None, max_length=MAX_NAME, description="accepted, ignored")
    bucket: str | None = Field(None, max_length=MAX_NAME, description="accepted, ignored")
    precision: Literal["ns", "n", "us", "u", "ms", "s"] = Field(
        "ns", description="the unit of timestamps without a t or n suffix"
    )


def _credential(request: Request) -> str | None:
    """The token of ``Authorization: Token <token>``, of basic credentials (the password),
    or of the ``p`` query parameter; None when there is none."""
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "token" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed basic credentials") from None
        _, _, password = decoded.partition(":")
        return password or None
    return request.query_params.get("p") or None


async def influx_identity(request: Request) -> Identity:
    """The caller, from what InfluxDB and QuestDB clients send: ``Authorization: Bearer`` or
    ``X-Stage1-Token`` (resolved by the middleware), ``Authorization: Token <token>`` (v2),
    basic credentials or ``?u=&p=`` (v1) with the token as the password. The token is an API
    key or a JWT; a missing or bad one is a 401."""
    identity = current_identity(request)
    if identity is None and request.state.auth_error is None:
        token = _credential(request)
        if token is not None:
            try:
                identity = await request.state.auth.authenticate(token)
            except AuthError as exc:
                raise Unauthorized(str(exc)) from None
    if identity is None:
        raise Unauthorized(
            request.state.auth_error
            or "authentication required: send Authorization: Token <API key or JWT> (or Bearer)"
        )
    if identity.expired():
        raise Unauthorized("token expired")
    return identity


def _precision(request: Request, allowed: tuple[str, ...], default: str) -> str:
    for name in ("db", "rp", "org", "orgID", "bucket"):
        value = request.query_params.get(name)
        if value is not None and len(value) > MAX_NAME:
            raise BadRequest(f"{name} must be at most {MAX_NAME} characters", field=name)
    precision = request.query_params.get("precision") or default
    if precision not in allowed:
        raise BadRequest(
            f"precision must be one of {', '.join(allowed)}, got {precision[:40]!r}",
            field="precision",
        )
    return precision


async def read_lines(request: Request, limit: int) -> bytes:
    """The body, decompressed when ``Content-Encoding: gzip``; 413 past ``limit`` bytes as sent
    (before more is read) or as decompressed, 400 for another encoding or bad gzip."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise BadRequest(
            f"Content-Encoding {encoding[:40]!r} is not supported: send gzip or identity"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the body is {declared} bytes, more than the limit of {limit} "
            "(TRADEHUB_LINE_PROTOCOL_MAX_BYTES)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"the body is more than the limit of {limit} bytes "
                "(TRADEHUB_LINE_PROTOCOL_MAX_BYTES)"
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "gzip" and body:
        body = await asyncio.to_thread(_gunzip, body, limit)
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member of ``data``, decompressed, refused past ``limit`` bytes as soon as
    the output passes it (a small body that inflates hugely is never inflated whole)."""
    parts: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise BadRequest(f"the gzip body is malformed: {exc}") from None
        size += len(part)
        if size > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(
                f"the body is more than the limit of {limit} bytes once decompressed "
                "(TRADEHUB_LINE_PROTOCOL_MAX_BYTES)"
            )
        if not inflater.eof:
            raise BadRequest("the gzip body is truncated")
        parts.append(part)
        data = inflater.unused_data
    return b"".join(parts)


async def _write(request: Request, allowed: tuple[str, ...], default: str) -> Response:
    identity = await influx_identity(request)
    precision = _precision(request, allowed, default)
    body = await read_lines(request, request.state.settings.line_protocol_max_bytes)
    if not body:
        raise BadRequest("the body is empty: expected line protocol, one point a line")
    await LineProtocolIngest(request.state.resources).write(identity, body, precision=precision)
    return Response(status_code=204)


_ERRORS: list[Literal[403]] = [403]


@describe(INFLUX, answers={204: None}, errors=_ERRORS, query=WriteV1Query, text=LineProtocol)
async def write_v1(request: Request) -> Response:
    """Write line protocol (InfluxDB v1, and QuestDB's HTTP clients).

    The whole body is parsed and checked first, then written in one transaction: any bad line
    is a 400 naming it (and nothing is written). Each measurement is a table of the ts schema
    (timestamp, tags as text, fields by their type); lines of the measurement ticks are
    ticks, stored and published on ticks:{symbol} (admin or marketdata:write, else 403).
    Another user's measurement is a 403. 413 past TRADEHUB_LINE_PROTOCOL_MAX_BYTES, sent or
    decompressed."""
    return await _write(request, V1_PRECISIONS, "n")


@describe(INFLUX, answers={204: None}, errors=_ERRORS, query=WriteV2Query, text=LineProtocol)
async def write_v2(request: Request) -> Response:
    """Write line protocol (InfluxDB v2).

    As POST /write: parsed and checked whole, then written in one transaction; a bad line is
    a 400 naming it. Ticks lines need an admin or marketdata:write (403)."""
    return await _write(request, V2_PRECISIONS, "ns")


def routes() -> list[BaseRoute]:
    wrap = INFLUX.endpoint
    return [
        Route("/write", wrap(write_v1), methods=["POST"]),
        Route("/api/v2/write", wrap(write_v2), methods=["POST"]),
    ]
