"""ORCA's tick upload (seed 002): a CSV of one instrument's past ticks, from the request or from
the uploads folder, checked whole, then stored batch by batch beside the ingested ticks.

- The instrument is one of ``TRADEHUB_TICK_INSTRUMENTS`` (any case; stored under the configured
  spelling), and its ticks go to the symbol's partition of ``ts.ticks``, as
  :meth:`MarketDataService.ingest` stores them, but are not published: they are history.
- A file named by path is opened only inside ``<data>/uploads`` once every ``..`` and symbolic
  link is resolved, and holds at most :data:`MAX_FILE_BYTES`, as an uploaded one.
- :func:`count_ticks` reads the whole file first, so that a malformed row is refused before
  anything is stored; :func:`store_file` then reads it again, :data:`BATCH_ROWS` ticks at a
  time, each batch in its own transaction (the next batch parsed while one is stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from hub.auth import Identity, Scope
from hub.errors import BadRequest, Forbidden, PayloadTooLarge
from hub.marketdata.tickcsv import TickRows, read_tick_batches
from hub.marketdata.ticks import Ticks

if TYPE_CHECKING:
    from hub.marketdata.service import MarketDataService
    from hub.settings import Settings

BATCH_ROWS = 100_000
MAX_FILE_BYTES = 300 << 20  # 300 MiB: ORCA's "max 300MB"


@dataclass(frozen=True)
class BatchStored:
    batch: int  # 1, 2, ...
    stored: int
    skipped: int


def authorize_upload(identity: Identity) -> None:
    """403 unless ``identity`` may write market data (an admin, or a key granted
    ``marketdata:write``, as for the ticks route): stored ticks are every user's history."""
    if not identity.may(Scope.MARKETDATA_WRITE):
        raise Forbidden(
            f"uploading ticks needs an admin or an API key with the "
            f"{Scope.MARKETDATA_WRITE.value!r} scope"
        )


def uploads_folder(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def instrument_of(settings: Settings, name: str) -> str:
    """The configured instrument ``name`` names (in any case); BadRequest otherwise."""
    wanted = name.strip().upper()
    for known in settings.tick_instruments:
        if known.upper() == wanted:
            return known
    raise BadRequest(
        f"instrument must be one of {', '.join(settings.tick_instruments)}, got {name[:64]!r}",
        field="instrument",
    )


def open_in_uploads(settings: Settings, file_path: str) -> BinaryIO:
    """The file ``file_path`` names inside the uploads folder, open for reading: relative to
    the folder (or absolute, inside it), every ``..`` and symbolic link resolved before the
    check, the last component opened without following a link. BadRequest for a path that
    leads outside or to no regular file, PayloadTooLarge past :data:`MAX_FILE_BYTES`."""
    outside = BadRequest(
        f"file_path must name a file inside the uploads folder, got {file_path[:200]!r}",
        field="file_path",
    )
    if "\x00" in file_path:
        raise outside
    try:
        root = uploads_folder(settings).resolve(strict=True)
        target = (root / file_path).resolve()
    except FileNotFoundError:
        raise BadRequest(
            "file_path: the hub has no uploads folder; upload the file instead",
            field="file_path",
        ) from None
    except (OSError, RuntimeError):  # a loop of links, a name too long
        raise outside from None
    if target == root or not target.is_relative_to(root):
        raise outside
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise BadRequest(
            f"file_path: no readable file {file_path[:200]!r} in the uploads folder",
            field="file_path",
        ) from None
    handle = os.fdopen(fd, "rb")
    opened = Path(f"/proc/self/fd/{fd}")  # where the file opened really is (Linux)
    if opened.is_symlink() and not Path(os.readlink(opened)).is_relative_to(root):
        handle.close()  # a folder on the way was swapped for a link since the check
        raise outside
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        handle.close()
        raise BadRequest(f"file_path: {file_path[:200]!r} is not a regular file", field="file_path")
    if info.st_size > MAX_FILE_BYTES:
        handle.close()
        raise too_large(info.st_size)
    return handle


def too_large(size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file is {size} bytes, more than the limit of {MAX_FILE_BYTES}", field="file"
    )


async def count_ticks(file: BinaryIO, *, has_header: bool) -> int:
    """How many ticks the file holds, every row checked; BadRequest naming the first bad one."""

    def count() -> int:
        file.seek(0)
        batches = read_tick_batches(file, has_header=has_header, batch_rows=BATCH_ROWS)
        return sum(len(rows) for rows in batches)

    return await asyncio.to_thread(count)


async def store_file(
    service: MarketDataService,
    identity: Identity,
    instrument: str,
    file: BinaryIO,
    *,
    has_header: bool,
    skip_duplicates: bool,
) -> AsyncGenerator[BatchStored, None]:
    """Store the file's ticks as ``instrument``'s, a batch at a time, saying each when it is
    committed; the next batch is parsed while one is stored. A failure stops at the batch it
    hits, and the batches before it stay stored. A batch once begun is stored whole, even when
    the caller is cancelled; closing the generator between batches stores no more."""
    file.seek(0)
    batches = read_tick_batches(file, has_header=has_header, batch_rows=BATCH_ROWS)

    def parse() -> asyncio.Task[TickRows | None]:
        return asyncio.create_task(asyncio.to_thread(next, batches, None))

    ahead = parse()
    try:
        number = 0
        while (rows := await asyncio.shield(ahead)) is not None:
            ahead = parse()
            number += 1
            ticks = Ticks(
                [instrument] * len(rows), rows.ts_ns, rows.price, rows.volume, rows.bid, rows.ask
            )
            stored, skipped = await asyncio.shield(
                service.store_history(identity, ticks, skip_duplicates=skip_duplicates)
            )
            yield BatchStored(number, stored, skipped)
    finally:
        # The parser's thread cannot be interrupted: let it finish before the file closes.
        await asyncio.wait([ahead])
        if not ahead.cancelled():
            with contextlib.suppress(Exception):
                ahead.result()
