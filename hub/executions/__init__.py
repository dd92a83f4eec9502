"""Executions: backtest (and later live) runs with their events, trades, equity and metrics."""

from __future__ import annotations

import asyncio
import logging

from hub.domains import Domain, Resources
from hub.executions import gql
from hub.executions.jobs import BACKTEST
from hub.executions.service import ExecutionService
from hub.executions.topics import TOPICS

log = logging.getLogger("tradehub.executions")


def _warm_request_kernels() -> None:
    import numpy as np

    from engine import lttb

    x = np.arange(16, dtype=np.float64)
    lttb(x, x, 4)


async def start(resources: Resources) -> None:
    """Load (or compile, on a fresh machine) the kernels now, not on the first request: the
    downsampling a hub's requests use, every backtest kernel in a worker."""
    if resources.role == "hub":
        await asyncio.to_thread(_warm_request_kernels)
    elif resources.role == "worker":
        from engine.backtest import warm_up

        seconds = await asyncio.to_thread(warm_up)
        log.info("engine kernels ready", extra={"seconds": round(seconds, 2)})


domain = Domain(
    name="executions",
    service=ExecutionService,
    topics=TOPICS,
    jobs=(BACKTEST,),
    query=gql.Query,
    mutation=gql.Mutation,
    subscription=gql.Subscription,
    start=start,
)
