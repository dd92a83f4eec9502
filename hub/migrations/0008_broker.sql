-- The broker domain: paper accounts, their orders and fills, netted positions, and where each
-- symbol's matcher stopped reading ticks.
--
-- Money and prices are float8: the matcher's numbers are exactly what clients read back.
-- Every order change is also an event on the durable topic `account:{id}:orders`
-- (topic_sequences / topic_events), written in the same transaction.
create sequence broker_account_numbers start 10000001;

create table broker_accounts (
    account_id            text primary key default ('D' || nextval('broker_account_numbers')),
    owner                 uuid not null references users (user_id) on delete cascade,
    name                  text not null check (length(name) between 1 and 64),
    broker                text not null default 'paper',
    currency              text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
    initial_balance       float8 not null check (initial_balance >= 0),
    cash                  float8 not null,
    realized_pnl          float8 not null default 0,
    fees_paid             float8 not null default 0,
    fee_rate              float8 not null default 0 check (fee_rate >= 0 and fee_rate < 1),
    slippage_bps          float8 not null default 0 check (slippage_bps >= 0 and slippage_bps < 10000),
    max_order_quantity    float8 check (max_order_quantity > 0),
    max_position          float8 check (max_position > 0),
    max_order_notional    float8 check (max_order_notional > 0),
    max_orders_per_second integer not null default 10 check (max_orders_per_second > 0),
    active                boolean not null default true,
    -- The positions and balances state topics' version: bumped for each document published.
    state_version         bigint not null default 0,
    created_at            timestamptz not null default now(),
    unique (owner, name)
);

create table broker_orders (
    order_id        bigint generated always as identity primary key,
    account_id      text not null references broker_accounts on delete cascade,
    client_order_id text not null check (length(client_order_id) between 1 and 64),
    symbol          text not null,
    side            text not null check (side in ('buy', 'sell')),
    type            text not null check (type in ('market', 'limit', 'stop', 'stop_limit')),
    quantity        float8 not null check (quantity > 0),
    price           float8,
    stop_price      float8,
    time_in_force   text not null check (time_in_force in ('gtc', 'ioc', 'fok', 'day')),
    status          text not null check (status in (
        'pending', 'working', 'partially_filled', 'filled', 'cancelled', 'rejected', 'expired')),
    reject_reason   text,
    filled_quantity float8 not null default 0,
    average_price   float8,
    triggered       boolean not null default false,
    -- A limit order marketable when it arrived fills at the next tick's price.
    marketable      boolean not null default false,
    -- Wall-clock ns when the order was accepted: a tick ingested before it never fills it.
    accepted_ns     bigint not null,
    expires_at      timestamptz,
    version         integer not null default 1,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    unique (account_id, client_order_id)
);
create index broker_orders_open on broker_orders (symbol)
    where status in ('pending', 'working', 'partially_filled');
create index broker_orders_by_account on broker_orders (account_id, order_id);

create table broker_fills (
    fill_id    bigint generated always as identity primary key,
    order_id   bigint not null references broker_orders on delete cascade,
    account_id text not null,
    symbol     text not null,
    side       text not null,
    quantity   float8 not null,
    price      float8 not null,
    fee        float8 not null,
    tick_epoch text not null,
    tick_seq   bigint not null,
    tick_ts    bigint not null,
    created_at timestamptz not null default now(),
    -- The same tick never fills the same order twice, whoever replays it.
    unique (order_id, tick_epoch, tick_seq)
);
create index broker_fills_by_account on broker_fills (account_id, fill_id);

create table broker_positions (
    account_id    text not null references broker_accounts on delete cascade,
    symbol        text not null,
    position_id   bigint generated always as identity unique,
    quantity      float8 not null default 0,
    average_price float8 not null default 0,
    realized_pnl  float8 not null default 0,
    updated_at    timestamptz not null default now(),
    primary key (account_id, symbol)
);

create table broker_matcher_cursors (
    symbol text primary key,
    epoch  text not null,
    seq    bigint not null
);
