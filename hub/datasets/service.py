"""Decisions about datasets: naming, creation, who may overwrite what, and reading bars back."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.datasets import barcopy
from hub.datasets import repository as repo
from hub.datasets.barcopy import BarsSink
from hub.datasets.cache import BarsCache
from hub.datasets.catalogue import repository as catalogue
from hub.datasets.model import EMPTY, DatasetSpec, MeasurementStats
from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Conflict, Forbidden, NotFound

if TYPE_CHECKING:
    from hub.domains import Resources

MAX_CANDLES = 100_000
PARALLEL_READ_BARS = 200_000


def slug_for(symbol: str, timeframe: str) -> str:
    """A readable name that still tells apart symbols differing only in punctuation or case
    (``BTC/USD`` and ``BTC-USD`` are different series): a short hash of the exact symbol."""
    base = re.sub(r"[^a-z0-9]+", "_", symbol.lower()).strip("_")[:40] or "series"
    digest = hashlib.sha1(symbol.encode()).hexdigest()[:6]
    return f"{base}_{timeframe.lower()}_{digest}"


def measurement_for(symbol: str, timeframe: str) -> str:
    slug = slug_for(symbol, timeframe)
    name = slug if slug[0].isalpha() else f"s_{slug}"
    return f"{name}_ohlcv"[:63]


Window = tuple[int | None, int | None, int, tuple[int, int | None] | None]


def read_windows(
    dataset: asyncpg.Record, start_ns: int | None, end_ns: int | None, pages: int
) -> list[Window]:
    """How to read ``[start, end)`` (of a table of ``pages`` pages): one COPY, or two at once
    when it holds many bars, since Postgres formats a COPY's rows on one core. Two halves of
    the table's pages when the window holds most of it (a sequential scan each: no index to
    walk, rows in stored order), else two halves of the window. Each with about how many bars
    it holds, and its pages (first, end) when read by page."""
    first_us, last_us, count = (
        dataset["ohlcv_first_ts"],
        dataset["ohlcv_last_ts"],
        int(dataset["ohlcv_row_count"] or 0),
    )
    if first_us is None or last_us is None:
        return [(start_ns, end_ns, 0, None)]
    low = max(first_us * 1000, start_ns if start_ns is not None else first_us * 1000)
    high = min(last_us * 1000, end_ns if end_ns is not None else last_us * 1000)
    span = max(1, (last_us - first_us) * 1000)
    expected = max(0, count * (high - low) // span + 1)
    middle = (low + high) // 2 // 1_000_000_000 * 1_000_000_000
    if expected < PARALLEL_READ_BARS or not low < middle < high:
        return [(start_ns, end_ns, expected, None)]
    half = expected // 2 + 1
    if 2 * expected >= count and pages >= 2:
        return [
            (start_ns, end_ns, half, (0, pages // 2)),
            (start_ns, end_ns, half, (pages // 2, None)),
        ]
    return [(start_ns, middle, half, None), (middle, end_ns, half, None)]


def in_time_order(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Bars read in stored order, sorted by time (they usually are: a series is appended in
    order, and times are unique)."""
    ts = bars["ts"]
    if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
        return bars
    order = np.argsort(ts, kind="stable")
    return {k: v[order] for k, v in bars.items()}


class DatasetService:
    def __init__(self, resources: Resources) -> None:
        self.pool: asyncpg.Pool = resources.pool
        # Bars a worker loaded recently: sweeps and repeated backtests read Postgres once.
        self.cache = BarsCache()

    # -- reading ----------------------------------------------------------------------

    async def get(self, dataset_id: str) -> asyncpg.Record:
        """The dataset ``dataset_id``, when it has bars; else a 404."""
        try:
            uuid.UUID(str(dataset_id))
        except ValueError:
            raise NotFound(f"no dataset {dataset_id!r}", field="dataset_id") from None
        dataset = await repo.get(self.pool, str(dataset_id))
        if dataset is None or not dataset["ohlcv_measurement"]:
            raise NotFound(f"no dataset {dataset_id!r}", field="dataset_id")
        return dataset

    async def stored(self, dataset_id: str) -> asyncpg.Record:
        """The dataset ``dataset_id``, whatever measurements it names; else a 404."""
        try:
            key = str(uuid.UUID(str(dataset_id)))
        except ValueError:
            raise NotFound(f"no dataset {dataset_id!r}", field="dataset_id") from None
        dataset = await repo.get(self.pool, key)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}", field="dataset_id")
        return dataset

    async def find(self, symbol: str, timeframe: str) -> asyncpg.Record | None:
        """The OHLCV dataset of ``symbol`` at ``timeframe``, if it has bars."""
        dataset = await repo.get_by_symbol(self.pool, symbol, timeframe)
        if dataset is None or not dataset["ohlcv_measurement"]:
            return None
        return dataset

    async def symbols(self, timeframe: str | None = None) -> list[str]:
        """Every symbol with OHLCV data (at ``timeframe``, when given)."""
        return await repo.symbols(self.pool, timeframe)

    async def check_bars(
        self, dataset: asyncpg.Record, columns: tuple[str, ...], field: str = "dataset_id"
    ) -> None:
        """A 400 (naming ``field``) when the dataset's measurement cannot give ``columns``."""
        try:
            await repo.bar_source(self.pool, dataset["ohlcv_measurement"], columns)
        except repo.BarLayoutError as exc:
            raise BadRequest(f"dataset {dataset['dataset_id']}: {exc}", field=field) from None

    async def count_bars(
        self, dataset: asyncpg.Record, start_ns: int | None, end_ns: int | None
    ) -> int:
        """Bars in ``[start, end)``; for a window holding every bar, the count the dataset keeps
        (refreshed when a series is written) rather than counting a million rows again."""
        first_us, last_us = dataset["ohlcv_first_ts"], dataset["ohlcv_last_ts"]
        if (
            first_us is not None
            and last_us is not None
            # a microsecond clear of the ends, beyond float8 rounding in to_timestamp
            and (start_ns is None or start_ns < (first_us - 1) * 1000)
            and (end_ns is None or end_ns > (last_us + 1) * 1000)
        ):
            return int(dataset["ohlcv_row_count"])
        return await repo.count_bars(self.pool, dataset["ohlcv_measurement"], start_ns, end_ns)

    async def bars(
        self,
        dataset: asyncpg.Record,
        start_ns: int | None,
        end_ns: int | None,
        columns: tuple[str, ...] = barcopy.COLUMNS,
    ) -> dict[str, np.ndarray]:
        """The dataset's bars in the window (``ts`` and ``columns``), shared through the cache
        (keyed by the dataset's last change, so a regenerated dataset is read again) as
        read-only views. The caller that read them from Postgres gets the arrays themselves:
        they are fresh, and the engine copies read-only input (numba compiles apart for it),
        which on a new worker's fresh memory costs 50-100 ms a million bars. It must not
        change them (the engine never writes its input)."""
        key = (
            dataset["dataset_id"],
            dataset["updated_at"],
            dataset["ohlcv_row_count"],
            start_ns,
            end_ns,
            columns,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pages = 0
        if int(dataset["ohlcv_row_count"] or 0) >= PARALLEL_READ_BARS:
            pages = await repo.table_pages(self.pool, dataset["ohlcv_measurement"])
        windows = read_windows(dataset, start_ns, end_ns, pages)
        if len(windows) == 1:
            start, end, expected, _ = windows[0]
            sink = BarsSink(columns=columns, expected=expected)
            bars = await self._read(dataset, start, end, None, sink)
        else:
            bars = await self._read_halves(dataset, windows, columns)
        if any(window[3] is not None for window in windows):
            bars = in_time_order(bars)
        shared = {}
        for name, array in bars.items():
            shared[name] = view = array.view()
            view.flags.writeable = False  # shared by later runs: nobody may change it
        self.cache.put(key, shared)
        return bars

    async def _read_halves(
        self, dataset: asyncpg.Record, windows: list[Window], columns: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Two reads at once, in one snapshot (as if one read: a series written meanwhile
        is seen whole or not at all, and no row is in both halves), into two regions of the
        same arrays (a little larger than each expects), then made one run."""
        (start0, end0, expected0, pages0), (start1, end1, expected1, pages1) = windows
        room0 = expected0 + expected0 // 50 + 1024
        room1 = expected1 + expected1 // 50 + 1024
        arrays = barcopy.allocate(room0 + room1, columns)
        sinks = (
            BarsSink(columns=columns, into=arrays, start=0, room=room0),
            BarsSink(columns=columns, into=arrays, start=room0, room=room1),
        )
        measurement = dataset["ohlcv_measurement"]
        async with (
            self.pool.acquire() as one,
            self.pool.acquire() as other,
            one.transaction(isolation="repeatable_read", readonly=True),
            other.transaction(isolation="repeatable_read", readonly=True),
        ):
            await repo.share_snapshot(one, other)
            first, second = await asyncio.gather(
                repo.read_bars(one, measurement, start0, end0, None, pages=pages0, sink=sinks[0]),
                repo.read_bars(other, measurement, start1, end1, None, pages=pages1, sink=sinks[1]),
            )
        if sinks[0].own or sinks[1].own:  # more bars than expected: joined the slow way
            return {c: np.concatenate([first[c], second[c]]) for c in columns}
        return barcopy.close_gap(arrays, len(first["ts"]), room0, len(second["ts"]))

    async def _read(
        self,
        dataset: asyncpg.Record,
        start_ns: int | None,
        end_ns: int | None,
        pages: tuple[int, int | None] | None,
        sink: BarsSink,
    ) -> dict[str, np.ndarray]:
        async with self.pool.acquire() as conn:
            return await repo.read_bars(
                conn, dataset["ohlcv_measurement"], start_ns, end_ns, None, pages=pages, sink=sink
            )

    async def candles(
        self,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None,
        end_ns: int | None,
        limit: int,
    ) -> dict[str, np.ndarray]:
        if limit < 1 or limit > MAX_CANDLES:
            raise BadRequest(
                f"limit must be between 1 and {MAX_CANDLES}, got {limit}", field="limit"
            )
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise BadRequest("end must be after start", field="end")
        dataset = await self.find(symbol, timeframe)
        if dataset is None:
            raise NotFound(f"no {timeframe} dataset for {symbol!r}")
        async with self.pool.acquire() as conn:
            return await repo.read_bars(conn, dataset["ohlcv_measurement"], start_ns, end_ns, limit)

    # -- writing ----------------------------------------------------------------------

    async def check_overwrite(self, identity: Identity, symbol: str, timeframe: str) -> None:
        """Only a dataset's creator (or an admin) may regenerate it."""
        existing = await repo.get_by_symbol(self.pool, symbol, timeframe)
        if existing is None or identity.is_admin:
            return
        owner = existing["created_by"]
        if owner is None or str(owner) != identity.user_id:
            raise Forbidden(
                f"the {timeframe} dataset {symbol!r} belongs to another user; choose another symbol"
            )

    async def prepare_series(
        self,
        symbol: str,
        timeframe: str,
        start_ns: int,
        end_ns: int,
        *,
        source: str,
        created_by: str | None,
        metadata: dict[str, Any] | None = None,
    ) -> asyncpg.Record:
        """The dataset (created if missing) and its table, emptied between ``start_ns`` and
        ``end_ns`` so that a series written there again (a re-run) starts clean."""
        timeframe_ns(timeframe)  # validates
        async with self.pool.acquire() as conn, conn.transaction():
            dataset = await repo.upsert_dataset(
                conn,
                {
                    "dataset_slug": slug_for(symbol, timeframe),
                    "symbol": symbol,
                    "granularity": timeframe,
                    "source": source,
                    "ohlcv_measurement": measurement_for(symbol, timeframe),
                    "metadata": metadata or {},
                },
                created_by,
            )
            await repo.ensure_ohlcv_table(conn, dataset["ohlcv_measurement"])
            await repo.delete_range(conn, dataset["ohlcv_measurement"], start_ns, end_ns)
        return dataset

    async def append_bars(self, dataset: asyncpg.Record, bars: dict[str, np.ndarray]) -> None:
        """One chunk of bars, in one transaction (binary COPY)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.copy_bars(conn, dataset["ohlcv_measurement"], bars)

    async def discard(self, dataset: asyncpg.Record, start_ns: int, end_ns: int) -> None:
        """Take back a series a cancelled or failed run wrote, so no half series remains."""
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.delete_range(conn, dataset["ohlcv_measurement"], start_ns, end_ns)
            await repo.refresh_stats(conn, dataset["dataset_id"], dataset["ohlcv_measurement"])

    async def refresh_stats(self, dataset: asyncpg.Record) -> asyncpg.Record:
        """Row count and first/last times, recomputed from the bars."""
        async with self.pool.acquire() as conn:
            return await repo.refresh_stats(
                conn, dataset["dataset_id"], dataset["ohlcv_measurement"]
            )

    # -- the catalogue: Stage1's datasets -----------------------------------------------

    async def catalogue(self, limit: int, offset: int) -> list[asyncpg.Record]:
        """Every dataset, newest first, with its measurements' stats counted now."""
        return await self.with_stats(await catalogue.list_datasets(self.pool, limit, offset))

    async def describe(self, dataset_id: str) -> asyncpg.Record:
        """One dataset with its measurements' stats counted now (404 when unknown)."""
        return (await self.with_stats([await self.stored(dataset_id)]))[0]

    async def with_stats(self, rows: list[asyncpg.Record]) -> list[asyncpg.Record]:
        """``rows`` with the row counts and first and last times of the measurements they name,
        counted now (the measurements may be written by anything: an import, a generator,
        line protocol). Stats that changed are kept with the dataset, which also tells the
        bars cache that its bars changed."""
        names = [
            name
            for row in rows
            for name in (row["ohlcv_measurement"], row["indicator_measurement"])
            if name
        ]
        stats = await catalogue.measurement_stats(self.pool, names)
        out = []
        for row in rows:
            ohlcv = stats.get(row["ohlcv_measurement"] or "", EMPTY)
            indicator = stats.get(row["indicator_measurement"] or "", EMPTY)
            if MeasurementStats.kept(row, "ohlcv") != ohlcv or (
                MeasurementStats.kept(row, "indicator") != indicator
            ):
                updated = await catalogue.store_stats(
                    self.pool, row["dataset_id"], ohlcv, indicator
                )
                row = updated if updated is not None else row  # removed or changed meanwhile
            out.append(row)
        return out

    async def save(self, identity: Identity, spec: DatasetSpec) -> tuple[asyncpg.Record, bool]:
        """Create the dataset, or update the stored one with ``spec.dataset_id`` (its creator
        or an admin); True when created. The slug, and the symbol at its granularity, are
        unique (409 naming the dataset holding them)."""
        given = spec.given()
        dataset_id = str(spec.dataset_id or uuid.uuid4())
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await catalogue.lock_dataset(conn, dataset_id)
            if existing is None:
                for name in ("symbol", "granularity"):
                    if name not in given:
                        raise BadRequest(f"{name} is required to create a dataset", field=name)
                values = {"dataset_slug": slug_for(given["symbol"], given["granularity"])}
                values.update(given)
            else:
                owner = existing["created_by"]
                if not identity.is_admin and (owner is None or str(owner) != identity.user_id):
                    raise Forbidden(
                        f"dataset {dataset_id} belongs to another user; only its creator or "
                        "an admin may change it"
                    )
                values = {name: given.get(name, existing[name]) for name in catalogue.EDITABLE}
            clash = await catalogue.clashing(
                conn, dataset_id, values["dataset_slug"], values["symbol"], values["granularity"]
            )
            if clash is not None:
                raise Conflict(_clash_message(clash, values), field="dataset_slug")
            try:
                if existing is None:
                    row = await catalogue.insert_dataset(conn, dataset_id, values, identity.user_id)
                else:
                    row = await catalogue.update_dataset(conn, dataset_id, values)
            except asyncpg.UniqueViolationError:  # a concurrent save took the name first
                raise Conflict(
                    f"another dataset took slug {values['dataset_slug']!r} or "
                    f"{values['symbol']!r} at {values['granularity']} meanwhile",
                    field="dataset_slug",
                ) from None
        return (await self.with_stats([row]))[0], existing is None


def _clash_message(clash: asyncpg.Record, values: dict[str, Any]) -> str:
    if clash["dataset_slug"] == values["dataset_slug"]:
        return f"dataset {clash['dataset_id']} already has the slug {values['dataset_slug']!r}"
    return (
        f"dataset {clash['dataset_id']} already holds {values['symbol']!r} at "
        f"{values['granularity']}"
    )
