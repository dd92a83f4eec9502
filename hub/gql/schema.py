"""The root GraphQL schema: queries, mutations and subscriptions of every domain."""

from __future__ import annotations

import time

import strawberry
from strawberry.types import Info

from hub import health
from hub.gql import executions as ex
from hub.gql import jobs as job_api
from hub.gql import limits, market
from hub.gql.context import Context
from hub.gql.errors import ErrorCodes
from hub.gql.types import Health, HealthStatus, Me, Role


@strawberry.type
class Query:
    # strawberry types the field(description=...) decorator form as returning Any.
    @strawberry.field(  # type: ignore[untyped-decorator]
        description="Postgres and Redis reachability, as /api/health reports it."
    )
    async def health(self, info: Info[Context, None]) -> Health:
        ctx = info.context
        report = await health.check(ctx.pool, ctx.redis)
        return Health(
            status=HealthStatus(report.status),
            postgres=report.postgres,
            redis=report.redis,
            uptime_seconds=int(time.monotonic() - ctx.state.started_at),
        )

    @strawberry.field(description="The authenticated caller.")  # type: ignore[untyped-decorator]
    def me(self, info: Info[Context, None]) -> Me:
        identity = info.context.require_identity()
        return Me(
            user_id=strawberry.ID(identity.user_id),
            username=identity.username,
            role=Role(identity.role.value),
        )

    job: job_api.Job = strawberry.field(
        resolver=job_api.resolve_job, description="One of your jobs."
    )
    jobs: job_api.JobPage = strawberry.field(
        resolver=job_api.resolve_jobs,
        description="Your jobs (every job, for an admin), newest first.",
    )
    execution: ex.Execution = strawberry.field(
        resolver=ex.resolve_execution, description="One of your executions."
    )
    executions: list[ex.Execution] = strawberry.field(
        resolver=ex.resolve_executions,
        description="Your executions (every one, for an admin), newest first.",
    )
    strategies: list[ex.Strategy] = strawberry.field(
        resolver=ex.resolve_strategies,
        description="Every strategy with its parameter schema and defaults.",
    )
    candles: list[job_api.Candle] = strawberry.field(
        resolver=job_api.resolve_candles, description="Bars of a dataset, oldest first."
    )


@strawberry.type
class Mutation:
    generate_synthetic_dataset: job_api.Job = strawberry.mutation(
        resolver=job_api.generate_synthetic_dataset,
        description="Start a dataset.synthetic job: a reproducible GBM OHLCV series.",
    )
    cancel_job: job_api.Job = strawberry.mutation(
        resolver=job_api.cancel_job,
        description="Cancel a job: a pending one at once, a running one at its next progress point.",
    )

    start_backtest: ex.Execution = strawberry.mutation(
        resolver=ex.start_backtest, description="Start a backtest execution (a job runs it)."
    )
    stop_execution: ex.Execution = strawberry.mutation(
        resolver=ex.stop_execution, description="Stop an execution at its next chunk."
    )


@strawberry.type
class Subscription:
    # strawberry types subscription(resolver=...) as the resolver's return type, the
    # AsyncGenerator, not the item type that the schema field has.
    job_progress: job_api.JobUpdate = strawberry.subscription(resolver=job_api.job_progress)  # type: ignore[assignment]
    job_log: job_api.JobLogEntry = strawberry.subscription(resolver=job_api.job_log)  # type: ignore[assignment]
    ticks: market.Tick = strawberry.subscription(resolver=market.ticks)  # type: ignore[assignment]
    execution_events: ex.ExecutionEvent = strawberry.subscription(resolver=ex.execution_events)  # type: ignore[assignment]
    execution_trades: ex.Trade = strawberry.subscription(resolver=ex.execution_trades)  # type: ignore[assignment]
    equity: ex.EquityPoint = strawberry.subscription(resolver=ex.equity)  # type: ignore[assignment]
    execution_status: ex.StatusUpdate = strawberry.subscription(resolver=ex.execution_status)  # type: ignore[assignment]


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[*limits.extensions(), ErrorCodes],
    )
