"""The hub's own HTTP routes: health, metrics, login and keys, user admin, API docs."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub import health, web
from hub.auth import Identity, Role, Scope, mint_jwt, parse_scopes
from hub.errors import BadRequest, NotFound
from hub.http import (
    JSONResponse,
    client_address,
    read_json_object,
    require_admin,
    require_identity,
)
from hub.openapi import describe, openapi_document
from hub.times import iso
from rest.errors import HUB, ORCA, STAGE1
from rest.models import AccessToken, Alive, Health, NotReady, Ready

# -- what the routes take and answer, for /openapi.json (the routes build plain dicts) -----


class Credentials(BaseModel):
    username: str
    password: str


class Caller(BaseModel):
    user_id: uuid.UUID
    username: str
    role: Role


class KeyRequest(BaseModel):
    name: str = Field("", description="a label for the key; its first 200 characters are kept")
    scopes: list[Scope] = Field(
        default_factory=list,
        description="rights the key carries beyond its user's role; only an admin grants them "
        "(marketdata:write: ingest ticks and start replays)",
    )


class NewKey(BaseModel):
    api_key: str = Field(description="the whole key: in this answer and nowhere else")
    key_id: str
    scopes: list[Scope]


class KeyPath(BaseModel):
    key_id: str


class UserPath(BaseModel):
    user_id: uuid.UUID


class UserState(Caller):
    disabled: bool


class UserRow(UserState):
    created_at: datetime


class Users(BaseModel):
    users: list[UserRow]


class NewUser(BaseModel):
    username: str = Field(min_length=1, max_length=64, description="printable characters")
    password: str | None = Field(None, min_length=8, description="none: the user cannot log in")
    role: Role = Role.USER


class UserChange(BaseModel):
    """At least one of the two."""

    role: Role | None = None
    disabled: bool | None = None


@describe(STAGE1, answers={200: Alive}, public=True)
async def healthz(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


@describe(STAGE1, answers={200: Ready, 503: NotReady}, public=True)
async def readyz(request: Request) -> Response:
    """Readiness: 200 when Postgres and Redis both answer, 503 naming what failed."""
    report = await health.check(request.state.pool, request.state.redis)
    if report.postgres and report.redis:
        return JSONResponse({"status": "ready"})
    failed = [
        name for name, ok in (("postgres", report.postgres), ("redis", report.redis)) if not ok
    ]
    return JSONResponse(
        {"status": "not ready", "failed": failed, "checks": report.checks}, status_code=503
    )


async def _health_body(request: Request, timestamp: str) -> Response:
    report = await health.check(request.state.pool, request.state.redis)
    body = {
        "status": report.status,
        "timestamp": timestamp,
        "uptime": int(time.monotonic() - request.state.started_at),
        "checks": report.checks,
    }
    return JSONResponse(body, status_code=503 if report.status == "unhealthy" else 200)


@describe(STAGE1, answers={200: Health, 503: Health}, public=True)
async def api_health(request: Request) -> Response:
    """Detailed health (Stage1's, with ORCA's checks): timestamp as Stage1 shows it."""
    now = datetime.now(UTC)
    return await _health_body(request, now.isoformat(timespec="seconds").replace("+00:00", "Z"))


@describe(ORCA, answers={200: Health, 503: Health}, public=True)
async def orca_health(request: Request) -> Response:
    """Detailed health (ORCA's root check, with Stage1's fields): ORCA's timestamp form,
    microseconds and no zone ("2025-01-21T20:00:00.000000", UTC)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return await _health_body(request, now.isoformat(timespec="microseconds"))


async def metrics(request: Request) -> Response:
    return Response(
        request.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


@describe(
    HUB, answers={200: AccessToken}, errors=[401, 429], public=True, body=Credentials, tag="hub"
)
async def login(request: Request) -> Response:
    """Exchange a username and password for a JWT access token."""
    body = await read_json_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest("username and password are required strings", field="username")
    identity = await request.state.users.login(username, password, client_address(request))
    settings = request.state.settings
    token, ttl = mint_jwt(identity, settings.jwt_secret, settings.jwt_ttl_seconds)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": ttl})


@describe(HUB, answers={200: Caller}, tag="hub")
async def me(request: Request) -> Response:
    """The caller: who the credentials name."""
    identity = require_identity(request)
    return JSONResponse(
        {"user_id": identity.user_id, "username": identity.username, "role": identity.role.value}
    )


async def _new_key(request: Request, identity: Identity, for_user: str | None) -> Response:
    body = await read_json_object(request)
    name = body.get("name", "")
    if not isinstance(name, str):
        raise BadRequest("name must be a string", field="name")
    scopes = parse_scopes(body.get("scopes", []))
    token = await request.state.users.create_api_key(identity, name, scopes, for_user=for_user)
    return JSONResponse(
        {"api_key": token, "key_id": token.split("_")[1], "scopes": [s.value for s in scopes]},
        status_code=201,
    )


@describe(HUB, answers={201: NewKey}, errors=[403], body=KeyRequest, tag="hub")
async def create_key(request: Request) -> Response:
    """A new API key for the caller; the key is in this response and nowhere else.

    Only an admin may ask for scopes (403 otherwise)."""
    return await _new_key(request, require_identity(request), None)


@describe(HUB, answers={201: NewKey}, errors=[403, 404], path=UserPath, body=KeyRequest, tag="hub")
async def create_user_key(request: Request) -> Response:
    """A new API key for a user (an admin), with the scopes given: how a market-data feed
    gets a key that may publish ticks without being an admin."""
    admin = require_admin(request)
    return await _new_key(request, admin, request.path_params["user_id"])


@describe(HUB, answers={204: None}, errors=[404], path=KeyPath, tag="hub")
async def revoke_key(request: Request) -> Response:
    """Revoke one of the caller's API keys; every process refuses it within seconds."""
    identity = require_identity(request)
    key_id = request.path_params["key_id"]
    if not await request.state.users.revoke_api_key(identity, key_id):
        raise NotFound(f"no active API key {key_id!r} of yours")
    return Response(status_code=204)


@describe(HUB, answers={200: Users}, errors=[403], tag="hub")
async def list_users(request: Request) -> Response:
    """Every user (an admin)."""
    require_admin(request)
    rows = await request.state.users.list_users()
    return JSONResponse(
        {
            "users": [
                {
                    "user_id": str(row["user_id"]),
                    "username": row["username"],
                    "role": row["role"],
                    "disabled": row["disabled"],
                    "created_at": iso(row["created_at"]),
                }
                for row in rows
            ]
        }
    )


@describe(HUB, answers={201: Caller}, errors=[403], body=NewUser, tag="hub")
async def create_user(request: Request) -> Response:
    """Create a user (an admin); an existing username gets the role and password given."""
    require_admin(request)
    body = await read_json_object(request)
    username = body.get("username")
    password = body.get("password")
    role_name = body.get("role", "user")
    if not isinstance(username, str):
        raise BadRequest("username is a required string", field="username")
    if password is not None and (not isinstance(password, str) or len(password) < 8):
        raise BadRequest("password must be a string of at least 8 characters", field="password")
    try:
        role = Role(role_name)
    except ValueError:
        raise BadRequest(
            f"role must be 'user' or 'admin', got {role_name!r}", field="role"
        ) from None
    try:
        identity = await request.state.users.create_user(username, role=role, password=password)
    except ValueError as exc:
        raise BadRequest(str(exc), field="username") from None
    return JSONResponse(
        {"user_id": identity.user_id, "username": identity.username, "role": identity.role.value},
        status_code=201,
    )


@describe(
    HUB, answers={200: UserState}, errors=[403, 404], path=UserPath, body=UserChange, tag="hub"
)
async def update_user(request: Request) -> Response:
    """Change a user's role or disable them (an admin); open sockets and tokens of theirs
    follow within seconds."""
    admin = require_admin(request)
    body = await read_json_object(request)
    role_name, disabled = body.get("role"), body.get("disabled")
    if role_name is None and disabled is None:
        raise BadRequest("send role and/or disabled", field="role")
    role = None
    if role_name is not None:
        try:
            role = Role(role_name)
        except ValueError:
            raise BadRequest(
                f"role must be 'user' or 'admin', got {role_name!r}", field="role"
            ) from None
    if disabled is not None and not isinstance(disabled, bool):
        raise BadRequest("disabled must be true or false", field="disabled")
    row = await request.state.users.update_user(
        admin, request.path_params["user_id"], role=role, disabled=disabled
    )
    return JSONResponse(
        {
            "user_id": str(row["user_id"]),
            "username": row["username"],
            "role": row["role"],
            "disabled": row["disabled"],
        }
    )


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.routes))


async def docs(request: Request) -> Response:
    return web.html("docs.html")  # Swagger UI from the wheel's own assets


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/api/health", api_health, methods=["GET"]),
        Route("/api/health/", orca_health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"], include_in_schema=False),
        Route("/api/auth/login", login, methods=["POST"]),
        Route("/api/me", me, methods=["GET"]),
        Route("/api/auth/keys", create_key, methods=["POST"]),
        Route("/api/auth/keys/{key_id}", revoke_key, methods=["DELETE"]),
        Route("/api/admin/users", list_users, methods=["GET"]),
        Route("/api/admin/users", create_user, methods=["POST"]),
        Route("/api/admin/users/{user_id}", update_user, methods=["PATCH"]),
        Route("/api/admin/users/{user_id}/keys", create_user_key, methods=["POST"]),
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        Route("/docs", docs, methods=["GET"], include_in_schema=False),
    ]
