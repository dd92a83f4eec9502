"""SQL for a live run's persist: what one closed bar (or a flush between bars) wrote, in one
statement and one round trip.

A backtest chunk writes thousands of rows with COPY; a live run writes a handful every bar, for
hundreds of runs a second in one worker, so what matters is round trips: the equity point, the
events, the run's single checkpoint row (updated in place: only the newest is ever read) and
the progress go in one statement. A bar that closed a trade uses the chunk path instead
(:meth:`RunWriter.persist`), which also writes trades. Nothing is written when the checkpoint
row is gone (the caller then takes the chunk path, which writes a new one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from hub.db import Conn
from hub.executions.curvecodec import encode_balances, encode_times
from hub.executions.repository import EXECUTION_COLUMNS

_PERSIST = f"""
with found as (
    select 1 from execution_checkpoints where id = $16 and execution_id = $1
), eq as (
    insert into execution_equity (execution_id, first_seq, count, ts, balance)
    select $1, $2, $3, $4, $5 where $3 > 0 and exists (select 1 from found)
), ev as (
    insert into execution_events (execution_id, sequence, event_type, strategy_type, ts, event)
    select $1, s, t, $6, w, e::json
    from unnest($7::bigint[], $8::text[], $9::timestamptz[], $10::text[]) as x(s, t, w, e)
    where exists (select 1 from found)
), ck as (
    update execution_checkpoints
    set processed = $11, metrics = $12, state = $13, last_event_seq = $14,
        last_trade_seq = $15, created_at = now()
    where id = $16 and execution_id = $1
    returning id, execution_id, processed, metrics, state, last_event_seq, last_trade_seq,
              created_at
), u as (
    update executions set processed = $11, total = 0, progress = 0, version = version + 1,
        updated_at = now()
    where execution_id = $1 and exists (select 1 from ck)
    returning *
)
select {EXECUTION_COLUMNS.replace("e.", "u.")},
       ck.id as ck_id, ck.processed as ck_processed, ck.metrics as ck_metrics,
       ck.last_event_seq as ck_last_event_seq, ck.last_trade_seq as ck_last_trade_seq,
       ck.created_at as ck_created_at
from u join execution_tasks t using (task_id) cross join ck
"""


async def persist_bar(
    conn: Conn,
    execution_id: int,
    checkpoint_id: int,
    equity: tuple[int, list[int], list[float]],  # (first sequence, times ns, balances)
    events: tuple[str, list[int], list[str], list[datetime], list[str]],
    processed: int,
    metrics: dict[str, Any],
    state: dict[str, Any],
    last_event: int,
    last_trade: int,
) -> asyncpg.Record | None:
    """Write a live run's bar; the execution row with its checkpoint (``ck_*`` columns), or
    None when the checkpoint row is gone (the caller writes a new one the long way)."""
    first, times, balances = equity
    strategy, seqs, types, stamps, bodies = events
    return await conn.fetchrow(
        _PERSIST,
        execution_id,
        first,
        len(times),
        encode_times(np.asarray(times, dtype=np.int64)),
        encode_balances(np.asarray(balances, dtype=np.float64)),
        strategy,
        seqs,
        types,
        stamps,
        bodies,
        processed,
        metrics,
        state,
        last_event,
        last_trade,
        checkpoint_id,
    )


def checkpoint_of(row: asyncpg.Record) -> dict[str, Any]:
    """The checkpoint columns of :func:`persist_bar`'s row, as a checkpoint record reads."""
    return {
        "id": row["ck_id"],
        "execution_id": row["execution_id"],
        "processed": row["ck_processed"],
        "metrics": row["ck_metrics"],
        "last_event_seq": row["ck_last_event_seq"],
        "last_trade_seq": row["ck_last_trade_seq"],
        "created_at": row["ck_created_at"],
    }
