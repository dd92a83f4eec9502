"""One live run: a bar strategy trading one symbol's ticks through a paper account, written and
streamed exactly like a backtest's execution.

Ticks become bars (:class:`~hub.marketdata.bars.BarBuilder`); each closed bar goes through the
strategy's incremental signals (:class:`engine.live.LiveSignals`) and the bar simulator's own
decision rule (:func:`engine.simulate.decide_target`); a change of side becomes market orders
filled at the tick that closed the bar (:meth:`BrokerService.place_at_tick`), which is the
backtest's ``fill="next_open"``: the first tick of a period is its bar's open. Cash is sized
like the simulator's (vectorbt's) sizing, with the account's fees and slippage.

A run is a pure function of its ticks. Its checkpoint (one per closed bar, written in the same
transaction as the bar's equity point, trades and events) holds the tick sequence it reached,
the forming bar, the indicator state, the position, cash and metrics. A run resumed on another
worker replays the ticks after its checkpoint and derives the same orders again; their client
order ids (``L{execution}-{bar}-{leg}``) make the broker hand back the orders already placed
instead of placing them twice.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.metrics import (
    MetricsAcc,
    acc_bar_nb,
    acc_trade_nb,
    initial_acc,
    metrics_dict,
    metrics_vector_nb,
)
from engine.records import Direction, ExitReason, TradeStatus, trade_dt
from engine.simulate import decide_target
from hub.broker.matching import Tick, quote, slipped
from hub.broker.model import OrderRequest, OrderType, Side
from hub.datasets.timeframes import timeframe_ns
from hub.executions.livebook import REASON_CODES, Holding, live_options, owner_identity
from hub.executions.model import ExecutionStatus
from hub.executions.records import Streams
from hub.marketdata.bars import Bar, BarBuilder

if TYPE_CHECKING:
    import asyncpg

    from hub.broker.service import BrokerService
    from hub.executions.livewriter import LiveWriter
    from hub.subscription import Event

log = logging.getLogger("tradehub.live")

# A ``tick_received`` event at most this often, in market time.
TICK_SAMPLE_NS = 10_000_000_000
_INT_ACC = frozenset({"bars", "exposed", "closed", "wins", "losses"})


class LiveRun:
    """The state machine of one live execution; :class:`hub.executions.livehost.LiveHost`
    feeds it ticks and clock beats and persists what it produced."""

    def __init__(
        self,
        row: asyncpg.Record,
        checkpoint: asyncpg.Record | None,
        streams: Streams,
        writer: LiveWriter,
        broker: BrokerService,
        terms: tuple[float, float],  # the account's (slippage bps, fee rate)
    ) -> None:
        self.row = row
        self.execution_id: int = row["execution_id"]
        self.symbol: str = row["symbols"][0]
        self.account_id: str = row["account_id"]
        self.identity = owner_identity(row)
        self.streams = streams
        self.writer = writer
        self.broker = broker
        self.slippage_bps, fee_rate = terms
        self.direction, self.sizer, self.close_on_stop = live_options(dict(row["options"] or {}))
        self.sizer.fee_rate = fee_rate
        self.capital = float(row["initial_capital"])
        tf = timeframe_ns(row["timeframe"])
        state = checkpoint["state"] if checkpoint is not None else None
        # The run's one checkpoint row, updated in place by each persist (None: not written yet).
        self.checkpoint_id: int | None = None if checkpoint is None else int(checkpoint["id"])
        params = dict(row["params"] or {})
        self.init_strategy(row["strategy"], params, state["signals"] if state else None)
        if state:
            self.bars = BarBuilder.restore(tf, state["bars"])
            self.holding = Holding(**state["holding"])
            self.cash = float(state["cash"])
            acc: dict[str, Any] = {
                k: int(v) if k in _INT_ACC else float(v) for k, v in state["acc"].items()
            }
            self.acc = MetricsAcc(**acc)
            self.tick_seq: int | None = int(state["tick_seq"])
            self.epoch: str | None = state["epoch"]
            self.bar_index = int(state["bar_index"])
            self.first_ts = int(state["first_ts"])
            self.last_close = float(state["last_close"])
            self.sampled_ns = int(state["sampled_ns"])
            self.trade_id = int(state["trade_id"])
        else:
            self.bars = BarBuilder(tf)
            self.holding = Holding()
            self.cash = self.capital
            self.acc = initial_acc(self.capital)
            self.tick_seq = None
            self.epoch = None
            self.bar_index = 0
            self.first_ts = 0
            self.last_close = math.nan
            self.sampled_ns = -TICK_SAMPLE_NS
            self.trade_id = 0
        # The last tick seen: what a stop closes at, and the market clock's reference.
        last = state.get("last_tick") if state else None
        self.last_tick: Tick | None = None if last is None else Tick(**last)
        self.last_tick_wall = time.monotonic()  # when it arrived (or the run resumed)
        self.pending_equity: list[tuple[int, float]] = []
        self.dirty = False  # events or state not yet persisted

    # -- the strategy -----------------------------------------------------------------

    def init_strategy(
        self, name: str, params: dict[str, Any], state: dict[str, Any] | None
    ) -> None:
        from engine.live import LiveSignals

        self.signals = (
            LiveSignals.create(name, params)
            if state is None
            else LiveSignals.restore(name, params, state)
        )

    def strategy_state(self) -> dict[str, Any]:
        return self.signals.state()

    def order_key(self) -> str:
        """What makes an order's client id unique within the run, and the same when a resumed
        run derives the order again: the bar whose close decided it."""
        return str(self.bar_index)

    async def decide(self, bar: Bar, tick: Tick) -> None:
        """A bar strategy trades on each closed bar: its signal, then the simulator's rule."""
        flags = self.signals.update(bar.ts, bar.open, bar.high, bar.low, bar.close)
        side = self.holding.side
        target, _reason = decide_target(flags, side, self.direction, True)
        if target != side:
            await self.move(target, tick, bar)

    # -- the resumable state ----------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "signals": self.strategy_state(),
            "bars": self.bars.state(),
            "holding": asdict(self.holding),
            "cash": self.cash,
            "acc": self.acc._asdict(),
            "tick_seq": self.tick_seq,
            "epoch": self.epoch,
            "bar_index": self.bar_index,
            "first_ts": self.first_ts,
            "last_close": self.last_close if math.isfinite(self.last_close) else "nan",
            "sampled_ns": self.sampled_ns,
            "trade_id": self.trade_id,
            "last_tick": None if self.last_tick is None else asdict(self.last_tick),
        }

    @property
    def equity(self) -> float:
        price = self.last_close if math.isfinite(self.last_close) else 0.0
        return self.cash + self.holding.units * price

    def metrics(self) -> dict[str, float]:
        unrealized = 0.0
        h = self.holding
        if h.units != 0.0 and math.isfinite(self.last_close):
            unrealized = h.units * (self.last_close - h.entry_price) - h.entry_fees
        vector = metrics_vector_nb(
            self.acc, self.capital, self.first_ts, self.last_ts(), unrealized
        )
        return metrics_dict(vector)

    def last_ts(self) -> int:
        return self.last_tick.ts if self.last_tick is not None else self.first_ts

    # -- ticks and bars ---------------------------------------------------------------

    async def on_tick(self, event: Event) -> None:
        data = event.data()
        price = float(data["price"])
        tick = Tick(
            seq=event.seq,
            epoch=event.epoch,
            ts=int(data.get("ts") or 0),
            price=price,
            size=None,
            bid=data.get("bid"),
            ask=data.get("ask"),
            recv_ns=int(data.get("recv_ns") or 0),
        )
        closed = self.bars.on_tick(tick.ts, price, data.get("size"))
        if closed is not None:
            await self.on_bar(closed, tick)
        self.last_tick = tick
        self.last_tick_wall = time.monotonic()
        self.tick_seq, self.epoch = event.seq, event.epoch
        if tick.ts - self.sampled_ns >= TICK_SAMPLE_NS:
            self.sampled_ns = tick.ts
            self.streams.event(
                "tick_received", tick.ts, {"symbol": self.symbol, "price": price, "seq": event.seq}
            )
        self.dirty = True

    async def on_clock(self, delay_ns: int) -> None:
        """Close a bar whose period ended ``delay_ns`` ago in market time without a tick
        (market time: the last tick's time plus the wall time since it arrived)."""
        if self.last_tick is None:
            return
        now = self.last_tick.ts + int((time.monotonic() - self.last_tick_wall) * 1e9)
        closed = self.bars.on_clock(now - delay_ns)
        if closed is not None:
            await self.on_bar(closed, self.last_tick)

    async def on_bar(self, bar: Bar, tick: Tick) -> None:
        """A closed bar: its equity point, then the signal, then the orders at ``tick``."""
        if self.bar_index == 0:
            self.first_ts = bar.ts
        self.last_close = bar.close
        equity = self.equity
        self.acc = acc_bar_nb(self.acc, equity, self.holding.units != 0.0)
        self.pending_equity.append((bar.ts, equity))
        self.bar_index += 1
        await self.decide(bar, tick)
        self.dirty = True

    # -- orders -----------------------------------------------------------------------

    async def move(self, target: int, tick: Tick, bar: Bar | None, reason: str = "signal") -> None:
        """Close the holding (if any), then open ``target`` (if not flat), at ``tick``."""
        h = self.holding
        signal_price = bar.close if bar is not None else tick.price
        if h.side != 0:
            exit_side = Side.SELL if h.side > 0 else Side.BUY
            self.streams.event(
                "strategy_signal",
                tick.ts,
                {"signal": exit_side.value, "reason": reason, "price": signal_price},
            )
            await self._close(exit_side, tick, reason)
        if target != 0:
            entry_side = Side.BUY if target > 0 else Side.SELL
            self.streams.event(
                "strategy_signal",
                tick.ts,
                {"signal": entry_side.value, "layer_number": 0, "price": signal_price},
            )
            await self._open(entry_side, tick)

    async def _place(self, side: Side, units: float, tick: Tick, leg: str) -> Any:
        request = OrderRequest(
            account_id=self.account_id,
            symbol=self.symbol,
            side=side,
            type=OrderType.MARKET,
            quantity=units,
            client_order_id=f"L{self.execution_id}-{self.order_key()}-{leg}",
        )
        row = await self.broker.place_at_tick(self.identity, request, tick)
        if row["status"] == "rejected" or not row["filled_quantity"]:
            message = f"order {row['order_id']} ({side.value} {units:g} {self.symbol}) was " + (
                f"rejected: {row['reject_reason']}" if row["status"] == "rejected" else "not filled"
            )
            self.streams.event("error_occurred", tick.ts, {"message": message})
            return None
        return row

    async def _open(self, side: Side, tick: Tick) -> None:
        sign = 1 if side is Side.BUY else -1
        px = slipped(side, quote(side, tick), self.slippage_bps)
        units = self.sizer.units(sign, tick.price, px, self.cash)
        if units <= 0.0:
            self.streams.event(
                "error_occurred", tick.ts, {"message": f"no cash to {side.value} {self.symbol}"}
            )
            return
        row = await self._place(side, units, tick, "e")
        if row is None:
            return
        qty, price = float(row["filled_quantity"]), float(row["average_price"])
        fee = qty * price * self.sizer.fee_rate
        self.cash -= sign * qty * price + fee
        self.holding = Holding(sign * qty, self.bar_index, tick.ts, price, fee)
        self.streams.event(
            "trade_executed",
            tick.ts,
            {
                "direction": "long" if sign > 0 else "short",
                "units": qty,
                "price": price,
                "action": "open",
                "order_id": str(row["order_id"]),
            },
        )

    async def _close(self, side: Side, tick: Tick, reason: str) -> None:
        h = self.holding
        row = await self._place(side, abs(h.units), tick, "x")
        if row is None:
            return
        qty, price = float(row["filled_quantity"]), float(row["average_price"])
        fee = qty * price * self.sizer.fee_rate
        sign = 1 if h.units > 0 else -1
        self.cash += sign * qty * price - fee
        pnl = sign * qty * (price - h.entry_price) - h.entry_fees - fee
        self.acc = acc_trade_nb(self.acc, pnl)
        record = np.zeros(1, dtype=trade_dt)
        record[0] = (
            self.trade_id, h.entry_index, self.bar_index, h.entry_ts, tick.ts, h.entry_price,
            price, qty, Direction.Long if sign > 0 else Direction.Short, TradeStatus.Closed,
            REASON_CODES.get(reason, ExitReason.Signal), 0, pnl,
            pnl / (qty * h.entry_price) if h.entry_price else 0.0,
            h.entry_fees + fee,
        )  # fmt: skip
        self.trade_id += 1
        self.holding = Holding()
        self.streams.event(
            "trade_executed",
            tick.ts,
            {
                "direction": "long" if sign > 0 else "short",
                "units": qty,
                "price": price,
                "action": "close",
                "pnl": pnl,
                "order_id": str(row["order_id"]),
            },
        )
        self.streams.add_trades(record, with_events=False)

    async def close_position(self) -> None:
        """Stop's default: close the holding at the last tick the run saw."""
        if self.holding.side != 0 and self.last_tick is not None:
            await self.move(0, self.last_tick, None, reason="stopped")

    # -- persisting -------------------------------------------------------------------

    async def persist(self, equity_seq: int) -> tuple[int, bool]:
        """Write what the run produced since the last persist in one transaction; returns the
        new equity sequence and whether a stop was requested."""
        points = self.pending_equity
        stop, self.checkpoint_id = await self.writer.persist(
            self.streams,
            self.checkpoint_id,
            equity_seq,
            points,
            self.bar_index,
            self.metrics(),
            self.state(),
        )
        self.pending_equity = []
        self.dirty = False
        return equity_seq + len(points), stop

    @property
    def status(self) -> ExecutionStatus:
        return ExecutionStatus(self.row["status"])
