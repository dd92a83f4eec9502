-- Walk-forward runs (Stage1's run object), simulations of them, and the simulations' trades.
-- A run's predictions are the measurement ts."wf_<run_id, '-' as '_'>" (hub/runs/predictions.py),
-- created when they are first written; a run is immutable once created.
create table runs (
    run_id      uuid primary key,
    dataset_id  uuid not null references datasets (dataset_id) on delete restrict,
    fold_count  integer not null check (fold_count >= 0),
    features    text[] not null default '{}',
    thresholds  float8[] not null default '{}',
    created_by  uuid references users (user_id) on delete set null,
    created_at  timestamptz not null default now()
);

create index runs_listed_idx on runs (created_at desc, run_id desc);
create index runs_dataset_idx on runs (dataset_id, created_at desc, run_id desc);

-- A simulation is the engine's `threshold` strategy over the run's dataset bars and its
-- predictions, run as the job `runs.simulate`; `results` holds the metrics once it completed.
create table simulations (
    simulation_id   uuid primary key,
    run_id          uuid not null references runs (run_id) on delete restrict,
    initial_capital float8 not null check (initial_capital > 0),
    parameters      jsonb not null default '{}'::jsonb,
    results         jsonb not null default '{}'::jsonb,
    status          text not null default 'pending'
                    check (status in ('pending', 'running', 'completed', 'failed', 'cancelled')),
    job_id          uuid references jobs (job_id) on delete set null,
    created_by      uuid references users (user_id) on delete set null,
    created_at      timestamptz not null default now(),
    completed_at    timestamptz
);

create index simulations_listed_idx on simulations (created_at desc, simulation_id desc);
create index simulations_run_idx on simulations (run_id, created_at desc, simulation_id desc);

-- Written by COPY in the transaction that stores the simulation's results. `n` is the trade's
-- place in the simulation (entry order, from 0); `trade_id` is derived from the simulation id
-- and `n`, so a re-run writes the same ids.
create table simulation_trades (
    simulation_id uuid not null references simulations (simulation_id) on delete cascade,
    n             integer not null,
    trade_id      uuid not null unique,
    bar_timestamp bigint not null,  -- the entry bar, microseconds since the epoch
    side          text not null check (side in ('long', 'short')),
    size          float8 not null,
    entry_price   float8 not null,
    exit_price    float8 not null,
    pnl           float8 not null,
    return_pct    float8 not null,
    metadata      jsonb not null default '{}'::jsonb,
    primary key (simulation_id, n)
);
