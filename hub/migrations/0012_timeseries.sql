-- The time-series domain (hub/timeseries/): the generic measurements of the `ts` schema that
-- CSV imports and line-protocol ingest write, and the read-only role the SQL endpoints run as.

-- The measurements hub/timeseries/store.py created: only these may be written by imports and
-- ingest (the other `ts` tables, datasets' bars, ticks and live bars, belong to their domains).
create table timeseries_measurements (
    measurement      text primary key check (measurement ~ '^[a-z][a-z0-9_]{0,62}$'),
    timestamp_column text not null,
    created_by       uuid references users (user_id) on delete set null,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);

-- CSV imports that committed, by job, written in the import's own transaction: a re-run of a job
-- whose worker died after that commit finds its rows loaded and does not load them twice.
create table timeseries_imports (
    job_id      uuid primary key references jobs (job_id) on delete cascade,
    measurement text not null,
    result      jsonb not null,
    created_at  timestamptz not null default now()
);

-- The role POST /api/questdb/query and /export (and GraphQL `sql`) run as, by `set local role`
-- inside a read-only transaction: it may read the `ts` schema's tables (today's and, through
-- default privileges, those created later by the role running this migration: the hub's) and
-- nothing else; the tables of `public` (users, api_keys, jobs...) grant it nothing.
-- Roles belong to the cluster, so another database's migration may have made it already.
-- `set_config` is taken from PUBLIC: with it a query could set `role` back to the session's
-- own (`set local role` is undone as easily as it is done). That needs a superuser; without one
-- the role stays unable to be used and the SQL endpoints refuse to run (hub/timeseries/sql.py
-- checks), until a superuser runs the statements below.
do $$
declare
    is_superuser boolean := (select rolsuper from pg_roles where rolname = current_user);
begin
    begin
        create role tradehub_ts_reader nologin;
    exception
        when duplicate_object or unique_violation then
            null;
        when insufficient_privilege then
            raise warning 'tradehub: cannot create role tradehub_ts_reader (%): the SQL endpoints stay off', sqlerrm;
            return;
    end;
    grant usage on schema ts to tradehub_ts_reader;
    grant select on all tables in schema ts to tradehub_ts_reader;
    alter default privileges in schema ts grant select on tables to tradehub_ts_reader;
    if is_superuser then
        revoke execute on function pg_catalog.set_config(text, text, boolean) from public;
    else
        begin
            grant tradehub_ts_reader to current_user;
        exception when others then
            raise warning 'tradehub: cannot grant tradehub_ts_reader to %: %', current_user, sqlerrm;
        end;
        raise warning 'tradehub: only a superuser can revoke set_config from PUBLIC: the SQL endpoints stay off until one does';
    end if;
end
$$;
