-- The bus's durable side: per-topic sequence counters and a generic durable event log.
--
-- A writer takes a topic's next sequences by incrementing its counter inside the transaction
-- that writes the events; the row lock it holds until commit makes commit order equal
-- sequence order, so a subscriber that sees sequence N live finds every earlier one in history.
create table topic_sequences (
    topic    text primary key,
    last_seq bigint not null
);

create table topic_events (
    topic      text not null,
    seq        bigint not null,
    data       json not null,          -- json, not jsonb: history replays the exact bytes published
    created_at timestamptz not null default now(),
    primary key (topic, seq)
);
