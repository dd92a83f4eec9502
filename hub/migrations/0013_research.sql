-- Research (Sigma Lab, seed 001): models made from templates, their feature matrices, trained
-- versions, walk-forward backtests, sweeps of them, and the signals a trained model emits.
-- Files (matrices as Parquet, trained models as LightGBM text) live under the data folder,
-- content-addressed by the sha256 of their bytes; these rows say which model uses which.
create schema research;

-- The bytes of every file, by sha: the file under the data folder is a copy any hub or worker
-- (on any machine) writes again from here when it lacks it.
create table research.artifacts (
    sha         text primary key check (sha ~ '^[0-9a-f]{64}$'),
    kind        text not null check (kind in ('matrix', 'model')),
    content     bytea not null,
    size_bytes  bigint not null,
    created_at  timestamptz not null default now()
);

create table research.models (
    model_id      text primary key check (model_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'),
    pack_id       text not null,
    template_id   text not null,
    name          text not null,
    risk_profile  text not null check (risk_profile in ('Conservative', 'Balanced', 'Aggressive')),
    ticker        text not null,  -- a dataset symbol
    timeframe     text not null,  -- the dataset's granularity
    config        jsonb not null,
    config_sha    text not null,  -- sha256 of the canonical JSON of config
    active        boolean not null default true,  -- emits signals when it has a trained version
    created_by    uuid references users (user_id) on delete set null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now()
);

create index research_models_pack_idx on research.models (pack_id, created_at desc, model_id);
create index research_models_ticker_idx on research.models (ticker, timeframe) where active;

-- A matrix built for a model: the file is research/matrices/<sha>.parquet (shared by every
-- model whose request gave the same bytes).
create table research.matrices (
    model_id    text not null references research.models (model_id) on delete cascade,
    matrix_sha  text not null check (matrix_sha ~ '^[0-9a-f]{64}$'),
    start_date  date not null,
    end_date    date not null,
    features    text[] not null,   -- as requested
    columns     text[] not null,   -- as written (ts, hour, the feature columns, target)
    horizon     integer not null,
    row_count   bigint not null,
    size_bytes  bigint not null,
    created_by  uuid references users (user_id) on delete set null,
    created_at  timestamptz not null default now(),
    primary key (model_id, matrix_sha)
);

create index research_matrices_sha_idx on research.matrices (matrix_sha);

-- A trained version of a model: research/models/<file_sha>.txt once trained.
create table research.model_versions (
    version_id    text primary key,
    model_id      text not null references research.models (model_id) on delete cascade,
    version       integer not null,
    matrix_sha    text not null,
    allowed_hours integer[],
    params        jsonb not null,
    feature_columns text[] not null default '{}',
    file_sha      text,
    metrics       jsonb not null default '{}'::jsonb,
    status        text not null default 'queued'
                  check (status in ('queued', 'training', 'completed', 'failed', 'cancelled')),
    error         text,
    job_id        uuid references jobs (job_id) on delete set null,
    created_by    uuid references users (user_id) on delete set null,
    created_at    timestamptz not null default now(),
    completed_at  timestamptz,
    unique (model_id, version)
);

create index research_versions_job_idx on research.model_versions (job_id);

-- A sweep: a grid of configs over one set of walk-forward predictions (a backtest's run),
-- evaluated in chunks by jobs; each config is a row of research.backtests with sweep_id.
create table research.sweeps (
    sweep_id      text primary key,
    model_id      text not null references research.models (model_id) on delete cascade,
    source_backtest_id text not null,
    risk_profile  text not null check (risk_profile in ('Conservative', 'Balanced', 'Aggressive')),
    grid          jsonb not null,
    tag           text,
    total_configs integer not null,
    status        text not null default 'running'
                  check (status in ('running', 'completed', 'failed', 'cancelled')),
    created_by    uuid references users (user_id) on delete set null,
    created_at    timestamptz not null default now(),
    completed_at  timestamptz
);

create index research_sweeps_tag_idx on research.sweeps (tag);

-- A research backtest: a walk-forward backtest of a model (kind 'walk_forward', its
-- predictions stored as the Stage1 run `run_id`), or one config of a sweep (kind 'sweep',
-- evaluated on the predictions of its sweep's source backtest). Ranked by the leaderboard.
create table research.backtests (
    backtest_id   text primary key,
    kind          text not null check (kind in ('walk_forward', 'sweep')),
    model_id      text not null references research.models (model_id) on delete cascade,
    sweep_id      text references research.sweeps (sweep_id) on delete cascade,
    n             integer,  -- the config's place in its sweep's grid
    matrix_sha    text,
    run_id        uuid,     -- the Stage1 run holding the predictions this backtest traded
    execution_id  bigint,   -- its trades and equity as an execution (seed 003's routes)
    config        jsonb not null,
    start_date    date,
    end_date      date,
    risk_profile  text not null check (risk_profile in ('Conservative', 'Balanced', 'Aggressive')),
    tag           text,
    status        text not null default 'running'
                  check (status in ('running', 'completed', 'failed', 'cancelled')),
    metrics       jsonb,
    gate_pass     boolean,
    gate_reasons  text[],
    error         text,
    job_id        uuid references jobs (job_id) on delete set null,
    created_by    uuid references users (user_id) on delete set null,
    created_at    timestamptz not null default now(),
    completed_at  timestamptz
);

create index research_backtests_model_idx on research.backtests (model_id, created_at desc);
create index research_backtests_sweep_idx on research.backtests (sweep_id, n);
create index research_backtests_tag_idx on research.backtests (tag) where status = 'completed';

-- Signals a trained model emits when a bar of its ticker closes (durable topic
-- signals:{model_id}; `sequence` is the topic's).
create table research.signals (
    signal_id       text primary key,
    model_id        text not null references research.models (model_id) on delete cascade,
    sequence        bigint not null,
    ticker          text not null,
    action          text not null check (action in ('BUY', 'SELL')),
    quantity        float8 not null,
    price           float8 not null,
    bar_ts          timestamptz not null,
    status          text not null default 'active' check (status in ('active', 'filled', 'cancelled')),
    confidence      float8 not null,
    expected_return float8,
    realized_return float8,
    version_id      text,
    created_at      timestamptz not null default now(),
    unique (model_id, sequence),
    unique (model_id, bar_ts)
);

create index research_signals_time_idx on research.signals (model_id, bar_ts desc);
