"""The market-data domain's own HTTP route: a batch of ticks in, ``{"accepted": n}`` out."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.http import JSONResponse, read_body, require_identity
from hub.marketdata.ticks import MAX_BODY_BYTES, TickBatch
from hub.openapi import describe
from rest.errors import HUB


class TicksAccepted(BaseModel):
    accepted: int = Field(description="ticks stored and published, all of the batch")


@describe(HUB, answers={200: TicksAccepted}, errors=[403], body=TickBatch, tag="marketdata")
async def ingest_ticks(request: Request) -> Response:
    """Store a batch of ticks and publish each on ticks:{symbol}.

    For an admin, or an API key granted the marketdata:write scope (403 otherwise). The whole
    batch is validated first: any bad tick is a 400 naming its index and field, and nothing is
    written. At most 10,000 ticks (400 beyond) and 4 MiB (413 beyond) a batch. Ticks are stored
    in one transaction, then published in the batch's order per symbol."""
    identity = require_identity(request)
    service = request.state.marketdata
    service.authorize_write(identity)
    body = await read_body(request, max_bytes=MAX_BODY_BYTES)
    accepted = await service.ingest(identity, body)
    return JSONResponse({"accepted": accepted})


def routes() -> list[BaseRoute]:
    return [Route("/api/v1/marketdata/ticks", HUB.endpoint(ingest_ticks), methods=["POST"])]
