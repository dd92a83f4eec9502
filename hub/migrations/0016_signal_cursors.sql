-- Signals (hub/signals/): how far each model has read its ticker's bars. The evaluator moves a
-- model's cursor in the same transaction as the signals it emits for the bars it passed, so a
-- bar is judged once, whichever process (or attempt) judged it.
create table research.signal_cursors (
    model_id    text primary key references research.models (model_id) on delete cascade,
    version_id  text not null,        -- the trained version that judged the bars up to here
    last_bar_ts timestamptz not null, -- the start of the newest bar judged
    updated_at  timestamptz not null default now()
);

-- The signals leaderboard and GET /signals read by time across models.
create index research_signals_bar_ts_idx on research.signals (bar_ts);
create index research_signals_active_idx on research.signals (model_id) where status = 'active';
