"""A live run of a tick strategy: ORCA's Max bot (``max_points``) on every tick.

The engine's tick simulator (:class:`engine.ticks.TickSimulator`) is fed each tick as it
arrives; whenever the side it holds changes (an entry, or a take-profit or stop-loss exit), the
run moves its own holding to that side with market orders filled at that tick, sized at the
strategy's ``units``. Its bars (of the run's timeframe) only sample the equity curve. The
simulator's state is part of the run's checkpoint, so a resumed run re-derives the same orders,
whose client ids name the tick that decided them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.simulate import Sizing
from hub.executions.live import LiveRun

if TYPE_CHECKING:
    from hub.broker.matching import Tick
    from hub.marketdata.bars import Bar
    from hub.subscription import Event

TICK_STRATEGIES = frozenset({"max_points"})
_REASONS = {2: "stop_loss", 3: "take_profit"}  # engine.records.ExitReason


def tick_params(params: dict[str, Any]) -> dict[str, Any]:
    """``max_points``' parameters checked (ValueError naming what is wrong), defaults filled."""
    from engine.ticks import MAX_POINTS_PARAMS, tick_config

    names = {p["name"] for p in MAX_POINTS_PARAMS}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ValueError(f"unknown max_points parameter {unknown[0]!r}; it takes {sorted(names)}")
    values = {p["name"]: params.get(p["name"], p["default"]) for p in MAX_POINTS_PARAMS}
    tick_config(
        point_key=values["point_key"],
        exit_strategy_key=values["exit_strategy_key"],
        point_size=values["point_size"],
        units=values["units"],
    )
    return values


class TickLiveRun(LiveRun):
    def init_strategy(
        self, name: str, params: dict[str, Any], state: dict[str, Any] | None
    ) -> None:
        from engine.ticks import TickSimulator, TickState

        values = tick_params(params)
        direction = dict(self.row["options"] or {}).get("direction", "both")
        restored = None
        if state is not None:
            fields: dict[str, Any] = {
                k: float(v) if isinstance(v, str) else v for k, v in state.items()
            }
            restored = TickState(**fields)
        self.sim = TickSimulator(
            point_key=values["point_key"],
            exit_strategy_key=values["exit_strategy_key"],
            point_size=values["point_size"],
            direction=direction,
            units=values["units"],
            initial_capital=self.capital,
            state=restored,
        )
        self.sizer.sizing = Sizing.Units
        self.sizer.size = float(values["units"])

    def strategy_state(self) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else repr(v))
            for k, v in self.sim.state._asdict().items()
        }

    def order_key(self) -> str:
        return f"t{self.sim.state.n_ticks}"

    async def decide(self, bar: Bar, tick: Tick) -> None:
        """Bars only sample the equity of a tick strategy."""

    async def on_tick(self, event: Event) -> None:
        await super().on_tick(event)
        tick = self.last_tick
        assert tick is not None
        if tick.ts < self.sim.state.last_ts:
            return  # a late tick: the simulator never goes back in time
        chunk = self.sim.feed(
            np.array([tick.ts], dtype=np.int64), np.array([tick.price], dtype=np.float64)
        )
        position = self.sim.state.position
        target = 0 if position == 0.0 else (1 if position > 0 else -1)
        if target != self.holding.side:
            reason = "signal"
            if len(chunk.trades):
                reason = _REASONS.get(int(chunk.trades["exit_reason"][-1]), "signal")
            await self.move(target, tick, None, reason=reason)
