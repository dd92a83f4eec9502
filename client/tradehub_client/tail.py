"""``tradehub tail CHANNEL [--since N]``: a channel's events as JSON lines on stdout, one per
event (``{"channel", "seq", ["epoch",] "data"}``, the ``/ws`` frame), resuming by itself when
the socket drops or the hub restarts."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from tradehub_client.aio import AsyncClient


async def tail(
    client: AsyncClient,
    channel: str,
    since: int | None = None,
    *,
    epoch: str | None = None,
    limit: int | None = None,
    out: TextIO | None = None,
) -> int:
    """Write ``channel``'s events to ``out`` until ``limit`` of them (None: until stopped);
    returns how many were written."""
    stream = out or sys.stdout
    written = 0
    if limit is not None and limit <= 0:
        return written
    events = client.subscribe(channel, since, epoch=epoch)
    try:
        async for event in events:
            line = json.dumps(event.model_dump(exclude_none=True), separators=(",", ":"))
            stream.write(line + "\n")
            stream.flush()
            written += 1
            if limit is not None and written >= limit:
                break
    finally:
        await events.aclose()
    return written
