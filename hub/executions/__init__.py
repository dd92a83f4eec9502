"""Executions: backtest (and later live) runs with their events, trades, equity and metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

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
    # startLive checks a live strategy's parameters by building it: load its kernels now.
    from engine.live import LIVE_STRATEGIES, LiveSignals

    for name in sorted(LIVE_STRATEGIES):
        LiveSignals.create(name, {}).update(0, 1.0, 1.0, 1.0, 1.0)


async def start(resources: Resources) -> None:
    """Load (or compile, on a fresh machine) the kernels now, not on the first request: the
    downsampling a hub's requests use, every backtest kernel in a worker."""
    if resources.role == "hub":
        await asyncio.to_thread(_warm_request_kernels)
    elif resources.role == "worker":
        seconds = await _in_daemon_thread(_warm_backtest_kernels)
        log.info("engine kernels ready", extra={"seconds": round(seconds, 2)})
        if resources.settings.live_runs_per_worker > 0:
            from hub.executions.livehost import LiveHost

            service: ExecutionService = resources.service("executions")
            service.live_host = LiveHost(resources, service)
            await service.live_host.start()


async def stop(resources: Resources) -> None:
    service: ExecutionService = resources.service("executions")
    if service.live_host is not None:
        await service.live_host.stop()
        service.live_host = None


def _warm_backtest_kernels() -> float:
    """``engine.backtest.warm_up`` (one-pass runs and sweeps), then what only a backtest job
    uses: the chunked run of every bar strategy (a crossover's signals array is computed by
    kernels the one-pass run never calls: half a second on the first job otherwise) and the
    downsampling of a completed run's curve."""
    import time

    import numpy as np

    from engine.backtest import start_backtest, warm_up
    from engine.strategies import BAR_STRATEGIES
    from hub.executions.curves import STORED_SIZES, stored_sizes

    seconds = float(warm_up())
    started = time.perf_counter()
    n = 64
    close = 100.0 + np.sin(np.arange(n) / 3.0)
    bars = {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close + 1.0, "low": close - 1.0, "close": close,
        "prediction": np.cos(np.arange(n) / 4.0),
    }  # fmt: skip
    for name in BAR_STRATEGIES:
        run = start_backtest(bars, name, {})
        run.step(n // 2)
        run.step(n)
        run.open_trade()
    points = max(STORED_SIZES) + 1
    stored_sizes(
        (np.arange(points, dtype=np.int64), np.arange(points, dtype=np.int64), np.ones(points))
    )
    return seconds + time.perf_counter() - started


async def _in_daemon_thread(work: Callable[[], float]) -> float:
    """Run ``work`` in a daemon thread: a worker stopped during a first (minutes-long) compile
    exits at once instead of waiting for it, as it would for asyncio's default executor."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            loop.call_soon_threadsafe(_settle, done, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, value, None)

    threading.Thread(target=run, name="warm-up", daemon=True).start()
    return await done


def _settle(
    future: asyncio.Future[float], value: float | None, error: BaseException | None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value if value is not None else 0.0)


domain = Domain(
    name="executions",
    service=ExecutionService,
    topics=TOPICS,
    jobs=(BACKTEST,),
    query=gql.Query,
    mutation=gql.Mutation,
    subscription=gql.Subscription,
    start=start,
    stop=stop,
)
