"""What ORCA's API (seed 002) takes and answers, for ``/openapi.json``: the HFT trading
filters as ``rest/orca.py`` enforces them, the Max bot's form as ``rest/orca_bots.py`` validates
it, and each endpoint's answer (see ``rest/models.py`` for how the families' models are used)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from hub.topics import SYMBOL
from rest.models import Check, HealthStatus

# -- ORCA trading (seed 002) --------------------------------------------------------------

# account_ids: up to 100 of the broker's account ids (D10000001), comma-separated.
MAX_ACCOUNT_IDS = 100
ACCOUNT_IDS = rf"^ *D[0-9]{{1,18}} *(, *D[0-9]{{1,18}} *){{0,{MAX_ACCOUNT_IDS - 1}}}$"
MAX_ACCOUNT_NAME = 64
_FLAG = "true or false (1 or 0)"


class TradingChecks(BaseModel):
    redis: Check = Field(description="the cache")
    broker: Check = Field(description="the broker's books (Postgres)")


class TradingHealth(BaseModel):
    """``degraded``: Redis is down, so nothing is cached but every read still answers;
    ``unhealthy`` (503): the broker's books do not answer."""

    status: HealthStatus
    timestamp: float = Field(description="epoch seconds")
    datetime_: str = Field(alias="datetime", description="UTC, no zone: 2025-01-21T20:00:00.000000")
    checks: TradingChecks
    response_time_ms: float


class TradingFilter(BaseModel):
    account_ids: str | None = Field(
        None,
        pattern=ACCOUNT_IDS,
        description="only these accounts, comma-separated (D10000001,D10000002): another "
        "user's is a 403, an unknown one a 404",
    )
    account_name: str | None = Field(
        None,
        max_length=MAX_ACCOUNT_NAME,
        description="only the caller's account of this name (404 when there is none); absent: "
        "all of the caller's accounts (seed 002's PAAPEX2666680000001 applies only when sent)",
    )


class AccountsQuery(TradingFilter):
    use_cache: bool = Field(True, description=f"answer from a copy up to 300 s old: {_FLAG}")


class PositionsQuery(TradingFilter):
    use_cache: bool = Field(False, description=f"answer from a copy up to 1 s old: {_FLAG}")


class OrdersQuery(TradingFilter):
    use_cache: bool = Field(False, description=f"answer from a copy up to 1 s old: {_FLAG}")


class BalancesQuery(TradingFilter):
    use_cache: bool = Field(True, description=f"answer from a copy up to 2 s old: {_FLAG}")


class SnapshotQuery(TradingFilter):
    include_accounts: bool = Field(True, description=_FLAG)
    include_positions: bool = Field(True, description=_FLAG)
    include_orders: bool = Field(True, description=_FLAG)
    include_balances: bool = Field(True, description=_FLAG)
    use_cache: bool = Field(False, description=f"each part from its endpoint's cache: {_FLAG}")


class TradingAnswer(BaseModel):
    count: int
    cached: bool = Field(description="true only when the answer came from the cache (Redis)")
    timestamp: float = Field(description="epoch seconds of the broker read the answer holds")


class TradingAccount(BaseModel):
    name: str
    id: str
    active: bool


class TradingAccounts(TradingAnswer):
    accounts: list[TradingAccount]


class TradingPosition(BaseModel):
    id: str
    account_id: str
    instrument: str
    quantity: float = Field(gt=0, description="unsigned (see side); whole numbers as integers")
    side: Literal["long", "short"]
    avg_price: float
    unrealized_pnl: float = Field(description="marked to the symbol's last tick")


class TradingPositions(TradingAnswer):
    positions: list[TradingPosition]


class TradingPositionIds(TradingAnswer):
    position_ids: list[str]


class TradingOrder(BaseModel):
    order_id: str
    account_id: str
    instrument: str
    side: Literal["Buy", "Sell"]
    quantity: float = Field(description="as ordered (filled or not); whole numbers as integers")
    price: float | None = Field(description="the limit price, a stop's stop price; market: null")
    status: Literal["Working", "Pending", "PartiallyFilled"] = Field(
        description="Pending: a stop waiting for its trigger"
    )
    order_type: Literal["Market", "Limit", "Stop", "StopLimit"]


class TradingOrders(TradingAnswer):
    orders: list[TradingOrder]


class TradingOrderIds(TradingAnswer):
    order_ids: list[str]


class TradingBalance(BaseModel):
    account_id: str
    account_name: str
    balance: float = Field(description="initial balance + realized P&L - fees")
    net_liquidating_value: float = Field(description="balance + open P&L")
    cash_balance: float
    open_pl: float
    realized_pl: float


class TradingBalances(TradingAnswer):
    balances: list[TradingBalance]
    total_balance: float = Field(description="the sum of the accounts' net_liquidating_value")


class SnapshotMetadata(BaseModel):
    response_time_ms: float
    timestamp: float = Field(description="epoch seconds")
    datetime_: str = Field(alias="datetime", description="UTC, no zone")


class TradingSnapshot(BaseModel):
    """Each part included is exactly its endpoint's answer; a part left out is absent."""

    accounts: TradingAccounts | None = None
    positions: TradingPositions | None = None
    orders: TradingOrders | None = None
    balances: TradingBalances | None = None
    metadata: SnapshotMetadata


# -- ORCA Max bot (seed 002) ----------------------------------------------------------------

_POINTS = r"[0-9]+(\.[0-9]+)?"
POINT_KEY = rf"^{_POINTS}(_{_POINTS}){{3}}$"
EXIT_STRATEGY_KEY = rf"^{_POINTS}_{_POINTS}$"
DAY = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})?$"  # empty: not given
MAX_NOTES = 1000
_ORCA_TIME = "UTC without a zone, microseconds only when there are any: 2025-01-01T09:30:00"


class MaxBacktestForm(BaseModel):
    """The Max bot backtest's form (multipart/form-data). The ticks come from ``file``, or from
    the hub's stored ticks of ``contract`` on the days ``dateFrom`` to ``dateTo``; with both,
    the dates pick the file's ticks they cover. An empty optional field is not given."""

    accountName: str = Field(
        min_length=1,
        max_length=MAX_ACCOUNT_NAME,
        description="the account the backtest is for: echoed in meta, no account is touched",
    )
    mode: Literal["backtesting"]
    contract: str = Field(
        pattern=f"^{SYMBOL}$",
        description="the symbol whose stored ticks a date range reads (NQ, ES...)",
    )
    maxMode: Literal["long", "short", "both"] = Field(description="the sides the bot trades")
    point_key: str = Field(
        pattern=POINT_KEY,
        examples=["15_7_5_2"],
        description="A_B_C_D in points: impulse, pullback, confirmation, tolerance "
        "(A, B and C above 0; docs/engine-strategies.md)",
    )
    exit_strategy_key: str = Field(
        pattern=EXIT_STRATEGY_KEY,
        examples=["15_15"],
        description="TP_SL in points from the entry: take-profit and stop-loss, both above 0",
    )
    notes: str = Field("", max_length=MAX_NOTES)
    dateFrom: str = Field(
        "", pattern=DAY, description="the first day (YYYY-MM-DD, UTC); with dateTo"
    )
    dateTo: str = Field(
        "", pattern=DAY, description="the last day (YYYY-MM-DD, UTC), included whole; with dateFrom"
    )
    file: bytes = Field(
        b"",
        description="a CSV of ticks: a time column (timestamp, datetime, time, ts, date...: "
        "ISO 8601 or epoch s/ms/us/ns) and a price column (price, last, close...), in time "
        "order; see the README",
    )


class MaxLiveForm(BaseModel):
    """The live Max bot's form (multipart/form-data). ``DEMO`` runs it on paper accounts; ``LIVE``
    needs a live broker adapter, which this hub does not have (400). An empty optional field is
    not given."""

    accountName: str = Field(
        "APEX_136189",
        min_length=1,
        max_length=MAX_ACCOUNT_NAME,
        description="the paper account (by name) the bot trades; opened on first use",
    )
    contract: str = Field(pattern=f"^{SYMBOL}$", description="the symbol traded (NQ, ES...)")
    maxMode: str = Field(
        "",
        max_length=32,
        description="the Max mode, recorded (null in config when not sent: seed 002's table "
        "calls it required, its example request sends none)",
    )
    trading_mode: Literal["long", "short", "both"] = Field(description="the sides the bot trades")
    trading_side: str = Field(min_length=1, max_length=32, description="recorded with the run")
    point_strategy_key: str = Field("15_7_5_2", pattern=POINT_KEY, examples=["15_7_5_2"])
    exit_strategy_key: str = Field("15_15", pattern=EXIT_STRATEGY_KEY, examples=["15_15"])
    quantity: int = Field(1, ge=1, le=1_000_000, description="contracts per trade")
    environment: Literal["DEMO", "LIVE"]
    accounts_ids: str = Field(
        "",
        max_length=4096,
        description='JSON array of more accounts: names, or objects {"tv_id", "ta_id"} whose '
        "ta_id (else tv_id) names the paper account",
    )
    notes: str = Field("", max_length=MAX_NOTES)


class MaxLiveAnswer(BaseModel):
    status: Literal["running"]
    bot_id: str = Field(description="the first run's execution id (seed 003's routes read it)")
    config: dict[str, Any]
    message: str


class MaxBacktestResult(BaseModel):
    total_trades: int = Field(description="the closed trades (a position open at the end is not)")
    winning_trades: int = Field(description="trades with profit > 0")
    losing_trades: int = Field(description="trades with profit <= 0")
    win_rate: float = Field(ge=0, le=1, description="winning_trades / total_trades; 0 without")
    total_profit: float = Field(description="the trades' profit, in points")
    max_drawdown: float = Field(
        le=0,
        description="the largest fall of equity (open positions marked to each tick) from its "
        "running peak, as a negative amount; 0 when it never fell",
    )


class MaxBacktestTrade(BaseModel):
    entry_time: str = Field(description=_ORCA_TIME)
    entry_price: float
    exit_time: str = Field(description=_ORCA_TIME)
    exit_price: float
    profit: float = Field(description="in points: the price difference, for one contract")
    side: Literal["long", "short"]


class MaxBacktestMeta(BaseModel):
    source: Literal["file", "date_range"]
    dateFrom: str | None = Field(description="as sent (YYYY-MM-DD); null when not sent")
    dateTo: str | None = Field(description="as sent (YYYY-MM-DD); null when not sent")
    accountName: str
    mode: Literal["backtesting"]
    notes: str | None = Field(description="as sent; null when not sent")
    file: str | None = Field(
        None, description="source file only: the uploaded file's name (absent for date_range)"
    )


class MaxBacktestAnswer(BaseModel):
    result: MaxBacktestResult
    trades: list[MaxBacktestTrade] = Field(description="oldest first")
    meta: MaxBacktestMeta
