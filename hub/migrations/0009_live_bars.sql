-- Bars built from live ticks (hub/marketdata/aggregator.py), beside the imported datasets'
-- bars in the `ts` schema: one row per closed bar of a (symbol, timeframe), `ts` the start of
-- its period (aligned to the epoch, as imported bars are), `ticks` how many ticks made it.
-- A bar is written once: a hub that takes a symbol over re-closes the bars it rebuilt from the
-- tick history with `on conflict do nothing`, so the first write stands.
create table ts.live_bars (
    symbol    text not null,
    timeframe text not null,
    ts        timestamptz not null,
    open      float8 not null,
    high      float8 not null,
    low       float8 not null,
    close     float8 not null,
    volume    float8 not null,
    ticks     integer not null,
    primary key (symbol, timeframe, ts)
);
