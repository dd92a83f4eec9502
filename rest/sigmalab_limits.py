"""Sigma Lab's rate-limit tiers (seed 001) under ``/api/v1/admin/users/{username}/tier``: an
admin sets a user's tier (``PATCH``) and reads it (``GET``; a user reads their own). Errors in
Sigma Lab's format; the limits themselves are applied by ``hub.middleware.RateLimitMiddleware``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.http import JSONResponse, read_json_object, require_admin, require_identity
from hub.openapi import describe
from hub.ratelimits.tiers import Tier
from rest.errors import SIGMALAB

endpoint = SIGMALAB.endpoint


class UserPath(BaseModel):
    username: str = Field(min_length=1, max_length=64)


class TierRequest(BaseModel):
    tier: Tier


class TierLimitsModel(BaseModel):
    requests_per_minute: int | None = Field(description="null: unlimited")
    requests_per_hour: int | None = Field(description="null: unlimited")
    concurrent_backtests: int | None = Field(description="null: unlimited")


class UserTier(BaseModel):
    username: str
    tier: Tier
    limits: TierLimitsModel


@endpoint
@describe(
    SIGMALAB,
    answers={200: UserTier},
    errors=[403, 404, 429],
    path=UserPath,
    body=TierRequest,
    tag="rate limits",
)
async def set_user_tier(request: Request) -> Response:
    """Set a user's rate-limit tier (admin only).

    free, basic, pro or enterprise; the tier's limits apply from the user's next request.
    """
    identity = require_admin(request)  # a user is refused before the body is read
    body = await read_json_object(request)
    username = request.path_params["username"]
    tier = await request.state.ratelimits.set_tier(identity, username, body.get("tier"))
    return JSONResponse(tier)


@endpoint
@describe(
    SIGMALAB, answers={200: UserTier}, errors=[403, 404, 429], path=UserPath, tag="rate limits"
)
async def get_user_tier(request: Request) -> Response:
    """A user's rate-limit tier and its limits (an admin reads anyone's, a user their own)."""
    identity = require_identity(request)
    username = request.path_params["username"]
    return JSONResponse(await request.state.ratelimits.get_tier(identity, username))


def routes() -> list[BaseRoute]:
    path = "/api/v1/admin/users/{username}/tier"
    return [
        Route(path, set_user_tier, methods=["PATCH"]),
        Route(path, get_user_tier, methods=["GET"]),
    ]
