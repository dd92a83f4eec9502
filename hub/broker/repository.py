"""SQL for the broker domain. Every order UPDATE is conditional on ``version`` and bumps it, so a
stale writer (a second matcher, a cancel racing a fill) changes nothing and knows it."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn
from hub.eventlog import append_statement

ACCOUNT_COLUMNS = """account_id, owner, name, broker, currency, initial_balance, cash, realized_pnl,
    fees_paid, fee_rate, slippage_bps, max_order_quantity, max_position, max_order_notional,
    max_orders_per_second, active, state_version, created_at"""

ORDER_COLUMNS = """order_id, account_id, client_order_id, symbol, side, type, quantity, price,
    stop_price, time_in_force, status, reject_reason, filled_quantity, average_price, triggered,
    marketable, accepted_ns, expires_at, version, created_at, updated_at"""

OPEN = "('pending', 'working', 'partially_filled')"


async def insert_account(conn: Conn, owner: str, values: dict[str, Any]) -> asyncpg.Record | None:
    """The new account, or None when the owner already has one of that name."""
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(2, len(values) + 2))
    return await conn.fetchrow(
        f"""insert into broker_accounts (owner, cash, {columns})
            values ($1, ${len(values) + 2}, {params})
            on conflict (owner, name) do nothing returning {ACCOUNT_COLUMNS}""",
        owner,
        *values.values(),
        values["initial_balance"],
    )


async def account(conn: Conn, account_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " for update" if lock else ""
    return await conn.fetchrow(
        f"select {ACCOUNT_COLUMNS} from broker_accounts where account_id = $1{suffix}", account_id
    )


async def placing(
    conn: Conn, account_id: str, client_order_id: str, symbol: str
) -> asyncpg.Record | None:
    """For a new order, after the account row is locked (:func:`account` with ``lock``): the id
    of an order already sent with this ``client_order_id`` (``existing``) and the position held
    in ``symbol`` (``held``), in one round trip. A separate statement from the lock, so that
    under READ COMMITTED it sees what the transaction it waited for committed."""
    return await conn.fetchrow(
        """select (select order_id from broker_orders
                   where account_id = $1 and client_order_id = $2) as existing,
                  (select quantity from broker_positions
                   where account_id = $1 and symbol = $3) as held""",
        account_id,
        client_order_id,
        symbol,
    )


async def owner(conn: Conn, account_id: str) -> str | None:
    value = await conn.fetchval(
        "select owner from broker_accounts where account_id = $1", account_id
    )
    return None if value is None else str(value)


async def accounts(
    conn: Conn, owner: str | None, account_ids: list[str] | None = None, name: str | None = None
) -> list[asyncpg.Record]:
    """An owner's accounts (every account when ``owner`` is None), optionally filtered."""
    return await conn.fetch(
        f"""select {ACCOUNT_COLUMNS} from broker_accounts
            where ($1::uuid is null or owner = $1::uuid)
              and ($2::text[] is null or account_id = any($2::text[]))
              and ($3::text is null or name = $3::text)
            order by created_at, account_id""",
        owner,
        account_ids,
        name,
    )


async def order(conn: Conn, order_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " for update" if lock else ""
    return await conn.fetchrow(
        f"select {ORDER_COLUMNS} from broker_orders where order_id = $1{suffix}", order_id
    )


async def insert_order(conn: Conn, values: dict[str, Any]) -> asyncpg.Record:
    columns = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row = await conn.fetchrow(
        f"insert into broker_orders ({columns}) values ({params}) returning {ORDER_COLUMNS}",
        *values.values(),
    )
    assert row is not None
    return row


async def update_order(
    conn: Conn, order_id: int, version: int, values: dict[str, Any]
) -> asyncpg.Record | None:
    """Apply ``values`` if the order is still open at ``version``; None when it is not."""
    sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=3))
    return await conn.fetchrow(
        f"""update broker_orders set {sets}, version = version + 1, updated_at = now()
            where order_id = $1 and version = $2 and status in {OPEN}
            returning {ORDER_COLUMNS}""",
        order_id,
        version,
        *values.values(),
    )


async def fill_order(
    conn: Conn,
    order_id: int,
    version: int,
    values: dict[str, Any],
    fill: tuple[float, float, float, str, int, int],
) -> asyncpg.Record | None:
    """In one statement: apply ``values`` to the order (if still open at ``version``), record
    the fill (quantity, price, fee, tick epoch, tick seq, tick ts), and lock and read the
    account's position in the symbol (``held_quantity``, ``held_average``, ``held_realized``,
    null without one). None: the order changed; ``fill_id`` None: this tick had filled it."""
    sets = ", ".join(f"{column} = ${i}" for i, column in enumerate(values, start=9))
    return await conn.fetchrow(
        f"""with updated as (
                update broker_orders set {sets}, version = version + 1, updated_at = now()
                where order_id = $1 and version = $2 and status in {OPEN}
                returning {ORDER_COLUMNS}
            ), filled as (
                insert into broker_fills (order_id, account_id, symbol, side, quantity, price,
                                          fee, tick_epoch, tick_seq, tick_ts)
                select order_id, account_id, symbol, side, $3, $4, $5, $6, $7, $8 from updated
                on conflict (order_id, tick_epoch, tick_seq) do nothing
                returning fill_id
            ), held as (
                select p.quantity, p.average_price, p.realized_pnl
                from broker_positions p join updated u
                  on p.account_id = u.account_id and p.symbol = u.symbol
                for update of p
            )
            select updated.*, (select fill_id from filled) as fill_id,
                   held.quantity as held_quantity, held.average_price as held_average,
                   held.realized_pnl as held_realized
            from updated left join held on true""",
        order_id,
        version,
        *fill,
        *values.values(),
    )


async def bump_state_with_positions(conn: Conn, account_id: str) -> list[asyncpg.Record]:
    """Take the account's next state version and read it with its positions, in one statement:
    one row per position (``symbol`` null when there is none), each carrying the account's
    columns. Empty: no such account."""
    return await conn.fetch(
        f"""with bumped as (
                update broker_accounts set state_version = state_version + 1
                where account_id = $1 returning {ACCOUNT_COLUMNS}
            )
            select bumped.*, p.symbol, p.position_id, p.quantity, p.average_price,
                   p.realized_pnl as position_realized_pnl, p.updated_at
            from bumped left join broker_positions p on p.account_id = bumped.account_id
            order by p.symbol""",
        account_id,
    )


async def settle_fill(
    conn: Conn,
    account_id: str,
    symbol: str,
    position: Any,
    *,
    cash: float,
    realized: float,
    fee: float,
    topic: str,
    events: list[bytes],
) -> list[int]:
    """In one statement: store the position after a fill, move the account's cash, realized
    P&L and fees, and append ``events`` to ``topic``; returns the events' sequences."""
    ctes = """saved as (
               insert into broker_positions (account_id, symbol, quantity, average_price,
                                             realized_pnl)
               values ($4, $5, $6, $7, $8)
               on conflict (account_id, symbol) do update set quantity = excluded.quantity,
                   average_price = excluded.average_price, realized_pnl = excluded.realized_pnl,
                   updated_at = now()
           ), settled as (
               update broker_accounts set cash = cash + $9, realized_pnl = realized_pnl + $10,
                   fees_paid = fees_paid + $11
               where account_id = $4
           ), """
    rows = await conn.fetch(
        append_statement(ctes),
        topic,
        len(events),
        [e.decode() for e in events],
        account_id,
        symbol,
        position.quantity,
        position.average_price,
        position.realized_pnl,
        cash,
        realized,
        fee,
    )
    return sorted(row["seq"] for row in rows)


async def rests(conn: Conn, order_id: int) -> None:
    """A limit that was marketable on arrival missed its next tick: from now on it rests (an
    internal mark, not a change clients see, so no new version)."""
    await conn.execute("update broker_orders set marketable = false where order_id = $1", order_id)


async def open_orders(
    conn: Conn, *, symbol: str | None = None, account_id: str | None = None
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {ORDER_COLUMNS} from broker_orders
            where status in {OPEN} and ($1::text is null or symbol = $1)
              and ($2::text is null or account_id = $2)
            order by order_id""",
        symbol,
        account_id,
    )


async def open_orders_with_prefix(conn: Conn, account_id: str, prefix: str) -> list[asyncpg.Record]:
    """The account's open orders whose client order id starts with ``prefix``."""
    return await conn.fetch(
        f"""select {ORDER_COLUMNS} from broker_orders
            where account_id = $1 and status in {OPEN} and starts_with(client_order_id, $2)
            order by order_id""",
        account_id,
        prefix,
    )


async def watched_symbols(conn: Conn) -> list[str]:
    """The symbols a matcher must follow: open orders to match, or positions to mark."""
    rows = await conn.fetch(
        f"""select symbol from broker_orders where status in {OPEN}
            union select symbol from broker_positions where quantity <> 0"""
    )
    return [row["symbol"] for row in rows]


async def orders(
    conn: Conn,
    account_ids: list[str],
    statuses: list[str] | None,
    limit: int,
    offset: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""select {ORDER_COLUMNS} from broker_orders
            where account_id = any($1::text[]) and ($2::text[] is null or status = any($2::text[]))
            order by order_id desc limit $3 offset $4""",
        account_ids,
        statuses,
        limit,
        offset,
    )


async def positions(conn: Conn, account_ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select account_id, symbol, position_id, quantity, average_price, realized_pnl, updated_at
           from broker_positions where account_id = any($1::text[]) order by account_id, symbol""",
        account_ids,
    )


async def holders(conn: Conn, symbol: str) -> list[str]:
    rows = await conn.fetch(
        "select account_id from broker_positions where symbol = $1 and quantity <> 0", symbol
    )
    return [row["account_id"] for row in rows]


async def cursor(conn: Conn, symbol: str) -> tuple[str, int] | None:
    row = await conn.fetchrow(
        "select epoch, seq from broker_matcher_cursors where symbol = $1", symbol
    )
    return None if row is None else (row["epoch"], int(row["seq"]))


async def save_cursor(conn: Conn, symbol: str, epoch: str, seq: int) -> None:
    await conn.execute(
        """insert into broker_matcher_cursors (symbol, epoch, seq) values ($1, $2, $3)
           on conflict (symbol) do update set epoch = excluded.epoch, seq = excluded.seq
           where broker_matcher_cursors.epoch <> excluded.epoch
              or broker_matcher_cursors.seq < excluded.seq""",
        symbol,
        epoch,
        seq,
    )
