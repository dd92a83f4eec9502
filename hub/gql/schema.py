"""The root GraphQL schema: queries, mutations and subscriptions of every domain."""

from __future__ import annotations

import time

import strawberry
from strawberry.types import Info

from hub import health
from hub.gql.context import Context
from hub.gql.types import Health, HealthStatus, Me, Role


@strawberry.type
class Query:
    @strawberry.field(description="Postgres and Redis reachability, as /api/health reports it.")
    async def health(self, info: Info[Context, None]) -> Health:
        ctx = info.context
        report = await health.check(ctx.pool, ctx.redis)
        return Health(
            status=HealthStatus(report.status),
            postgres=report.postgres,
            redis=report.redis,
            uptime_seconds=int(time.monotonic() - ctx.state.started_at),
        )

    @strawberry.field(description="The authenticated caller.")
    def me(self, info: Info[Context, None]) -> Me:
        identity = info.context.require_identity()
        return Me(
            user_id=strawberry.ID(identity.user_id),
            username=identity.username,
            role=Role(identity.role.value),
        )


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(query=Query)
