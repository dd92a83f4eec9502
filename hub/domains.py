"""Domains: each ``hub/<domain>/`` declares itself with one :class:`Domain`, and one list names
them all.

The app's lifespan, the worker, the job registry, the topic registry and the GraphQL schema all
read that list; nothing else knows which domains exist. Adding a domain is its folder plus one
line in :data:`BUILTIN` (or, for a plug-in, an entry in ``TRADEHUB_DOMAINS``). A domain may use
the services of the domains listed before it (``resources.service("jobs")``).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hub.topics import TopicRegistry, TopicSpec

if TYPE_CHECKING:
    import asyncpg
    from arq.connections import ArqRedis
    from redis.asyncio import Redis
    from starlette.routing import BaseRoute

    from hub.bus import Bus
    from hub.jobs.registry import JobType, JobTypes
    from hub.jobs.service import JobService
    from hub.keys import Keys
    from hub.settings import Settings

# The domains every hub and worker serves, in dependency order.
BUILTIN: tuple[str, ...] = (
    "hub.users",
    "hub.ratelimits",
    "hub.jobs",
    "hub.datasets",
    "hub.executions",
    "hub.marketdata",
    "hub.broker",
    "hub.runs",
    "hub.timeseries",
    "hub.webhooks",
    "hub.research",
    "hub.signals",
)

Role = Literal["hub", "worker", "cli"]
Hook = Callable[["Resources"], Awaitable[None]]


@dataclass(frozen=True)
class Domain:
    """Everything a domain brings to the hub, in one object exposed as ``<package>.domain``."""

    name: str  # also where its service lives: ``request.state.<name>``, ``resources.service(name)``
    service: Callable[[Resources], Any] | None = None
    topics: tuple[TopicSpec, ...] = ()
    jobs: tuple[JobType, ...] = ()
    # strawberry types whose fields join the root Query, Mutation and Subscription.
    query: type | None = None
    mutation: type | None = None
    subscription: type | None = None
    # The domain's own HTTP routes (its native REST; the legacy families stay in ``rest/``).
    routes: Callable[[], list[BaseRoute]] | None = None
    # arq functions workers run besides jobs (work without a job row: a webhook delivery),
    # built from the settings.
    tasks: Callable[[Settings], list[Any]] | None = None
    # Called once every service exists (in list order), and at shutdown (in reverse order).
    start: Hook | None = None
    stop: Hook | None = None


def load_domain(path: str) -> Domain:
    """``package`` (its ``domain`` attribute) or ``module:attribute``."""
    module, _, attribute = path.partition(":")
    found = getattr(importlib.import_module(module), attribute or "domain", None)
    if not isinstance(found, Domain):
        raise TypeError(f"{path!r} names no tradehub Domain")
    return found


def load_domains(extra: Iterable[str] = ()) -> list[Domain]:
    domains = [load_domain(path) for path in (*BUILTIN, *extra)]
    names = [d.name for d in domains]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"domain names must be unique; repeated: {', '.join(duplicates)}")
    return domains


def topic_registry(domains: Iterable[Domain]) -> TopicRegistry:
    return TopicRegistry(spec for d in domains for spec in d.topics)


def job_types(domains: Iterable[Domain]) -> JobTypes:
    # Imported here: hub.jobs is itself a domain package that imports this module.
    from hub.jobs.registry import JobTypes

    return JobTypes(job_type for d in domains for job_type in d.jobs)


@dataclass
class Resources:
    """What one process shares with every domain: connections, the bus, and the services."""

    role: Role
    settings: Settings
    domains: list[Domain]
    pool: asyncpg.Pool
    redis: Redis
    arq: ArqRedis
    keys: Keys
    bus: Bus
    topics: TopicRegistry
    job_types: JobTypes
    services: dict[str, Any] = field(default_factory=dict)

    def service(self, name: str) -> Any:
        try:
            return self.services[name]
        except KeyError:
            raise LookupError(
                f"no service {name!r} yet: list its domain before the domains that use it"
            ) from None

    @property
    def jobs(self) -> JobService:
        return self.service("jobs")  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def open_resources(
    settings: Settings,
    role: Role,
    domains: list[Domain] | None = None,
    *,
    on_slow_consumer: Callable[[Any], None] | None = None,
) -> AsyncIterator[Resources]:
    """Connect, build every domain's service and topic sources, start them; undo it all on exit.

    A hub and a worker read the bus (subscribers); a CLI command only publishes.
    """
    from arq.connections import ArqRedis
    from redis.asyncio import ConnectionPool, Redis

    from hub import db
    from hub.bus import Bus
    from hub.keys import Keys

    if settings.database_url is None or settings.redis_url is None:
        raise RuntimeError(
            "tradehub needs TRADEHUB_DATABASE_URL and TRADEHUB_REDIS_URL; "
            "`tradehub up` or `tradehub serve` resolve them for the embedded servers"
        )
    domains = domains if domains is not None else load_domains(settings.domains)
    keys = Keys(settings.redis_prefix)
    topics = topic_registry(domains)
    sizes = {
        "hub": (settings.db_pool_min, settings.db_pool_max),
        "worker": (1, max(4, settings.db_pool_max // 2)),
        "cli": (1, 2),
    }[role]
    async with contextlib.AsyncExitStack() as stack:
        pool = await db.create_pool(settings.database_url, min_size=sizes[0], max_size=sizes[1])
        stack.push_async_callback(pool.close)
        redis = Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, health_check_interval=30
        )
        stack.push_async_callback(redis.aclose)
        # Built without a connection check: the hub starts (degraded) while Redis is down.
        arq = ArqRedis(
            connection_pool=ConnectionPool.from_url(settings.redis_url),
            default_queue_name=keys.queue,
        )
        stack.push_async_callback(arq.aclose)
        bus = Bus(
            redis,
            settings.redis_url,
            keys,
            topics,
            queue_size=settings.bus_queue_size,
            on_slow_consumer=on_slow_consumer,
        )
        resources = Resources(
            role=role,
            settings=settings,
            domains=domains,
            pool=pool,
            redis=redis,
            arq=arq,
            keys=keys,
            bus=bus,
            topics=topics,
            job_types=job_types(domains),
        )
        for domain in domains:
            if domain.service is not None:
                resources.services[domain.name] = domain.service(resources)
        if role in ("hub", "worker"):  # a worker's live runs read ticks from the bus
            topics.bind(resources)
            await bus.start(wait=2.0)
            stack.push_async_callback(bus.stop)
        for domain in domains:
            if domain.start is not None:
                await domain.start(resources)
            if domain.stop is not None:
                stack.push_async_callback(domain.stop, resources)
        yield resources
