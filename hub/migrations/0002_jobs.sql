-- Long-running work: one row per job, the fields of Stage1's job object plus an owner.
create table jobs (
    job_id           uuid primary key default gen_random_uuid(),
    owner_id         uuid not null references users (user_id) on delete cascade,
    job_type         text not null,
    status           text not null default 'PENDING'
                     check (status in ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    payload          jsonb not null default '{}'::jsonb,
    progress         bigint not null default 0,
    total            bigint not null default 0,
    result           jsonb,
    error            text,
    attempts         integer not null default 0,
    cancel_requested boolean not null default false,
    -- the job:{id} topic's sequence: every change of the row increments it in the same UPDATE
    version          bigint not null default 1,
    -- refreshed at every progress point; a RUNNING job whose heartbeat is older than the
    -- worker's job timeout lost its worker and is re-run or failed by the reaper
    heartbeat_at     timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    started_at       timestamptz,
    completed_at     timestamptz
);

create index jobs_owner_created_idx on jobs (owner_id, created_at desc);
create index jobs_type_created_idx on jobs (job_type, created_at desc);
create index jobs_status_idx on jobs (status) where status in ('PENDING', 'RUNNING');
