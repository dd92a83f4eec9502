"""SQL for a ticker's datasets across its timeframes, for research's ticker health route."""

from __future__ import annotations

import asyncpg

from hub.db import Conn


async def ticker_series(conn: Conn, ticker: str) -> list[asyncpg.Record]:
    """The ticker's datasets with bars (one a timeframe), as the health route judges them."""
    return await conn.fetch(
        """select granularity, ohlcv_first_ts, ohlcv_last_ts, ohlcv_row_count from datasets
           where symbol = $1 and ohlcv_measurement is not null order by granularity""",
        ticker,
    )
