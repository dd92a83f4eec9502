"""ORCA's Data Upload API (seed 002): ``POST /api/upload-tick-data`` reads its multipart form,
has :mod:`hub.marketdata.upload` check the file whole, and answers with Server-Sent Events as
the seed shows them, one ``data:`` line a frame: ``started``, a ``progress`` per stored batch
(``uploaded`` and ``skipped`` are running totals), then ``completed``.

Refusals come before the stream, as ORCA's ``{"detail", "status_code"}``: 401, 403 (a caller
who may not write market data), 413 (past :data:`MAX_BODY_BYTES` as the body streams in, or a
file past 300 MiB) and 422 (a bad field, a path outside the uploads folder, a malformed row).
Once the stream has started, a failure ends it with ``completed`` and ``success: false``, an
``error`` saying why; the batches stored before it stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, BinaryIO, Literal

import orjson
from pydantic import BaseModel, Field
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from hub.auth import Identity
from hub.errors import BadRequest, HubError
from hub.http import require_identity
from hub.marketdata.service import MarketDataService
from hub.marketdata.upload import (
    MAX_FILE_BYTES,
    authorize_upload,
    count_ticks,
    instrument_of,
    open_in_uploads,
    store_file,
    too_large,
)
from hub.openapi import describe
from hub.topics import SYMBOL
from rest.errors import ORCA
from rest.orca import Unprocessable
from rest.orca_bots import bounded

log = logging.getLogger("tradehub.upload")

PATH = "/api/upload-tick-data"
MAX_BODY_BYTES = MAX_FILE_BYTES + (1 << 20)  # the file, the fields and multipart's framing
_MAX_FIELD_BYTES = 8 << 10
_MAX_FIELDS = 16
_MAX_PATH = 1024
_MAX_TARGET = 64


class TickUploadForm(BaseModel):
    """The tick upload's form (multipart/form-data): ``file`` or ``file_path``, not both."""

    file: bytes = Field(
        b"",
        description="a CSV/TXT of ticks (at most 300 MiB): timestamp, price, volume (header "
        "names in any case; last and size as aliases; bid and ask optional), comma or "
        "semicolon separated; times ISO 8601, epoch s/ms/us/ns or yyyyMMdd HHmmss fffffff",
    )
    file_path: str = Field(
        "",
        max_length=_MAX_PATH,
        description="instead of file: a file in the hub's uploads folder (<data>/uploads), "
        "relative to it",
    )
    instrument: str = Field(
        pattern=f"^{SYMBOL}$",
        examples=["ES", "NQ"],
        description="one of the hub's tick instruments (TRADEHUB_TICK_INSTRUMENTS: ES, NQ)",
    )
    has_header: bool = Field(True, description="whether the first row names the columns")
    skip_duplicates: bool = Field(
        True,
        description="leave out a tick with the time, price and volume of one already stored "
        "or earlier in the file",
    )
    supabase_target: str = Field(
        "selfhosted",
        max_length=_MAX_TARGET,
        description="accepted for ORCA's clients and ignored: ticks go to the hub's store",
    )


class TickUploadEvent(BaseModel):
    """One Server-Sent Event of the upload: a ``data:`` line holding this object."""

    status: Literal["started", "progress", "completed"]
    message: str | None = Field(None, description="started: Upload started")
    batch: int | None = Field(None, description="progress: the batch just stored, from 1")
    uploaded: int | None = Field(None, description="progress: ticks stored so far")
    skipped: int | None = Field(None, description="progress: duplicates skipped so far")
    success: bool | None = Field(None, description="completed: whether every batch was stored")
    total_rows: int | None = Field(None, description="completed: the file's ticks")
    uploaded_rows: int | None = None
    skipped_rows: int | None = None
    duration: str | None = Field(None, examples=["45.2s"])
    error: str | None = Field(None, description="completed without success: why")


def _flag(form: FormData, name: str, default: bool) -> bool:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    word = raw.lower() if isinstance(raw, str) else None
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    shown = raw[:40] if isinstance(raw, str) else "a file"
    raise Unprocessable(f"{name} must be true or false, got {shown!r}", field=name)


def _text(form: FormData, name: str, limit: int) -> str:
    raw = form.get(name)
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise Unprocessable(f"{name} must be a text field, not a file", field=name)
    if len(raw) > limit:
        raise Unprocessable(f"{name} must be at most {limit} characters", field=name)
    return raw


def _upload(form: FormData) -> UploadFile | None:
    """The form's file (an empty part without a file name, as a browser sends for no file, is
    no file)."""
    upload = form.get("file")
    if isinstance(upload, str):
        if upload:
            raise Unprocessable("file must be a file upload (a part with a filename)", field="file")
        return None
    if upload is not None and not upload.filename and not upload.size:
        return None
    return upload


def _source(request: Request, form: FormData) -> tuple[BinaryIO, bool]:
    """The file to read, and whether this route opened it (and closes it)."""
    upload = _upload(form)
    file_path = _text(form, "file_path", _MAX_PATH)
    if upload is not None and file_path:
        raise Unprocessable("send either file or file_path, not both", field="file")
    if upload is not None:
        if upload.size is not None and upload.size > MAX_FILE_BYTES:
            raise too_large(upload.size)
        return upload.file, False
    if not file_path:
        raise Unprocessable("either file or file_path is required", field="file")
    return open_in_uploads(request.state.settings, file_path), True


def _frame(event: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(event) + b"\n\n"


@describe(
    ORCA,
    answers={200: TickUploadEvent},
    media={200: "text/event-stream"},
    errors=[403, 422],
    form=TickUploadForm,
)
async def upload_tick_data(request: Request) -> Response:
    """Upload a CSV of one instrument's ticks, answered as Server-Sent Events.

    For an admin or an API key with the marketdata:write scope (403 otherwise). The file is
    checked whole before anything is stored (a malformed row is a 422 naming it), then stored
    100,000 ticks a batch: data frames started, progress (batch, uploaded, skipped) per batch,
    completed (success, total_rows, uploaded_rows, skipped_rows, duration). 413 past 300 MiB."""
    started = time.perf_counter()
    identity = require_identity(request)
    service: MarketDataService = request.state.marketdata
    authorize_upload(identity)
    form = await bounded(request, MAX_BODY_BYTES).form(
        max_files=1, max_fields=_MAX_FIELDS, max_part_size=_MAX_FIELD_BYTES
    )
    file: BinaryIO | None = None
    owned = False
    try:
        instrument = instrument_of(request.state.settings, _text(form, "instrument", 64))
        has_header = _flag(form, "has_header", True)
        skip_duplicates = _flag(form, "skip_duplicates", True)
        _text(form, "supabase_target", _MAX_TARGET)  # ORCA's Supabase target: nothing here
        file, owned = _source(request, form)
        total = await count_ticks(file, has_header=has_header)
    except BaseException as exc:
        if owned and file is not None:
            file.close()
        await form.close()
        if isinstance(exc, BadRequest):  # ORCA answers every validation failure with a 422
            raise Unprocessable(exc.message, field=exc.field) from None
        raise
    events = _events(
        service,
        identity,
        instrument,
        file,
        has_header=has_header,
        skip_duplicates=skip_duplicates,
        total=total,
        started=started,
    )

    async def close() -> None:
        if owned:
            file.close()
        await form.close()

    return EventStream(events, close)


class EventStream(Response):
    """The upload's events as Server-Sent Events, a frame per ASGI message. A client that goes
    away is noticed (``http.disconnect``) without cancelling anything: the batch being stored
    is committed, and no further one is read. ``close`` runs at the end either way."""

    media_type = "text/event-stream"

    def __init__(
        self, events: AsyncGenerator[dict[str, Any], None], close: Callable[[], Awaitable[None]]
    ) -> None:
        self.events = events
        self.close = close
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            start = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            await send(start)
            async for event in self.events:
                await send({"type": "http.response.body", "body": _frame(event), "more_body": True})
                if gone.is_set():
                    return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # ASGI 2.4 servers raise on a send to a client that went away
            return
        finally:
            watcher.cancel()
            await self.events.aclose()
            await self.close()


async def _events(
    service: MarketDataService,
    identity: Identity,
    instrument: str,
    file: BinaryIO,
    *,
    has_header: bool,
    skip_duplicates: bool,
    total: int,
    started: float,
) -> AsyncGenerator[dict[str, Any], None]:
    yield {"status": "started", "message": "Upload started"}
    uploaded = skipped = done = 0
    error: str | None = None
    batches = store_file(
        service,
        identity,
        instrument,
        file,
        has_header=has_header,
        skip_duplicates=skip_duplicates,
    )
    try:
        async with contextlib.aclosing(batches):
            async for stored in batches:
                uploaded += stored.stored
                skipped += stored.skipped
                done = stored.batch
                yield {
                    "status": "progress",
                    "batch": stored.batch,
                    "uploaded": uploaded,
                    "skipped": skipped,
                }
    except HubError as exc:
        error = exc.message
    except Exception as exc:
        log.exception("tick upload failed", extra={"instrument": instrument, "batch": done + 1})
        error = (
            f"batch {done + 1} could not be stored ({type(exc).__name__}); the batches before "
            "it are; upload the file again with skip_duplicates=true to store the rest"
        )
    completed: dict[str, Any] = {
        "status": "completed",
        "success": error is None,
        "total_rows": total,
        "uploaded_rows": uploaded,
        "skipped_rows": skipped,
        "duration": f"{time.perf_counter() - started:.1f}s",
    }
    if error is not None:
        completed["error"] = error
    yield completed


def routes() -> list[BaseRoute]:
    return [Route(PATH, ORCA.endpoint(upload_tick_data), methods=["POST"])]
