"""The ``marketdata.replay`` job type: its payload, its entry point and its check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub.jobs.registry import JobType
from hub.marketdata.replay import ReplayPayload

if TYPE_CHECKING:
    from hub.auth import Identity
    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.marketdata.service import MarketDataService


async def run_replay(ctx: JobContext, payload: ReplayPayload) -> dict[str, Any]:
    marketdata: MarketDataService = ctx.service("marketdata")
    return await marketdata.replay(ctx, payload)


async def check_replay(resources: Resources, identity: Identity, payload: ReplayPayload) -> None:
    marketdata: MarketDataService = resources.service("marketdata")
    await marketdata.check_replay(identity, payload)


REPLAY = JobType(
    name="marketdata.replay",
    payload=ReplayPayload,
    handler="hub.marketdata.jobs:run_replay",
    check=check_replay,
    description="Publish a dataset's bars (four ticks each) or a symbol's stored ticks onto "
    "ticks:{symbol}, as fast as possible or at a multiple of real time",
    # Not retried: a second attempt would publish again what subscribers already saw.
    max_tries=1,
)
