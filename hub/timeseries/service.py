"""Decisions about time series: who may import into which measurement, what an upload must
hold, and the read-only SQL every authenticated user may run over the ``ts`` schema."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import asyncpg

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from hub.timeseries import repository as repo
from hub.timeseries import store
from hub.timeseries.csvimport import TIMESTAMP, ImportFailed, timestamp_source
from hub.timeseries.sql import Export, ReadOnlySql, Rows, refusal
from hub.timeseries.upload import ImportBody, read_import_body

if TYPE_CHECKING:
    from hub.domains import Resources

IMPORT_JOB = "questdb_import"
UPLOAD_NAME = re.compile(r"^import_\d+_[0-9a-f]{8}\.csv$")
MAX_COLUMNS = 1000
ORPHAN_SECONDS = 86_400.0


class TimeseriesService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool: asyncpg.Pool = resources.pool
        settings = resources.settings
        self.uploads: Path = settings.data_dir / "uploads"
        self.import_max_bytes = settings.import_max_bytes
        self.sql = ReadOnlySql(
            resources.pool,
            timeout=settings.sql_timeout,
            export_timeout=settings.sql_export_timeout,
            max_rows=settings.sql_max_rows,
            concurrency=max(1, settings.db_pool_max // 2),
        )
        # The line-protocol parser's kernels loading at start (a hub's ``start`` sets it).
        self.parser_ready: asyncio.Future[float] | None = None

    # -- reading ----------------------------------------------------------------------

    async def query(self, identity: Identity, sql: str) -> Rows:
        return await self.sql.rows(sql)

    async def export(self, identity: Identity, sql: str) -> Export:
        return await self.sql.export(sql)

    async def measurements(self, identity: Identity, prefix: str | None) -> list[str]:
        if prefix is not None and (len(prefix) > 63 or "\x00" in prefix):
            raise BadRequest("prefix must be at most 63 characters", field="prefix")
        return await repo.list_measurements(self.pool, prefix or None)

    async def measurement(self, identity: Identity, name: str) -> dict[str, Any]:
        """Stage1's measurement metadata: rows, first and last times (epoch microseconds)."""
        if not name or len(name) > 63 or "\x00" in name:
            raise NotFound(f"no measurement {name[:80]!r}")
        exists, column = await repo.timestamp_column(self.pool, name)
        if not exists:
            raise NotFound(f"no measurement {name!r}")
        async with self.sql.session(self.sql.timeout) as conn:
            try:
                row = await repo.measurement_stats(conn, name, column)
            except asyncpg.PostgresError as exc:
                raise refusal(exc, self.sql.timeout) from None
        return {
            "name": name,
            "row_count": int(row["row_count"]),
            "first_ts": row["first_ts"],
            "last_ts": row["last_ts"],
        }

    # -- importing --------------------------------------------------------------------

    async def import_stream(
        self, identity: Identity, chunks: AsyncIterator[bytes], declared: int | None
    ) -> asyncpg.Record:
        """Stage1's async import: the body streamed (its CSV to a file in the uploads folder),
        checked, and a ``questdb_import`` job created for it."""
        limit = self.import_max_bytes
        if declared is not None and declared > limit:
            raise PayloadTooLarge(
                f"request body is {declared} bytes, more than the import limit of {limit} "
                "(TRADEHUB_IMPORT_MAX_BYTES)"
            )
        path, handle = await asyncio.to_thread(self._new_upload)
        try:
            try:
                body = await read_import_body(chunks, handle.write, limit=limit)
            finally:
                await asyncio.to_thread(handle.close)
            return await self._start_import(identity, body, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    async def import_text(
        self, identity: Identity, measurement: str, data: str, filename: str | None
    ) -> asyncpg.Record:
        """The same, for a CSV given whole (GraphQL's ``importCsv``)."""
        data = data.removeprefix("\ufeff")  # a byte order mark is not part of the header
        encoded = data.encode()
        if len(encoded) > self.import_max_bytes:
            raise PayloadTooLarge(
                f"data is {len(encoded)} bytes, more than the import limit of "
                f"{self.import_max_bytes} (TRADEHUB_IMPORT_MAX_BYTES)"
            )
        if "\x00" in data:
            raise BadRequest("data contains a NUL character", field="data")
        header, _, _ = data.partition("\n")
        lines = data.count("\n") + (0 if data.endswith("\n") or not data else 1)
        body = ImportBody(
            values={"measurement": measurement, "filename": filename},
            has_data=True,
            data_bytes=len(encoded),
            lines=lines,
            ends_with_newline=True,
            header=header.rstrip("\r") if data else None,
        )
        path, handle = await asyncio.to_thread(self._new_upload)
        try:
            try:
                await asyncio.to_thread(handle.write, encoded)
            finally:
                await asyncio.to_thread(handle.close)
            return await self._start_import(identity, body, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def _new_upload(self) -> tuple[Path, BinaryIO]:
        """``uploads/import_{ns}_{random}.csv``, created (exclusively) for writing."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        path = self.uploads / f"import_{time.time_ns()}_{secrets.token_hex(4)}.csv"
        return path, path.open("xb")

    async def _start_import(self, identity: Identity, body: ImportBody, path: Path) -> Any:
        values = body.values
        measurement = values.get("measurement")
        if measurement is None or measurement == "":
            raise BadRequest("Missing 'measurement' parameter", field="measurement")
        if not isinstance(measurement, str):
            raise BadRequest("measurement must be a string", field="measurement")
        store.check_measurement(measurement)
        if not body.has_data or values.get("data", "") is None:
            raise BadRequest("Missing 'data' parameter", field="data")
        if "data" in values:
            raise BadRequest("data must be a string: the CSV, its first line the header")
        filename = values.get("filename")
        if filename is not None and (not isinstance(filename, str) or len(filename) > 255):
            raise BadRequest("filename must be a string of at most 255 characters")
        check_header(body.header)
        if body.rows < 1:
            raise BadRequest("data holds a header but no rows", field="data")
        payload = {
            "measurement": measurement,
            "file_path": str(path),
            "filename": filename,
            "rows": body.rows,
        }
        return await self.resources.jobs.create(identity, IMPORT_JOB, payload)

    async def check_import(self, identity: Identity, measurement: str, file_path: str) -> None:
        """Before the job is written: the file is one of our uploads, and the caller may write
        the measurement (a new one; one of theirs; any generic one for an admin)."""
        self.upload_path(file_path)
        exists, registered, owner = await store.owner(self.pool, measurement)
        if exists and not registered:
            raise BadRequest(
                f"ts.{measurement} belongs to another part of the hub (a dataset's bars, ticks "
                "or bars from ticks), not to imports: choose another measurement name",
                field="measurement",
            )
        theirs = registered and owner is not None and owner != identity.user_id
        if theirs and not identity.is_admin:
            raise Forbidden(f"the measurement {measurement} belongs to another user")

    def upload_path(self, file_path: str) -> Path:
        """The upload ``file_path`` names, in this process's uploads folder: found by its name
        alone (a volume shared by hubs and workers may be mounted at different paths), and
        never anything else (a name that is not an upload's is a 400)."""
        name = Path(file_path).name
        if not UPLOAD_NAME.match(name):
            raise BadRequest("file_path must name an upload of this hub", field="file_path")
        return self.uploads / name

    async def sweep_uploads(self, older_than: float = ORPHAN_SECONDS) -> int:
        """Remove uploads no pending or running import names that are older than
        ``older_than`` seconds: what a hub that died mid-upload left. How many went."""
        wanted = {Path(p).name for p in await repo.active_uploads(self.pool, IMPORT_JOB)}
        cutoff = time.time() - older_than

        def sweep() -> int:
            if not self.uploads.is_dir():
                return 0
            gone = 0
            for path in self.uploads.iterdir():
                if UPLOAD_NAME.match(path.name) and path.name not in wanted:
                    with contextlib.suppress(FileNotFoundError):
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            gone += 1
            return gone

        return await asyncio.to_thread(sweep)

    def discard_upload(self, file_path: str) -> None:
        try:
            self.upload_path(file_path).unlink(missing_ok=True)
        except BadRequest:
            pass


def check_header(header: str | None) -> list[str]:
    """The CSV's column names, when the header line is one the import can take."""
    if not header:
        raise BadRequest("data must begin with a header line (the column names)", field="data")
    try:
        names = next(csv.reader([header]))
    except csv.Error as exc:  # a quoted header left open, a stray newline in a name...
        raise BadRequest(f"the CSV header line cannot be read: {exc}", field="data") from None
    if len(names) > MAX_COLUMNS:
        raise BadRequest(f"the CSV has {len(names)} columns; at most {MAX_COLUMNS}", field="data")
    seen: set[str] = set()
    for name in names:
        try:
            store.check_column_name(name)
        except store.MeasurementError as exc:
            raise BadRequest(f"the CSV header: {exc.message}", field="data") from None
        if name in seen:
            raise BadRequest(f"the CSV header names {name!r} twice", field="data")
        seen.add(name)
    try:
        source = timestamp_source(names)
    except ImportFailed:
        raise BadRequest(
            "data must contain a timestamp_unix or timestamp column", field="data"
        ) from None
    if TIMESTAMP in names and source != TIMESTAMP:
        raise BadRequest(f"the CSV has both {source} and timestamp columns: keep one", field="data")
    return names
