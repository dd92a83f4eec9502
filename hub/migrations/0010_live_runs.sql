-- Live (paper) runs: an execution of task_type 'live' trades a strategy on the market data
-- stream through a broker account. The task names that account and the run's mode; a
-- Cracktrader caller's exchange_config is kept encrypted (never returned, never logged).
alter table execution_tasks drop constraint execution_tasks_task_type_check;
alter table execution_tasks add constraint execution_tasks_task_type_check
    check (task_type in ('backtest', 'trading', 'live'));
alter table execution_tasks add column account_id text
    references broker_accounts (account_id) on delete set null;
alter table execution_tasks add column mode text not null default 'backtest'
    check (mode in ('backtest', 'paper', 'live'));
alter table execution_tasks add column exchange_secret bytea;

-- The live host's scan: active live runs.
create index executions_live_active on executions (execution_id)
    where status in ('created', 'running', 'paused');

-- A stop request's say on the run's position: null keeps the run's own close_on_stop option.
alter table executions add column stop_keeps_position boolean;
