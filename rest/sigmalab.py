"""Sigma Lab (seed 001) under ``/api/v1``: errors as ``{"error": {code, message, details}, "request_id"}``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.auth import mint_jwt
from hub.errors import BadRequest
from hub.http import JSONResponse, client_address, read_json_object
from hub.openapi import describe
from rest import sigmalab_research
from rest.errors import SIGMALAB
from rest.models import AccessToken, TokenRequest

endpoint = SIGMALAB.endpoint


@endpoint
@describe(SIGMALAB, answers={200: AccessToken}, errors=[401, 429], public=True, body=TokenRequest)
async def auth_token(request: Request) -> Response:
    """Get an authentication token (a JWT) for a username and password."""
    body = await read_json_object(request)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise BadRequest("username is required", field="username")
    if not isinstance(password, str) or not password:
        raise BadRequest("password is required", field="password")
    identity = await request.state.users.login(username, password, client_address(request))
    settings = request.state.settings
    token, ttl = mint_jwt(identity, settings.jwt_secret, settings.jwt_ttl_seconds)
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": ttl})


def routes() -> list[BaseRoute]:
    return [
        Route("/api/v1/auth/token", auth_token, methods=["POST"]),
        *sigmalab_research.routes(),
    ]
