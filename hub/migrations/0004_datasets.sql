-- Datasets (Stage1's dataset object) and the `ts` schema that holds their measurements.
create schema if not exists ts;

create table datasets (
    dataset_id            uuid primary key default gen_random_uuid(),
    dataset_slug          text not null unique check (dataset_slug ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    symbol                text not null,
    granularity           text not null,
    source                text not null default '',
    ohlcv_measurement     text check (ohlcv_measurement ~ '^[a-z][a-z0-9_]{0,62}$'),
    indicator_measurement text check (indicator_measurement ~ '^[a-z][a-z0-9_]{0,62}$'),
    ohlcv_row_count       bigint not null default 0,
    indicator_row_count   bigint not null default 0,
    ohlcv_first_ts        bigint,   -- microseconds since the epoch, as Stage1 reports them
    ohlcv_last_ts         bigint,
    indicator_first_ts    bigint,
    indicator_last_ts     bigint,
    metadata              jsonb not null default '{}'::jsonb,
    created_by            uuid references users (user_id) on delete set null,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now()
);

create unique index datasets_symbol_granularity_idx on datasets (symbol, granularity);
