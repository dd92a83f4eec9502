"""What a chunk of a backtest adds to an execution's streams: rows to write and payloads to
publish, with the sequences they take.

Trades closed in a chunk become trade rows and four events each (the entry's signal and fill,
the exit's signal and fill); status changes become events too. Sequences are only taken by what
is written: a chunk whose transaction fails is rewound, one that committed never is.

A chunk is built column by column: prices are formatted for the whole chunk at once, each
event's JSON is one template filled per trade, and the rows go to Postgres as binary COPY
built from those columns (``copyrows``). What the bus carries is built after the commit, and
only for the streams somebody listens to; it is byte for byte what the history sources build
from the stored rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import orjson

from engine.records import Direction, TradeStatus
from hub.executions import copyrows
from hub.executions.documents import (
    EXIT_REASONS,
    event_jsons,
    iso_times,
    num_tokens,
    number_tokens,
    trade_doc,
    trade_json,
)
from hub.executions.topics import stream_topic

Batch = tuple[str, int, list[bytes]]  # (topic, first sequence, payloads)

SIGNAL, EXECUTED = "strategy_signal", "trade_executed"
ENTRY_SIGNAL = b'{"signal":"%s","layer_number":%s,"price":%s}'
ENTRY_FILL = b'{"direction":"%s","units":%s,"price":%s,"action":"open"}'
EXIT_SIGNAL = b'{"signal":"%s","reason":"%s","price":%s}'
EXIT_FILL = b'{"direction":"%s","units":%s,"price":%s,"action":"close","pnl":%s}'


class EventBlock(NamedTuple):
    first_seq: int
    types: list[str]
    ts_ns: np.ndarray
    bodies: list[bytes]  # each event's JSON
    rows: bytes  # their binary COPY rows


class TradeBlock(NamedTuple):
    first_seq: int
    records: np.ndarray  # trade_dt
    details: list[dict[str, Any]] | None  # None: {"layer_number": layer}
    rows: bytes


class Drained(NamedTuple):
    """What a chunk added to the streams, to write in one transaction and then publish."""

    mark: tuple[int, int]
    events: list[EventBlock]
    trades: list[TradeBlock]
    last_event: int
    last_trade: int
    committed: list[bool]  # set once its transaction commits: a committed chunk is never rewound
    streams: Streams

    def events_copy(self) -> bytes | None:
        return copyrows.payload(b.rows for b in self.events) if self.events else None

    def trades_copy(self) -> bytes | None:
        return copyrows.payload(b.rows for b in self.trades) if self.trades else None

    def topics(self) -> list[str]:
        execution_id = self.streams.execution_id
        return [stream_topic(execution_id, "events"), stream_topic(execution_id, "trades")]

    def batches(self, heard: set[str] | None = None) -> list[Batch]:
        """The payloads of the streams in ``heard`` (all when None), as the bus carries them."""
        events_topic, trades_topic = self.topics()
        out: list[Batch] = []
        if self.events and (heard is None or events_topic in heard):
            strategy = self.streams.strategy
            payloads = [
                p
                for b in self.events
                for p in event_jsons(b.types, strategy, iso_times(b.ts_ns), b.bodies)
            ]
            out.append((events_topic, self.mark[0], payloads))
        if self.trades and (heard is None or trades_topic in heard):
            instrument = self.streams.instrument
            payloads = [p for b in self.trades for p in trade_payloads(instrument, b)]
            out.append((trades_topic, self.mark[1], payloads))
        return out


def trade_payloads(instrument: str, block: TradeBlock) -> list[bytes]:
    """The trades of ``block`` as documents (``trade_doc``), times formatted at once."""
    records = block.records
    entry_iso, exit_iso = iso_times(records["entry_ts"]), iso_times(records["exit_ts"])
    columns = {name: records[name].tolist() for name in records.dtype.names or ()}
    out = []
    for i in range(len(records)):
        direction = "long" if columns["direction"][i] == Direction.Long else "short"
        doc = trade_doc(
            instrument=instrument,
            direction=direction,
            status="open" if columns["status"][i] == TradeStatus.Open else "closed",
            entry_ts=entry_iso[i],
            entry_price=columns["entry_price"][i],
            units=columns["units"][i],
            exit_ts=exit_iso[i],
            exit_price=columns["exit_price"][i],
            pnl=columns["pnl"][i],
            fees=columns["fees"][i],
            ret=columns["return"][i],
            exit_reason=EXIT_REASONS.get(columns["exit_reason"][i], "signal"),
            entry_index=columns["entry_index"][i],
            exit_index=columns["exit_index"][i],
            details=block.details[i]
            if block.details is not None
            else {"layer_number": columns["layer"][i]},
        )
        out.append(trade_json(doc))
    return out


class Streams:
    """One execution's sequences and what a chunk adds to each stream."""

    def __init__(
        self, execution_id: int, instrument: str, strategy: str, event_seq: int, trade_seq: int
    ) -> None:
        self.execution_id = execution_id
        self.instrument = instrument
        self.strategy = strategy
        self.event_seq = event_seq
        self.trade_seq = trade_seq
        self.event_blocks: list[EventBlock] = []
        self.trade_blocks: list[TradeBlock] = []
        self.first_event = event_seq + 1
        self.first_trade = trade_seq + 1

    def event(self, event_type: str, ts_ns: int, body: dict[str, Any]) -> None:
        self._events([event_type], np.array([ts_ns], dtype=np.int64), [orjson.dumps(body)])

    def _events(self, types: list[str], ts_ns: np.ndarray, bodies: list[bytes]) -> None:
        first = self.event_seq + 1
        rows = copyrows.events_copy(self.execution_id, self.strategy, first, types, ts_ns, bodies)
        self.event_blocks.append(EventBlock(first, types, ts_ns, bodies, rows))
        self.event_seq += len(bodies)

    def add_trades(
        self,
        records: np.ndarray,
        details: list[dict[str, Any]] | None = None,
        *,
        with_events: bool = True,
    ) -> None:
        """The trades a chunk closed (or the last, open one): rows, and four events each (the
        entry's signal and fill, the exit's signal and fill; an open trade has no exit yet).
        ``with_events=False``: rows only (a live run sent each event as it happened)."""
        n = len(records)
        if not n:
            return
        if not with_events:
            self._trade_rows(records, details)
            return
        long = (records["direction"] == Direction.Long).tolist()
        closed = records["status"] != TradeStatus.Open
        directions = ["long" if x else "short" for x in long]
        reasons = [EXIT_REASONS.get(r, "signal") for r in records["exit_reason"].tolist()]
        if details is None:
            layers = records["layer"].tolist()
            layer_tokens = number_tokens(layers)
            detail_texts = [b'{"layer_number":%d}' % layer for layer in layers]
        else:
            layer_tokens = [orjson.dumps(d.get("layer_number", 0)) for d in details]
            detail_texts = [orjson.dumps(d) for d in details]
        entry_price = num_tokens(records["entry_price"])
        exit_price = num_tokens(records["exit_price"])
        pnl = num_tokens(records["pnl"])
        units = number_tokens(records["units"].tolist())
        sides = [(b"buy", b"sell") if x else (b"sell", b"buy") for x in long]
        names = [d.encode() for d in directions]
        quads = zip(
            [ENTRY_SIGNAL % v for v in zip((s[0] for s in sides), layer_tokens, entry_price)],
            [ENTRY_FILL % v for v in zip(names, units, entry_price)],
            [EXIT_SIGNAL % (s[1], r.encode(), p) for s, r, p in zip(sides, reasons, exit_price)],
            [EXIT_FILL % v for v in zip(names, units, exit_price, pnl)],
            strict=True,
        )
        entry_ts, exit_ts = records["entry_ts"], records["exit_ts"]
        times = np.stack([entry_ts, entry_ts, exit_ts, exit_ts], axis=1).ravel()
        if closed.all():
            bodies = [body for quad in quads for body in quad]
            types = [SIGNAL, EXECUTED, SIGNAL, EXECUTED] * n
        else:  # an open trade has no exit events
            keep = np.stack([np.ones(n, bool), np.ones(n, bool), closed, closed], axis=1).ravel()
            flags = keep.tolist()
            bodies = [b for b, k in zip((b for q in quads for b in q), flags, strict=True) if k]
            types = [t for t, k in zip([SIGNAL, EXECUTED] * (2 * n), flags, strict=True) if k]
            times = times[keep]
        self._trade_rows(records, details, directions, reasons, detail_texts)
        self._events(types, times, bodies)

    def _trade_rows(
        self,
        records: np.ndarray,
        details: list[dict[str, Any]] | None,
        directions: list[str] | None = None,
        reasons: list[str] | None = None,
        detail_texts: list[bytes] | None = None,
    ) -> None:
        n = len(records)
        if directions is None:
            directions = [
                "long" if x else "short" for x in (records["direction"] == Direction.Long).tolist()
            ]
        if reasons is None:
            reasons = [EXIT_REASONS.get(r, "signal") for r in records["exit_reason"].tolist()]
        if detail_texts is None:
            detail_texts = (
                [b'{"layer_number":%d}' % layer for layer in records["layer"].tolist()]
                if details is None
                else [orjson.dumps(d) for d in details]
            )
        closed = records["status"] != TradeStatus.Open
        statuses = ["closed" if x else "open" for x in closed.tolist()]
        first = self.trade_seq + 1
        rows = copyrows.trades_copy(
            self.execution_id,
            self.instrument,
            first,
            records,
            directions,
            statuses,
            reasons,
            detail_texts,
        )
        self.trade_blocks.append(TradeBlock(first, records, details, rows))
        self.trade_seq += n

    def rewind(self) -> None:
        """Forget what was added since the last drain whose transaction failed: sequences
        are only taken by what is written."""
        self.event_seq, self.trade_seq = self.first_event - 1, self.first_trade - 1

    def mark(self) -> tuple[int, int]:
        return self.first_event, self.first_trade

    def restore(self, mark: tuple[int, int]) -> None:
        self.first_event, self.first_trade = mark
        self.rewind()
        self.event_blocks, self.trade_blocks = [], []

    def take(self) -> Drained:
        """Everything added since the last take, with the sequences it ends at."""
        drained = Drained(
            self.mark(),
            self.event_blocks,
            self.trade_blocks,
            self.event_seq,
            self.trade_seq,
            [False],
            self,
        )
        self.event_blocks, self.trade_blocks = [], []
        self.first_event, self.first_trade = self.event_seq + 1, self.trade_seq + 1
        return drained
