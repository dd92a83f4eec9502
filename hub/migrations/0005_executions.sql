-- Backtest and live executions: a task (what to run) and its numbered executions (each run),
-- with the durable streams every execution produces (events, trades, equity) and its metric
-- checkpoints. Sequences are per execution and per stream, gap-free, starting at 1.
create table execution_tasks (
    task_id         bigserial primary key,
    owner_id        uuid not null references users (user_id) on delete cascade,
    task_type       text not null check (task_type in ('backtest', 'trading')),
    strategy        text not null,
    params          jsonb not null default '{}'::jsonb,
    symbols         text[] not null,
    timeframe       text not null,
    start_at        timestamptz,
    end_at          timestamptz,
    initial_capital float8 not null check (initial_capital > 0),
    options         jsonb not null default '{}'::jsonb,
    exchange        text not null default '',
    created_at      timestamptz not null default now()
);

create index execution_tasks_owner_idx on execution_tasks (owner_id, created_at desc);

create table executions (
    execution_id     bigserial primary key,
    task_id          bigint not null references execution_tasks (task_id) on delete cascade,
    owner_id         uuid not null references users (user_id) on delete cascade,
    execution_number integer not null,
    status           text not null default 'created'
                     check (status in ('created', 'running', 'paused', 'stopped', 'completed', 'failed')),
    progress         float8 not null default 0,      -- percent
    processed        bigint not null default 0,      -- bars simulated
    total            bigint not null default 0,
    job_id           uuid references jobs (job_id) on delete set null,
    stop_requested   boolean not null default false,
    error_message    text,
    final_value      float8,
    version          bigint not null default 1,      -- the execution:{id}:status topic's sequence
    started_at       timestamptz,
    completed_at     timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    unique (task_id, execution_number)
);

create index executions_owner_idx on executions (owner_id, created_at desc);

-- The two high-volume streams carry no foreign key: a per-row referential check costs more than
-- the insert itself (55,000 events of a 1,000,000-bar backtest: ~0.5 s). Only the job that owns
-- an execution writes its streams, and the trigger below removes them with it.
create table execution_events (
    execution_id  bigint not null,
    sequence      bigint not null,
    event_type    text not null check (event_type in
                  ('tick_received', 'strategy_signal', 'trade_executed', 'status_changed', 'error_occurred')),
    strategy_type text not null,
    ts            timestamptz not null,
    event         json not null,
    created_at    timestamptz not null default now(),
    primary key (execution_id, sequence)
);


create table execution_trades (
    execution_id bigint not null,
    sequence     bigint not null,
    instrument   text not null,
    direction    text not null check (direction in ('long', 'short')),
    status       text not null check (status in ('open', 'closed')),
    entry_index  bigint not null,
    exit_index   bigint not null,
    entry_time   timestamptz not null,
    exit_time    timestamptz not null,
    entry_price  float8 not null,
    exit_price   float8 not null,
    units        float8 not null,
    pnl          float8 not null,
    return_pct   float8 not null,
    fees         float8 not null,
    exit_reason  text not null,
    details      jsonb not null default '{}'::jsonb,
    created_at   timestamptz not null default now(),
    primary key (execution_id, sequence)
);

create function delete_execution_streams() returns trigger language plpgsql as $$
begin
    delete from execution_events where execution_id = old.execution_id;
    delete from execution_trades where execution_id = old.execution_id;
    return old;
end
$$;

create trigger executions_delete_streams after delete on executions
    for each row execute function delete_execution_streams();

-- The equity curve, one row per persisted chunk: int64 ns times and float64 balances as raw
-- little-endian arrays. A 1,000,000-bar curve is a handful of rows, written and read whole.
create table execution_equity (
    execution_id bigint not null references executions (execution_id) on delete cascade,
    first_seq    bigint not null,
    count        integer not null check (count > 0),
    ts           bytea not null,
    balance      bytea not null,
    primary key (execution_id, first_seq)
);
-- Raw floats do not compress: storing them uncompressed makes writes and reads several times faster.
alter table execution_equity alter column ts set storage external;
alter table execution_equity alter column balance set storage external;

create table execution_checkpoints (
    id             bigserial primary key,
    execution_id   bigint not null references executions (execution_id) on delete cascade,
    processed      bigint not null,
    metrics        jsonb not null,
    state          jsonb,          -- the engine's resumable state after `processed` bars
    last_event_seq bigint not null,
    last_trade_seq bigint not null,
    created_at     timestamptz not null default now()
);

create index execution_checkpoints_idx on execution_checkpoints (execution_id, id desc);

-- Cracktrader's "current run" per user (its /status, /run/stop, /run/reset act on it).
create table cracktrader_runners (
    owner_id     uuid primary key references users (user_id) on delete cascade,
    execution_id bigint references executions (execution_id) on delete set null,
    updated_at   timestamptz not null default now()
);
