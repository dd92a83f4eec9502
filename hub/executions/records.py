"""What a chunk of a backtest adds to an execution's streams: rows to write and payloads to
publish, with the sequences they take.

Trades closed in a chunk become trade rows and four events each (the entry's signal and fill,
the exit's signal and fill); status changes become events too. Sequences are only taken by what
is written: a chunk whose transaction fails is rewound, one that committed never is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import orjson

from engine.records import Direction, TradeStatus
from hub.executions.documents import (
    EXIT_REASONS,
    event_json,
    iso_times,
    trade_doc,
    trade_json,
    utc_datetimes,
)
from hub.executions.topics import stream_topic
from hub.times import datetime_of_ns, iso_ns

Batch = tuple[str, int, list[bytes]]  # (topic, first sequence, payloads)


class Drained(NamedTuple):
    mark: tuple[int, int]
    events: list[tuple[Any, ...]]
    trades: list[tuple[Any, ...]]
    batches: list[Batch]
    last_event: int
    last_trade: int
    committed: list[bool]  # set once its transaction commits: a committed chunk is never rewound


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
        self.event_rows: list[tuple[Any, ...]] = []
        self.event_payloads: list[bytes] = []
        self.trade_rows: list[tuple[Any, ...]] = []
        self.trade_payloads: list[bytes] = []
        self.first_event = event_seq + 1
        self.first_trade = trade_seq + 1

    def event(
        self,
        event_type: str,
        ts_ns: int,
        body: dict[str, Any],
        *,
        stamp: tuple[str, datetime] | None = None,
    ) -> None:
        self.event_seq += 1
        encoded = orjson.dumps(body)
        iso_text, when = stamp if stamp is not None else (iso_ns(ts_ns), datetime_of_ns(ts_ns))
        self.event_rows.append((self.event_seq, event_type, self.strategy, when, encoded.decode()))
        self.event_payloads.append(event_json(event_type, self.strategy, iso_text, encoded))

    def add_trades(self, records: np.ndarray, details: list[dict[str, Any]] | None = None) -> None:
        """The trades a chunk closed (or the last, open one): rows, payloads, and four events each
        (the entry's signal and fill, the exit's signal and fill; an open trade has no exit yet).
        Times are formatted for the whole chunk at once."""
        if not len(records):
            return
        entry_iso, exit_iso = iso_times(records["entry_ts"]), iso_times(records["exit_ts"])
        entry_dt, exit_dt = utc_datetimes(records["entry_ts"]), utc_datetimes(records["exit_ts"])
        columns = {
            name: records[name].tolist()
            for name in (
                "direction",
                "status",
                "entry_price",
                "exit_price",
                "units",
                "pnl",
                "return",
                "fees",
                "exit_reason",
                "entry_index",
                "exit_index",
                "layer",
                "entry_ts",
                "exit_ts",
            )
        }
        for i in range(len(records)):
            direction = "long" if columns["direction"][i] == Direction.Long else "short"
            status = "open" if columns["status"][i] == TradeStatus.Open else "closed"
            exit_reason = EXIT_REASONS.get(columns["exit_reason"][i], "signal")
            doc = trade_doc(
                instrument=self.instrument,
                direction=direction,
                status=status,
                entry_ts=entry_iso[i],
                entry_price=columns["entry_price"][i],
                units=columns["units"][i],
                exit_ts=exit_iso[i],
                exit_price=columns["exit_price"][i],
                pnl=columns["pnl"][i],
                fees=columns["fees"][i],
                ret=columns["return"][i],
                exit_reason=exit_reason,
                entry_index=columns["entry_index"][i],
                exit_index=columns["exit_index"][i],
                details=details[i]
                if details is not None
                else {"layer_number": columns["layer"][i]},
            )
            self.trade_seq += 1
            self.trade_rows.append(
                (
                    self.trade_seq,
                    self.instrument,
                    direction,
                    status,
                    doc["entry_index"],
                    doc["exit_index"],
                    entry_dt[i],
                    exit_dt[i],
                    columns["entry_price"][i],
                    columns["exit_price"][i],
                    columns["units"][i],
                    columns["pnl"][i],
                    columns["return"][i],
                    columns["fees"][i],
                    exit_reason,
                    doc["details"],
                )
            )
            self.trade_payloads.append(trade_json(doc))
            entry_side, exit_side = ("buy", "sell") if direction == "long" else ("sell", "buy")
            entry_stamp, exit_stamp = (entry_iso[i], entry_dt[i]), (exit_iso[i], exit_dt[i])
            layer = doc["details"].get("layer_number", 0)
            self.event(
                "strategy_signal",
                columns["entry_ts"][i],
                {"signal": entry_side, "layer_number": layer, "price": doc["entry_price"]},
                stamp=entry_stamp,
            )
            self.event(
                "trade_executed",
                columns["entry_ts"][i],
                {
                    "direction": direction,
                    "units": doc["units"],
                    "price": doc["entry_price"],
                    "action": "open",
                },
                stamp=entry_stamp,
            )
            if status == "closed":
                self.event(
                    "strategy_signal",
                    columns["exit_ts"][i],
                    {"signal": exit_side, "reason": exit_reason, "price": doc["exit_price"]},
                    stamp=exit_stamp,
                )
                self.event(
                    "trade_executed",
                    columns["exit_ts"][i],
                    {
                        "direction": direction,
                        "units": doc["units"],
                        "price": doc["exit_price"],
                        "action": "close",
                        "pnl": doc["pnl"],
                    },
                    stamp=exit_stamp,
                )

    def rewind(self) -> None:
        """Forget what was added since the last drain whose transaction failed: sequences
        are only taken by what is written."""
        self.event_seq, self.trade_seq = self.first_event - 1, self.first_trade - 1

    def mark(self) -> tuple[int, int]:
        return self.first_event, self.first_trade

    def restore(self, mark: tuple[int, int]) -> None:
        self.first_event, self.first_trade = mark
        self.rewind()
        self.event_rows, self.event_payloads, self.trade_rows, self.trade_payloads = [], [], [], []

    def take(self) -> Drained:
        """Everything added since the last take, with the sequences it ends at."""
        mark = self.mark()
        events, trades, batches = self.drain()
        return Drained(mark, events, trades, batches, self.event_seq, self.trade_seq, [False])

    def drain(
        self,
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Batch]]:
        batches = [
            (stream_topic(self.execution_id, "events"), self.first_event, self.event_payloads),
            (stream_topic(self.execution_id, "trades"), self.first_trade, self.trade_payloads),
        ]
        events, trades = self.event_rows, self.trade_rows
        self.event_rows, self.event_payloads, self.trade_rows, self.trade_payloads = [], [], [], []
        self.first_event, self.first_trade = self.event_seq + 1, self.trade_seq + 1
        return events, trades, batches
