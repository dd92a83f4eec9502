-- A completed run's equity curve, downsampled (LTTB) to a few sizes when the run completes, so
-- that the usual chart request (the whole curve at max_points 500, 1,000 or 2,000) reads a few
-- kilobytes instead of the whole curve. Each row equals LTTB computed on request over the stored
-- curve: sequences, int64 ns times and float64 balances of the kept points as raw little-endian
-- arrays.
--
-- From this version on, execution_equity.ts of a chunk of more than two evenly spaced times holds
-- only the first time and the step (16 bytes; hub/executions/curvecodec.py); every other chunk
-- keeps all its times, as before.
create table execution_equity_lttb (
    execution_id bigint not null references executions (execution_id) on delete cascade,
    max_points   integer not null check (max_points > 2),
    seq          bytea not null,
    ts           bytea not null,
    balance      bytea not null,
    primary key (execution_id, max_points)
);
