-- Users, their roles, and API keys stored only as hashes.
create table users (
    user_id       uuid primary key default gen_random_uuid(),
    username      text not null unique check (length(username) between 1 and 64),
    password_hash text,
    role          text not null default 'user' check (role in ('user', 'admin')),
    disabled      boolean not null default false,
    created_at    timestamptz not null default now()
);

create table api_keys (
    key_id       text primary key,          -- the public part of the key, shown in listings
    user_id      uuid not null references users (user_id) on delete cascade,
    key_hash     bytea not null,            -- sha256 of the whole key; the key itself is never stored
    name         text not null default '',
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

create index api_keys_user_idx on api_keys (user_id);
