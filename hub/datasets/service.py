"""Decisions about datasets: naming, creation, and reading bars back."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.datasets import repository as repo
from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Forbidden, NotFound

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


async def check_overwrite(
    pool: asyncpg.Pool, identity: Identity, symbol: str, timeframe: str
) -> None:
    """Only a dataset's creator (or an admin) may regenerate it."""
    existing = await repo.get_by_symbol(pool, symbol, timeframe)
    if existing is None or identity.is_admin:
        return
    owner = existing["created_by"]
    if owner is None or str(owner) != identity.user_id:
        raise Forbidden(
            f"the {timeframe} dataset {symbol!r} belongs to another user; choose another symbol"
        )


async def ensure_ohlcv_dataset(
    conn: asyncpg.Connection,
    symbol: str,
    timeframe: str,
    *,
    source: str,
    created_by: str | None,
    metadata: dict[str, Any] | None = None,
) -> asyncpg.Record:
    timeframe_ns(timeframe)  # validates
    measurement = measurement_for(symbol, timeframe)
    row = await repo.upsert_dataset(
        conn,
        {
            "dataset_slug": slug_for(symbol, timeframe),
            "symbol": symbol,
            "granularity": timeframe,
            "source": source,
            "ohlcv_measurement": measurement,
            "metadata": metadata or {},
        },
        created_by,
    )
    await repo.ensure_ohlcv_table(conn, row["ohlcv_measurement"])
    return row


async def candles(
    pool: asyncpg.Pool,
    symbol: str,
    timeframe: str,
    *,
    start_ns: int | None,
    end_ns: int | None,
    limit: int,
) -> dict[str, np.ndarray]:
    if limit < 1 or limit > MAX_CANDLES:
        raise BadRequest(f"limit must be between 1 and {MAX_CANDLES}, got {limit}", field="limit")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise BadRequest("end must be after start", field="end")
    dataset = await repo.get_by_symbol(pool, symbol, timeframe)
    if dataset is None or dataset["ohlcv_measurement"] is None:
        raise NotFound(f"no {timeframe} dataset for {symbol!r}")
    async with pool.acquire() as conn:
        return await repo.read_bars(conn, dataset["ohlcv_measurement"], start_ns, end_ns, limit)
