"""The root GraphQL schema: the hub's own ``health`` and every domain's fields, merged."""

from __future__ import annotations

import time
from collections.abc import Iterable

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext, Info

from hub import health
from hub.domains import Domain, load_domains
from hub.gql import limits
from hub.gql.context import Context
from hub.gql.cost import DEFAULT_MAX_ROWS, limiter
from hub.gql.errors import ErrorCodes, error_extensions, log_errors
from hub.gql.flat import FlatListExecutor
from hub.gql.types import Health, HealthStatus


class HubSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            error_extensions(error)
        log_errors(errors, execution_context.operation_name if execution_context else None)


@strawberry.type
class HubQuery:
    # strawberry types the field(description=...) decorator form as returning Any.
    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Postgres and Redis reachability, as /api/health reports it."
    )
    async def health(self, info: Info[Context, None]) -> Health:
        ctx = info.context
        report = await health.check(ctx.state.pool, ctx.state.redis)
        return Health(
            status=HealthStatus(report.status),
            postgres=report.postgres,
            redis=report.redis,
            uptime_seconds=int(time.monotonic() - ctx.state.started_at),
        )


def _merged(name: str, types: Iterable[type | None]) -> type | None:
    present = tuple(t for t in types if t is not None)
    return merge_types(name, present) if present else None


def build_schema(
    domains: list[Domain] | None = None, *, max_rows: int = DEFAULT_MAX_ROWS
) -> strawberry.Schema:
    """The schema of ``domains`` (the built-in ones when omitted: the exported contract), with
    the depth, alias, token and row limits on every operation."""
    domains = domains if domains is not None else load_domains()
    query = _merged("Query", [HubQuery, *(d.query for d in domains)])
    assert query is not None
    return HubSchema(
        query=query,
        mutation=_merged("Mutation", [d.mutation for d in domains]),
        subscription=_merged("Subscription", [d.subscription for d in domains]),
        extensions=[*limits.extensions(), limiter(max_rows), ErrorCodes],
        execution_context_class=FlatListExecutor,
    )
