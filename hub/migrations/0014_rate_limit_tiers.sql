-- Sigma Lab's rate-limit tier of each user (seed 001: free, basic, pro, enterprise), set by an
-- admin; what each tier allows lives in hub/ratelimits/tiers.py.
alter table users
    add column tier text not null default 'free'
        check (tier in ('free', 'basic', 'pro', 'enterprise'));
