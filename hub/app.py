"""The composition root: ``create_app(settings)`` wires routes, middleware and the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import asyncpg
from arq.connections import ArqRedis
from redis.asyncio import ConnectionPool, Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

import rest
from hub import db, marketdata, routes
from hub.bus import Bus
from hub.errors import HubError
from hub.executions import topics as execution_topics
from hub.executions.service import ExecutionService
from hub.feeds import BotFeed
from hub.gql.app import HubGraphQL
from hub.gql.schema import build_schema
from hub.gql.ws import GraphQLWebSocket
from hub.http import JSONResponse
from hub.jobs import topics as job_topics
from hub.jobs.registry import load_modules
from hub.jobs.service import JobService
from hub.keys import Keys
from hub.logs import configure_logging
from hub.metrics import Metrics
from hub.middleware import AuthenticationMiddleware, RequestContextMiddleware
from hub.settings import Settings
from hub.topics import TopicRegistry
from hub.users.service import Authenticator

log = logging.getLogger("tradehub")


class State(TypedDict):
    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    arq: ArqRedis
    keys: Keys
    auth: Authenticator
    metrics: Metrics
    topics: TopicRegistry
    bus: Bus
    jobs: JobService
    executions: ExecutionService
    started_at: float


def build_topics(pool: asyncpg.Pool) -> TopicRegistry:
    registry = TopicRegistry()
    job_topics.register(registry, pool)
    execution_topics.register(registry, pool)
    marketdata.register(registry)
    return registry


def _require_urls(settings: Settings) -> tuple[str, str]:
    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError(
            "create_app needs TRADEHUB_DATABASE_URL and TRADEHUB_REDIS_URL; "
            "`tradehub up` or `tradehub serve` resolve them for the embedded servers"
        )
    return settings.database_url, settings.redis_url


async def hub_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"error": "internal server error"}, status_code=500)


def warm_request_kernels() -> None:
    import numpy as np

    from engine import lttb

    x = np.arange(16, dtype=np.float64)
    lttb(x, x, 4)


def create_app(settings: Settings) -> Starlette:
    database_url, redis_url = _require_urls(settings)
    load_modules(settings.job_modules)
    metrics = Metrics()
    keys = Keys(settings.redis_prefix)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # Our access log replaces uvicorn's, which would print query strings (credentials).
        logging.getLogger("uvicorn.access").disabled = True
        pool = await db.create_pool(
            database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        redis = Redis.from_url(redis_url, socket_connect_timeout=5, health_check_interval=30)
        # Built without a connection check: the hub starts (degraded) while Redis is down.
        arq = ArqRedis(
            connection_pool=ConnectionPool.from_url(redis_url), default_queue_name=keys.queue
        )
        topics = build_topics(pool)
        bus = Bus(
            redis,
            redis_url,
            keys,
            topics,
            on_slow_consumer=lambda sub: metrics.slow_consumers.inc(),
        )
        await bus.start(wait=2.0)
        # The kernels requests use (downsampling) load now, not on the first request.
        await asyncio.to_thread(warm_request_kernels)
        if settings.gc_tuning:
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
        jobs = JobService(pool, bus, arq, keys)
        try:
            yield State(
                settings=settings,
                pool=pool,
                redis=redis,
                arq=arq,
                keys=keys,
                auth=Authenticator(pool, settings.jwt_secret),
                metrics=metrics,
                topics=topics,
                bus=bus,
                jobs=jobs,
                executions=ExecutionService(pool, bus, jobs),
                started_at=time.monotonic(),
            )
        finally:
            await bus.stop()
            await arq.aclose()
            await redis.aclose()
            await pool.close()

    schema = build_schema()
    graphql = HubGraphQL(schema)
    route_list = [
        *routes.routes(),
        Route("/graphql", graphql, methods=["GET", "POST"], include_in_schema=False),
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
        *rest.routes(),
    ]
    middleware = [Middleware(RequestContextMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["*"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID"],
            )
        )
    middleware.append(Middleware(AuthenticationMiddleware))
    handlers: dict[Any, Any] = {
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
