-- Webhooks (Sigma Lab, seed 001): a user's endpoints, the deliveries of each event to them,
-- and every attempt of every delivery (hub/webhooks/).

create table webhooks (
    webhook_id    text primary key check (webhook_id ~ '^wh_[0-9a-f]{16}$'),
    user_id       uuid not null references users (user_id) on delete cascade,
    url           text not null check (length(url) between 1 and 2048),
    events        text[] not null check (
        cardinality(events) between 1 and 3
        and events <@ array['backtest.completed', 'signal.generated', 'sweep.completed']
    ),
    secret_sealed bytea not null,  -- the signing secret, encrypted (hub/secretbox.py)
    created_at    timestamptz not null default now()
);

create index webhooks_user_idx on webhooks (user_id, created_at);

create table webhook_deliveries (
    delivery_id     uuid primary key default gen_random_uuid(),
    webhook_id      text not null references webhooks (webhook_id) on delete cascade,
    event           text not null,
    body            bytea not null,  -- the payload without its signature member, as signed
    status          text not null default 'pending'
                    check (status in ('pending', 'delivered', 'failed')),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    claimed_until   timestamptz,     -- a worker is attempting it until then
    created_at      timestamptz not null default now(),
    completed_at    timestamptz
);

create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, created_at desc);
create index webhook_deliveries_pending_idx on webhook_deliveries (next_attempt_at)
    where status = 'pending';

create table webhook_attempts (
    delivery_id  uuid not null references webhook_deliveries (delivery_id) on delete cascade,
    attempt      integer not null check (attempt >= 1),
    status_code  integer,            -- the endpoint's answer; null when none came
    error        text,               -- why the attempt failed; null when it succeeded
    duration_ms  double precision not null,
    attempted_at timestamptz not null default now(),
    primary key (delivery_id, attempt)
);
