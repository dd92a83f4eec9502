"""SQL for live runs' persists: what closed bars (or flushes between bars) of many runs wrote,
in one statement and one round trip.

A backtest chunk writes thousands of rows with COPY; a live run writes a handful every bar, and a
worker hosts hundreds of runs whose bars close at the same second. So the worker's
:class:`~hub.executions.livewriter.LiveWriter` gathers the bars that close together and writes
them here at once: every run's equity point, events and closed trades, its single checkpoint
row (updated in place: only the newest is ever read) and its progress. A run whose checkpoint
row is gone writes nothing here (the caller then writes a new one the long way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub.db import Conn
from hub.executions.repository import EXECUTION_COLUMNS

_PERSIST = f"""
with v as (
    select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                         $6::bigint[], $7::bigint[])
        as v(eid, ck, processed, metrics, state, last_event, last_trade)
    where exists (select 1 from execution_checkpoints c where c.id = v.ck and c.execution_id = v.eid)
), eq as (
    insert into execution_equity (execution_id, first_seq, count, ts, balance)
    select q.eid, q.first, q.n, q.ts, q.bal
    from unnest($8::bigint[], $9::bigint[], $10::int[], $11::bytea[], $12::bytea[])
        as q(eid, first, n, ts, bal)
    where q.eid in (select eid from v)
), ev as (
    insert into execution_events (execution_id, sequence, event_type, strategy_type, ts, event)
    select x.eid, x.s, x.t, x.st, x.w, x.e::json
    from unnest($13::bigint[], $14::bigint[], $15::text[], $16::text[], $17::timestamptz[],
                $18::text[]) as x(eid, s, t, st, w, e)
    where x.eid in (select eid from v)
), tr as (
    insert into execution_trades (execution_id, sequence, instrument, direction, status,
        entry_index, exit_index, entry_time, exit_time, entry_price, exit_price, units, pnl,
        return_pct, fees, exit_reason, details)
    select r.eid, r.seq, r.ins, r.dir, r.st, r.ei, r.xi, r.et, r.xt, r.ep, r.xp, r.u, r.p,
           r.rp, r.f, r.er, r.d::jsonb
    from unnest($19::bigint[], $20::bigint[], $21::text[], $22::text[], $23::text[],
                $24::bigint[], $25::bigint[], $26::timestamptz[], $27::timestamptz[],
                $28::float8[], $29::float8[], $30::float8[], $31::float8[], $32::float8[],
                $33::float8[], $34::text[], $35::text[])
        as r(eid, seq, ins, dir, st, ei, xi, et, xt, ep, xp, u, p, rp, f, er, d)
    where r.eid in (select eid from v)
), ck as (
    update execution_checkpoints c
    set processed = v.processed, metrics = v.metrics::jsonb, state = v.state::jsonb,
        last_event_seq = v.last_event, last_trade_seq = v.last_trade, created_at = now()
    from v where c.id = v.ck
    returning c.id, c.execution_id, c.processed, c.metrics, c.last_event_seq, c.last_trade_seq,
              c.created_at
), u as (
    update executions e set processed = v.processed, total = 0, progress = 0,
        version = e.version + 1, updated_at = now()
    from v where e.execution_id = v.eid
    returning e.*
)
select {EXECUTION_COLUMNS.replace("e.", "u.")},
       ck.id as ck_id, ck.processed as ck_processed, ck.metrics as ck_metrics,
       ck.last_event_seq as ck_last_event_seq, ck.last_trade_seq as ck_last_trade_seq,
       ck.created_at as ck_created_at
from u join execution_tasks t using (task_id) join ck on ck.execution_id = u.execution_id
"""


@dataclass
class BarRows:
    """The rows of one run's persist, as :func:`persist_bars` takes them."""

    execution_id: int
    checkpoint_id: int
    processed: int
    metrics: str  # JSON
    state: str  # JSON
    last_event: int
    last_trade: int
    equity: tuple[int, int, bytes, bytes] | None  # (first sequence, count, times, balances)
    events: list[tuple[int, str, str, datetime, str]] = field(default_factory=list)
    trades: list[tuple[Any, ...]] = field(default_factory=list)  # execution_trades' columns


async def persist_bars(conn: Conn, bars: list[BarRows]) -> dict[int, asyncpg.Record]:
    """Write every run's rows; each run written, by execution id, with its checkpoint (``ck_*``
    columns). A run missing from the answer wrote nothing (its checkpoint row is gone)."""
    columns: list[list[Any]] = [[] for _ in range(35)]
    for b in bars:
        for i, value in enumerate(
            (b.execution_id, b.checkpoint_id, b.processed, b.metrics, b.state, b.last_event,
             b.last_trade)
        ):  # fmt: skip
            columns[i].append(value)
        if b.equity is not None:
            for i, value in enumerate((b.execution_id, *b.equity), start=7):
                columns[i].append(value)
        for seq, kind, strategy, stamp, body in b.events:
            for i, value in enumerate((b.execution_id, seq, kind, strategy, stamp, body), start=12):
                columns[i].append(value)
        for trade in b.trades:
            for i, value in enumerate(trade, start=18):
                columns[i].append(value)
    rows = await conn.fetch(_PERSIST, *columns)
    return {row["execution_id"]: row for row in rows}


def checkpoint_of(row: asyncpg.Record) -> dict[str, Any]:
    """The checkpoint columns of :func:`persist_bars`' rows, as a checkpoint record reads."""
    return {
        "id": row["ck_id"],
        "execution_id": row["execution_id"],
        "processed": row["ck_processed"],
        "metrics": row["ck_metrics"],
        "last_event_seq": row["ck_last_event_seq"],
        "last_trade_seq": row["ck_last_trade_seq"],
        "created_at": row["ck_created_at"],
    }
