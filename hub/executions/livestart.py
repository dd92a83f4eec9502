"""Starting and stopping live runs: everything checked before anything is written.

Errors name the domain's fields (``strategy``, ``params``, ``symbol``, ``timeframe``,
``account_id``, ``initial_capital``, ``options``); each interface maps them to its words.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, Forbidden
from hub.executions.livebook import live_options
from hub.executions.livetick import TICK_STRATEGIES, tick_params
from hub.executions.model import LIVE_OPTION_KEYS, LiveRequest

if TYPE_CHECKING:
    import asyncpg

    from hub.auth import Identity
    from hub.broker.service import BrokerService
    from hub.datasets.service import DatasetService
    from hub.marketdata.service import MarketDataService


def live_strategies() -> list[str]:
    from engine.live import LIVE_STRATEGIES

    return sorted(LIVE_STRATEGIES | TICK_STRATEGIES)


def check_strategy(strategy: str, params: dict[str, Any]) -> None:
    from engine.live import LiveSignals

    if strategy not in live_strategies():
        raise BadRequest(
            f"strategy {strategy!r} cannot run live; live runs take {', '.join(live_strategies())}",
            field="strategy",
        )
    try:
        if strategy in TICK_STRATEGIES:
            tick_params(params)
        else:
            LiveSignals.create(strategy, params)
    except ValueError as exc:
        raise BadRequest(str(exc), field="params") from None


def check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(LIVE_OPTION_KEYS))
    if unknown:
        raise BadRequest(
            f"unknown option {unknown[0]!r} for a live run; options are "
            f"{', '.join(LIVE_OPTION_KEYS)} (fees and slippage are the account's)",
            field="options",
        )
    try:
        live_options(options)
    except ValueError as exc:
        raise BadRequest(str(exc), field="options") from None


async def checked_task(
    identity: Identity,
    request: LiveRequest,
    broker: BrokerService,
    marketdata: MarketDataService,
    datasets: DatasetService,
) -> dict[str, Any]:
    """The ``execution_tasks`` values of a valid live request; 4xx for anything wrong."""
    if request.mode != "paper":
        raise BadRequest(
            f"no live broker adapter is configured on this hub, so mode {request.mode!r} "
            "cannot trade; use mode 'paper'",
            field="mode",
        )
    check_strategy(request.strategy, request.params)
    try:
        timeframe_ns(request.timeframe)
    except ValueError as exc:
        raise BadRequest(str(exc), field="timeframe") from None
    check_options(request.options)
    if not await marketdata.has_market_data(request.symbol) and (
        request.symbol not in await datasets.symbols()
    ):
        raise BadRequest(
            f"symbol {request.symbol!r} has no market data on this hub (no ticks, no dataset): "
            "ingest its ticks or import its bars first",
            field="symbol",
        )
    account: asyncpg.Record = await broker.account(identity, request.account_id)
    if str(account["owner"]) != identity.user_id:
        raise Forbidden(f"account {request.account_id!r} is not yours", field="account_id")
    if not account["active"]:
        raise BadRequest(f"account {request.account_id!r} is not active", field="account_id")
    capital = request.initial_capital
    if capital is None:
        capital = float(account["cash"])
    if not math.isfinite(capital) or capital <= 0:
        raise BadRequest(
            f"initial capital must be positive, got {capital}", field="initial_capital"
        )
    return {
        "task_type": "live",
        "mode": request.mode,
        "strategy": request.strategy,
        "params": request.params,
        "symbols": [request.symbol],
        "timeframe": request.timeframe,
        "start_at": None,
        "end_at": None,
        "initial_capital": float(capital),
        "options": request.options,
        "exchange": request.exchange,
        "account_id": request.account_id,
        "exchange_secret": request.exchange_secret,
    }
