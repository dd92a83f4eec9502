"""Time series: the ``ts`` schema's generic measurements (written by CSV imports, and by any
caller of :mod:`hub.timeseries.store`), and read-only SQL over the whole schema."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.timeseries import gql
from hub.timeseries.jobs import QUESTDB_IMPORT
from hub.timeseries.service import TimeseriesService

if TYPE_CHECKING:
    from hub.domains import Resources

log = logging.getLogger("tradehub.timeseries")


async def start(resources: Resources) -> None:
    """A hub starting removes the partial uploads a hub that died mid-upload left."""
    if resources.role != "hub":
        return
    service: TimeseriesService = resources.service("timeseries")
    try:
        swept = await service.sweep_uploads()
    except OSError as exc:
        log.warning("could not sweep the uploads folder", extra={"error": str(exc)})
        return
    if swept:
        log.info("removed orphaned uploads", extra={"files": swept})


domain = Domain(
    name="timeseries",
    service=TimeseriesService,
    jobs=(QUESTDB_IMPORT,),
    query=gql.Query,
    mutation=gql.Mutation,
    start=start,
)
