"""The Max bot's backtest (ORCA's ``max-backtest``): its point rules over ticks from a CSV file
or the hub's stored ticks of a contract, simulated by ``engine.ticks.simulate_ticks``.

Interfaces hand in a :class:`MaxBacktest`; everything wrong with it is a
:class:`~hub.errors.BadRequest` naming the field (``point_key``, ``dateTo``, ``contract``,
``file``...), and more ticks than :data:`MAX_TICKS` a :class:`~hub.errors.PayloadTooLarge`
(a file) or a BadRequest (a date range: ask for fewer days). A date range covers whole UTC days,
``dateTo`` included. The simulation uses the engine's defaults: one unit a trade, a point is one
price unit (NQ and ES index points), no fees or slippage, so a trade's profit is its price
difference in points.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from engine.records import TradeStatus, trade_dt
from engine.ticks import parse_exit_strategy_key, parse_point_key, simulate_ticks
from hub.errors import BadRequest, NotFound
from hub.marketdata.tickcsv import read_tick_csv
from hub.times import checked_ns

if TYPE_CHECKING:
    from hub.marketdata.service import MarketDataService

# The most ticks one backtest reads: its arrays and the simulator's curves take ~40 bytes a
# tick, so 200 MB at the cap.
MAX_TICKS = 5_000_000
DIRECTIONS = ("long", "short", "both")
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class MaxBacktest:
    """What a backtest asks for: the rules, and the ticks (a file, a date range, or both: then
    the range picks the file's ticks it covers)."""

    contract: str
    direction: str  # long, short or both: ORCA's maxMode
    point_key: str
    exit_strategy_key: str
    date_from: date | None = None
    date_to: date | None = None
    file: BinaryIO | None = None


@dataclass(frozen=True)
class MaxBacktestRun:
    """The closed trades (``trade_dt``, oldest first) and their totals. A position still open
    after the last tick is not a trade yet and is left out; ``max_drawdown`` is the engine's,
    the largest fall of the tick-by-tick equity (open positions marked to each tick) from its
    running peak, as a negative amount (0.0 when equity never fell)."""

    trades: np.ndarray
    ticks: int
    total_trades: int
    winning_trades: int  # pnl > 0
    losing_trades: int  # pnl <= 0
    win_rate: float  # winning / total, 0.0 without trades
    total_profit: float
    max_drawdown: float


async def run_max_backtest(marketdata: MarketDataService, ask: MaxBacktest) -> MaxBacktestRun:
    direction = _check_rules(ask)
    window = _window(ask.date_from, ask.date_to)
    if ask.file is not None:
        ts, price = await asyncio.to_thread(read_tick_csv, ask.file, max_ticks=MAX_TICKS)
        if window is not None:
            start, stop = np.searchsorted(ts, window, side="left")
            ts, price = ts[start:stop], price[start:stop]
    elif window is not None:
        ts, price = await _stored(marketdata, ask.contract, window)
    else:
        raise BadRequest(
            "give the ticks: either a CSV file or both dateFrom and dateTo", field="file"
        )
    return await asyncio.to_thread(_simulate, ts, price, ask, direction)


def _check_rules(ask: MaxBacktest) -> str:
    """The rules, checked before any tick is read."""
    for field, parse, value in (
        ("point_key", parse_point_key, ask.point_key),
        ("exit_strategy_key", parse_exit_strategy_key, ask.exit_strategy_key),
    ):
        try:
            parse(value)
        except ValueError as exc:
            raise BadRequest(str(exc), field=field) from None
    if ask.direction not in DIRECTIONS:
        raise BadRequest(
            f"maxMode must be one of {', '.join(DIRECTIONS)}, got {ask.direction!r}",
            field="maxMode",
        )
    return ask.direction


def _window(date_from: date | None, date_to: date | None) -> tuple[int, int] | None:
    """``[dateFrom 00:00, the day after dateTo 00:00)`` UTC in ns, or None without dates."""
    if date_from is None and date_to is None:
        return None
    if date_from is None or date_to is None:
        given, missing = ("dateTo", "dateFrom") if date_from is None else ("dateFrom", "dateTo")
        raise BadRequest(f"{given} needs {missing} too: give both, or neither", field=missing)
    if date_to < date_from:
        raise BadRequest(
            f"dateTo must not be before dateFrom, got {date_from.isoformat()} to "
            f"{date_to.isoformat()}",
            field="dateTo",
        )
    start = checked_ns(datetime.combine(date_from, datetime.min.time(), UTC), "dateFrom")
    stop = checked_ns(datetime.combine(date_to, datetime.min.time(), UTC) + _DAY, "dateTo")
    assert start is not None and stop is not None
    return start, stop


async def _stored(
    marketdata: MarketDataService, contract: str, window: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    try:
        ts, price = await marketdata.stored_prices(contract, *window, limit=MAX_TICKS + 1)
    except NotFound:
        raise BadRequest(f"no stored ticks of contract {contract!r}", field="contract") from None
    if len(ts) > MAX_TICKS:
        raise BadRequest(
            f"the dates hold more than {MAX_TICKS:,} ticks of {contract!r}, the most a "
            "backtest reads: ask for fewer days",
            field="dateTo",
        )
    return ts, price


def _simulate(
    ts: np.ndarray, price: np.ndarray, ask: MaxBacktest, direction: str
) -> MaxBacktestRun:
    if len(ts) == 0:
        return MaxBacktestRun(np.empty(0, dtype=trade_dt), 0, 0, 0, 0, 0.0, 0.0, 0.0)
    result = simulate_ticks(
        ts,
        price,
        point_key=ask.point_key,
        exit_strategy_key=ask.exit_strategy_key,
        direction=direction,
    )
    trades = result.trades[result.trades["status"] == TradeStatus.Closed]
    pnl = trades["pnl"]
    total = len(trades)
    winning = int(np.count_nonzero(pnl > 0))
    drawdown = float(result.metrics["max_drawdown"])
    return MaxBacktestRun(
        trades=trades,
        ticks=len(ts),
        total_trades=total,
        winning_trades=winning,
        losing_trades=total - winning,
        win_rate=winning / total if total else 0.0,
        total_profit=float(pnl.sum()),
        max_drawdown=-drawdown if drawdown > 0 else 0.0,
    )
