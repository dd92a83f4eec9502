"""Decisions about datasets: naming, creation, who may overwrite what, and reading bars back."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.datasets import repository as repo
from hub.datasets.cache import BarsCache
from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Forbidden, NotFound

if TYPE_CHECKING:
    from hub.domains import Resources

MAX_CANDLES = 100_000


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


class DatasetService:
    def __init__(self, resources: Resources) -> None:
        self.pool: asyncpg.Pool = resources.pool
        # Bars a worker loaded recently: sweeps and repeated backtests read Postgres once.
        self.cache = BarsCache()

    # -- reading ----------------------------------------------------------------------

    async def find(self, symbol: str, timeframe: str) -> asyncpg.Record | None:
        """The OHLCV dataset of ``symbol`` at ``timeframe``, if it has bars."""
        dataset = await repo.get_by_symbol(self.pool, symbol, timeframe)
        if dataset is None or not dataset["ohlcv_measurement"]:
            return None
        return dataset

    async def symbols(self, timeframe: str | None = None) -> list[str]:
        """Every symbol with OHLCV data (at ``timeframe``, when given)."""
        return await repo.symbols(self.pool, timeframe)

    async def count_bars(
        self, dataset: asyncpg.Record, start_ns: int | None, end_ns: int | None
    ) -> int:
        return await repo.count_bars(self.pool, dataset["ohlcv_measurement"], start_ns, end_ns)

    async def bars(
        self, dataset: asyncpg.Record, start_ns: int | None, end_ns: int | None
    ) -> dict[str, np.ndarray]:
        """The dataset's bars in the window, as read-only arrays shared through the cache
        (keyed by the dataset's last change, so a regenerated dataset is read again)."""
        key = (
            dataset["dataset_id"],
            dataset["updated_at"],
            dataset["ohlcv_row_count"],
            start_ns,
            end_ns,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        async with self.pool.acquire() as conn:
            bars = await repo.read_bars(conn, dataset["ohlcv_measurement"], start_ns, end_ns, None)
        for array in bars.values():
            array.flags.writeable = False  # shared by later runs: nobody may change it
        self.cache.put(key, bars)
        return bars

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
