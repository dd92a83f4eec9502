"""The composition root: ``create_app(settings)`` wires routes, middleware and the lifespan.

What the hub serves comes from the domain list (``hub/domains.py``): their services live in the
lifespan state under their names (``request.state.executions``), their topics in the registry
the bus and the sockets read, and their GraphQL fields in the schema.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Scope

import rest
from hub import routes, web
from hub.domains import load_domains, open_resources
from hub.errors import HubError, ServerError, from_status
from hub.feeds import BotFeed
from hub.gql.app import HubGraphQL
from hub.gql.http import GraphQLEndpoint
from hub.gql.schema import build_schema
from hub.gql.ws import GraphQLWebSocket
from hub.logs import configure_logging
from hub.metrics import Metrics
from hub.middleware import (
    AuthenticationMiddleware,
    InputValidationMiddleware,
    RateLimitMiddleware,
    RequestContextMiddleware,
)
from hub.settings import Settings
from rest.errors import family_for

log = logging.getLogger("tradehub")


async def hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return family_for(request.url.path).render(request, exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path; a path served by
        # several routes (one per method) allows all of theirs.
        methods = {
            method
            for route in request.app.routes
            if isinstance(route, Route) and route.path_regex.match(request.url.path)
            for method in route.methods or ()
        }
        headers["Allow"] = ", ".join(sorted(methods))
    error = from_status(exc.status_code, str(exc.detail), headers)
    return family_for(request.url.path).render(request, error)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client went away mid-request (its body stalled and the server answered 408, or it
    hung up): nobody will read an answer, and it is not the hub's error."""
    log.debug("client disconnected mid-request", extra={"path": request.url.path})
    return Response(status_code=400)


def render_refusal(scope: Scope, error: HubError) -> Response:
    """A request refused before routing, in the format of the family its path belongs to."""
    return family_for(scope.get("path", "")).render(Request(scope), error)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return family_for(request.url.path).render(request, ServerError("internal server error"))


def create_app(settings: Settings) -> Starlette:
    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError(
            "create_app needs TRADEHUB_DATABASE_URL and TRADEHUB_REDIS_URL; "
            "`tradehub up` or `tradehub serve` resolve them for the embedded servers"
        )
    domains = load_domains(settings.domains)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # Our access log replaces uvicorn's, which would print query strings (credentials).
        logging.getLogger("uvicorn.access").disabled = True
        async with open_resources(
            settings,
            "hub",
            domains,
            on_slow_consumer=lambda sub: metrics.slow_consumers.inc(),
        ) as resources:
            if settings.gc_tuning:
                gc.collect()
                gc.freeze()
                gc.set_threshold(50_000, 50, 100)
            yield {
                **resources.services,
                "settings": settings,
                "resources": resources,
                "pool": resources.pool,
                "redis": resources.redis,
                "arq": resources.arq,
                "keys": resources.keys,
                "bus": resources.bus,
                "topics": resources.topics,
                "auth": resources.service("users"),
                "metrics": metrics,
                "started_at": time.monotonic(),
            }

    schema = build_schema(domains, max_rows=settings.graphql_max_rows)
    graphiql = HubGraphQL(schema, allow_queries_via_get=False)
    route_list = [
        *routes.routes(),
        Route(
            "/graphql",
            GraphQLEndpoint(schema, graphiql, settings),
            methods=["GET", "POST"],
            include_in_schema=False,
        ),
        WebSocketRoute(
            "/graphql",
            GraphQLWebSocket(
                schema, init_timeout=settings.ws_init_timeout, send_timeout=settings.ws_send_timeout
            ),
        ),
        WebSocketRoute(
            "/ws",
            BotFeed(auth_timeout=settings.ws_init_timeout, send_timeout=settings.ws_send_timeout),
        ),
        *(route for d in domains if d.routes is not None for route in d.routes()),
        *rest.routes(),
        *web.routes(),
    ]
    middleware = [Middleware(RequestContextMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                # Rate limits are readable by a browser client too (hub/ratelimits/).
                expose_headers=[
                    "X-Request-ID",
                    "X-RateLimit-Limit",
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "Retry-After",
                ],
            )
        )
    middleware.append(Middleware(InputValidationMiddleware, render=render_refusal))
    middleware.append(Middleware(AuthenticationMiddleware))
    middleware.append(Middleware(RateLimitMiddleware))
    handlers: dict[Any, Any] = {
        ClientDisconnect: client_gone,
        HubError: hub_error,
        HTTPException: http_error,
        Exception: server_error,
    }
    return Starlette(
        routes=route_list, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )


def create_app_from_env() -> Starlette:
    """uvicorn's factory (``--factory``): settings from the environment."""
    settings = Settings()
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    return create_app(settings)
