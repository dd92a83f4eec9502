-- Market data: rights an API key carries beyond its user's role, and stored ticks.

-- Scopes an admin granted to a key (`marketdata:write`: ingest ticks, start replays).
alter table api_keys add column scopes text[] not null default '{}';

-- Ticks: one measurement per symbol. `ts.ticks` is partitioned by symbol, and each symbol's
-- partition, `ts."ticks_<symbol>_<hash>"`, is created (and attached) by the first batch that
-- brings the symbol: a table per symbol to read, one COPY per batch to write.
-- `ts` is the tick's time to the microsecond for SQL; `ts_ns` is the exact time the bus
-- carried; `n` orders ticks of equal time as they were ingested.
create table ts.ticks (
    symbol  text not null,
    ts      timestamptz not null,
    ts_ns   bigint not null,
    price   float8 not null,
    size    float8,
    bid     float8,
    ask     float8,
    recv_ns bigint not null,
    n       bigint not null
) partition by list (symbol);

create index ticks_time_idx on ts.ticks (ts_ns, n);

-- Each batch takes one number and numbers its ticks n, n + 1, ...: the increment is the
-- largest batch the hub accepts (hub/marketdata/ticks.py MAX_TICKS).
create sequence tick_batches increment by 10000;

-- The symbols with a partition, and its name (symbols differing only in punctuation or case
-- get different names through a hash of the exact symbol).
create table tick_symbols (
    symbol      text primary key,
    measurement text not null unique check (measurement ~ '^[a-z][a-z0-9_]{0,62}$'),
    created_at  timestamptz not null default now()
);
