"""Time series: the ``ts`` schema's generic measurements (written by CSV imports, and by any
caller of :mod:`hub.timeseries.store`), and read-only SQL over the whole schema."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.timeseries import gql
from hub.timeseries.jobs import QUESTDB_IMPORT
from hub.timeseries.service import TimeseriesService

if TYPE_CHECKING:
    from hub.domains import Resources

log = logging.getLogger("tradehub.timeseries")


async def start(resources: Resources) -> None:
    """A hub starting loads the line-protocol parser's kernels in the background (so the first
    ``POST /write`` does not compile them) and removes the partial uploads a hub that died
    mid-upload left."""
    if resources.role != "hub":
        return
    service: TimeseriesService = resources.service("timeseries")
    service.parser_ready = warm_parser()
    try:
        swept = await service.sweep_uploads()
    except OSError as exc:
        log.warning("could not sweep the uploads folder", extra={"error": str(exc)})
        return
    if swept:
        log.info("removed orphaned uploads", extra={"files": swept})


def warm_parser() -> asyncio.Future[float]:
    """Load (or, on a fresh machine, compile: about 20 s) ``engine.parse_ilp``'s kernels in a
    daemon thread; start-up does not wait for it, and a hub stopped mid-compile exits at once.
    A ``/write`` that arrives first waits on numba's compile lock, as it would without this.
    The future holds the seconds it took."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[float] = loop.create_future()

    def settle(seconds: float | None, error: BaseException | None) -> None:
        if ready.done():
            return
        if error is not None:
            log.warning("could not load the line-protocol parser", extra={"error": str(error)})
            ready.set_exception(error)
            ready.exception()  # reported above: not "never retrieved" when nobody awaits it
        else:
            log.info("line-protocol parser ready", extra={"seconds": round(seconds or 0.0, 2)})
            ready.set_result(seconds or 0.0)

    def run() -> None:
        from engine.ilp_parse import warm_up

        try:
            seconds = warm_up()
        except Exception as exc:  # noqa: BLE001 - reported by the future and the log
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, seconds, None)

    threading.Thread(target=run, name="warm-ilp-parser", daemon=True).start()
    return ready


domain = Domain(
    name="timeseries",
    service=TimeseriesService,
    jobs=(QUESTDB_IMPORT,),
    query=gql.Query,
    mutation=gql.Mutation,
    start=start,
)
