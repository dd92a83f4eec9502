"""SQL of signals: the models that emit them, their tickers' bars, cursors, signals, scores."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np

from hub.datasets.repository import table
from hub.db import Conn
from hub.times import datetime_of_ns, ns_of

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")

SIGNAL_COLUMNS = """s.signal_id, s.model_id, s.sequence, s.ticker, s.action, s.quantity, s.price,
    s.bar_ts, s.status, s.confidence, s.expected_return, s.realized_return, s.version_id,
    s.created_at, m.timeframe"""


async def emitting_models(conn: Conn) -> list[asyncpg.Record]:
    """Every active model with a trained version: its newest version, the matrix that version
    learned from (features, horizon), its ticker's dataset table, and its cursor."""
    return await conn.fetch(
        """
        select m.model_id, m.pack_id, m.ticker, m.timeframe, m.config, m.risk_profile,
               m.created_by, v.version_id, v.file_sha, v.feature_columns,
               mx.features as matrix_features, mx.horizon as matrix_horizon,
               d.ohlcv_measurement, c.version_id as cursor_version, c.last_bar_ts
        from research.models m
        join lateral (
            select * from research.model_versions v
            where v.model_id = m.model_id and v.status = 'completed' and v.file_sha is not null
            order by v.version desc limit 1
        ) v on true
        left join research.matrices mx
            on mx.model_id = m.model_id and mx.matrix_sha = v.matrix_sha
        left join datasets d on d.symbol = m.ticker and d.granularity = m.timeframe
        left join research.signal_cursors c on c.model_id = m.model_id
        where m.active
        order by m.model_id
        """
    )


async def forget_inactive(conn: Conn) -> None:
    """A model switched off loses its cursor: switched on again, it judges from then on, not
    the bars that closed while it was off."""
    await conn.execute(
        """delete from research.signal_cursors c using research.models m
           where m.model_id = c.model_id and not m.active"""
    )


async def newest_bars(conn: Conn, pairs: list[tuple[str | None, str, str]]) -> list[int | None]:
    """The start (ns) of the newest bar of each ``(dataset table, symbol, timeframe)``: its
    dataset's bars and the bars built from live ticks, whichever is newer. One round trip."""
    if not pairs:
        return []
    parts: list[str] = []
    args: list[Any] = []
    for measurement, symbol, timeframe in pairs:
        args += [symbol, timeframe]
        live = (
            f"(select max(ts) from ts.live_bars where symbol = ${len(args) - 1} "
            f"and timeframe = ${len(args)})"
        )
        stored = f"(select max(ts) from {table(measurement)})" if measurement else "null"
        parts.append(f"select {len(parts)} as i, greatest({live}, {stored}) as newest")
    rows = await conn.fetch(" union all ".join(parts) + " order by i", *args)
    return [ns_of(row["newest"]) if row["newest"] is not None else None for row in rows]


async def bars_around(
    conn: Conn,
    measurement: str | None,
    symbol: str,
    timeframe: str,
    cursor_ns: int,
    history: int,
    ahead: int,
) -> dict[str, np.ndarray]:
    """Up to ``history`` bars at or before ``cursor`` and the first ``ahead`` after it, in time
    order, from the live bars and the dataset (a dataset's bar wins where both have one)."""
    cursor = datetime_of_ns(cursor_ns)
    columns = ", ".join(BAR_COLUMNS)
    sources: list[tuple[str, list[Any]]] = [
        ("ts.live_bars where symbol = $3 and timeframe = $4 and", [symbol, timeframe])
    ]
    if measurement:
        sources.append((f"{table(measurement)} where", []))
    merged: dict[int, tuple[float, ...]] = {}
    for source, extra in sources:  # the dataset's last, so its bars overwrite
        earlier = await conn.fetch(
            f"select {columns} from {source} ts <= $1 order by ts desc limit $2",
            cursor,
            history,
            *extra,
        )
        later = await conn.fetch(
            f"select {columns} from {source} ts > $1 order by ts limit $2", cursor, ahead, *extra
        )
        for row in (*earlier, *later):
            merged[ns_of(row["ts"])] = tuple(row[c] for c in BAR_COLUMNS[1:])
    times = sorted(merged)
    before = [t for t in times if t <= cursor_ns][-history:] if history else []
    kept = before + [t for t in times if t > cursor_ns][:ahead]
    out = {"ts": np.array(kept, dtype=np.int64)}
    for k, name in enumerate(BAR_COLUMNS[1:]):
        out[name] = np.array([merged[t][k] for t in kept], dtype=np.float64)
    return out


async def start_cursor(conn: Conn, model_id: str, version_id: str, newest_ns: int) -> None:
    await conn.execute(
        """insert into research.signal_cursors (model_id, version_id, last_bar_ts)
           values ($1, $2, $3) on conflict (model_id) do nothing""",
        model_id,
        version_id,
        datetime_of_ns(newest_ns),
    )


async def move_cursor(
    conn: asyncpg.Connection, model_id: str, version_id: str, was_ns: int, now_ns: int
) -> bool:
    """Move the cursor from ``was`` to ``now``; False when another evaluator moved it first."""
    status = await conn.execute(
        """update research.signal_cursors set last_bar_ts = $4, version_id = $2,
                  updated_at = now()
           where model_id = $1 and last_bar_ts = $3""",
        model_id,
        version_id,
        datetime_of_ns(was_ns),
        datetime_of_ns(now_ns),
    )
    return bool(status == "UPDATE 1")


async def active_signal(conn: Conn, model_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""select {SIGNAL_COLUMNS} from research.signals s
            join research.models m using (model_id)
            where s.model_id = $1 and s.status = 'active'
            order by s.bar_ts desc limit 1""",
        model_id,
    )


async def insert_signals(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await conn.executemany(
        """insert into research.signals (signal_id, model_id, sequence, ticker, action, quantity,
               price, bar_ts, confidence, expected_return, version_id)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        rows,
    )


async def end_signals(conn: asyncpg.Connection, rows: list[tuple[str, str, float]]) -> None:
    """``(signal_id, status, realized_return)``: only an active signal ends."""
    await conn.executemany(
        """update research.signals set status = $2, realized_return = $3
           where signal_id = $1 and status = 'active'""",
        rows,
    )


def _signal_filters(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for column, op in (
        ("s.model_id", "="),
        ("s.status", "="),
        ("s.bar_ts", ">="),
        ("s.bar_ts", "<"),
        ("m.pack_id", "="),
        ("m.risk_profile", "="),
    ):
        key = f"{column}{op}"
        if filters.get(key) is not None:
            args.append(filters[key])
            clauses.append(f"{column} {op} ${len(args)}")
    return (" and ".join(clauses) or "true"), args


async def list_signals(
    conn: Conn, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where, args = _signal_filters(filters)
    n = len(args)
    rows = await conn.fetch(
        f"""select {SIGNAL_COLUMNS} from research.signals s
            join research.models m using (model_id)
            where {where} order by s.bar_ts desc, s.model_id, s.sequence desc
            limit ${n + 1} offset ${n + 2}""",
        *args,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"""select count(*) from research.signals s join research.models m using (model_id)
            where {where}""",
        *args,
    )
    return rows, int(total)


async def scores(conn: Conn, filters: dict[str, Any]) -> list[asyncpg.Record]:
    """Per model with signals in the window: how many, how many ended, how many gained, and
    the mean and sample deviation of what the ended ones returned."""
    where, args = _signal_filters(filters)
    return await conn.fetch(
        f"""select s.model_id, m.pack_id, m.risk_profile, m.timeframe, m.config,
                   count(*) as total,
                   count(s.realized_return) as resolved,
                   count(*) filter (where s.realized_return > 0) as wins,
                   avg(s.realized_return) as mean,
                   stddev_samp(s.realized_return) as std
            from research.signals s join research.models m using (model_id)
            where {where}
            group by s.model_id, m.pack_id, m.risk_profile, m.timeframe, m.config
            order by s.model_id""",
        *args,
    )


async def model_exists(conn: Conn, model_id: str) -> bool:
    found = await conn.fetchval("select 1 from research.models where model_id = $1", model_id)
    return found is not None
