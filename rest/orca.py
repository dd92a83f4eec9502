"""ORCA (seed 002): the HFT trading API under ``/api/v1/trading/``, errors as
``{"detail", "status_code"}`` (validation failures 422, as ORCA's FastAPI answers them).

Every read answers *parts* of the caller's accounts (accounts, positions, pending orders,
balances) chosen by ``account_ids`` and ``account_name``, read through the broker service and
put in ORCA's words here. With ``use_cache`` a part comes from Redis when a copy is there: one
per user, part and filter, kept for the part's TTL counted from the read it holds, so a cached
answer is never older than that. Every fresh read replaces the copy. ``timestamp`` is when the
answer's data was read; ``cached`` says whether it came from Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub import health
from hub.auth import Identity
from hub.broker.model import OrderStatus, OrderType, Side
from hub.broker.service import BrokerService
from hub.errors import HubError, NotFound
from hub.http import JSONResponse, require_identity
from hub.jsonnum import whole
from hub.openapi import ErrorStatus, describe
from rest.errors import ORCA
from rest.orca_models import (
    ACCOUNT_IDS,
    MAX_ACCOUNT_IDS,
    MAX_ACCOUNT_NAME,
    AccountsQuery,
    BalancesQuery,
    OrdersQuery,
    PositionsQuery,
    SnapshotQuery,
    TradingAccounts,
    TradingBalances,
    TradingHealth,
    TradingOrderIds,
    TradingOrders,
    TradingPositionIds,
    TradingPositions,
    TradingSnapshot,
)

log = logging.getLogger("tradehub")

BASE = "/api/v1/trading"
_FILTERED: list[ErrorStatus] = [403, 404, 422]  # another user's account; none such; bad values
_ACCOUNT_IDS = re.compile(ACCOUNT_IDS)
Rows = list[asyncpg.Record]
Items = list[dict[str, Any]]

# ORCA's words for the broker's.
SIDES = {Side.BUY: "Buy", Side.SELL: "Sell"}
ORDER_TYPES = {
    OrderType.MARKET: "Market",
    OrderType.LIMIT: "Limit",
    OrderType.STOP: "Stop",
    OrderType.STOP_LIMIT: "StopLimit",
}
ORDER_STATUSES = {
    OrderStatus.WORKING: "Working",
    OrderStatus.PENDING: "Pending",  # a stop waiting for its trigger
    OrderStatus.PARTIALLY_FILLED: "PartiallyFilled",
}


class Unprocessable(HubError):
    """A parameter that fails validation: ORCA answers 422."""

    status_code = 422
    code = "VALIDATION_ERROR"


def query_flag(request: Request, name: str, default: bool) -> bool:
    """A boolean query parameter: ``true``/``false`` in any case, or ``1``/``0``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    word = raw.lower() if raw.isascii() else raw
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise Unprocessable(f"{name} must be true or false, got {raw[:40]!r}", field=name)


def orca_datetime(epoch: float) -> str:
    """Seed 002's form: UTC, microseconds, no zone ("2025-01-21T20:00:00.000000")."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat("T", "microseconds")


def money(value: float) -> float:
    """An amount as a JSON float, as seed 002 shows amounts (0.0, never 0 or -0.0): the
    broker's sums over no positions are the integer 0, a flat short's P&L is -0.0."""
    return float(value) + 0.0


# -- which accounts -------------------------------------------------------------------------


@dataclass(frozen=True)
class Filter:
    """Which of the caller's accounts an answer covers: ``account_ids`` (None: all of them),
    narrowed to the one named ``account_name``."""

    account_ids: tuple[str, ...] | None
    account_name: str | None

    @classmethod
    def of(cls, request: Request) -> Filter:
        raw = request.query_params.get("account_ids") or None
        ids = None
        if raw is not None:
            if _ACCOUNT_IDS.fullmatch(raw) is None:
                raise Unprocessable(
                    f"account_ids must be up to {MAX_ACCOUNT_IDS} account ids (D10000001) "
                    f"separated by commas, got {raw[:40]!r}",
                    field="account_ids",
                )
            ids = tuple(dict.fromkeys(part.strip(" ") for part in raw.split(",")))
        name = request.query_params.get("account_name") or None
        if name is not None and len(name) > MAX_ACCOUNT_NAME:
            raise Unprocessable(
                f"account_name must be at most {MAX_ACCOUNT_NAME} characters, got {len(name)}",
                field="account_name",
            )
        return cls(ids, name)

    @property
    def digest(self) -> str:
        """The filter in a cache key (a name may hold any character)."""
        return hashlib.sha256(orjson.dumps([self.account_ids, self.account_name])).hexdigest()[:32]

    async def accounts(self, broker: BrokerService, identity: Identity) -> Rows:
        """The accounts' rows; the broker service decides whose the caller may name (403, 404)."""
        if self.account_ids is None:
            rows = await broker.accounts(identity, None, self.account_name)
        else:
            rows = [await broker.account(identity, account_id) for account_id in self.account_ids]
            if self.account_name is not None:
                rows = [row for row in rows if row["name"] == self.account_name]
        if self.account_name is not None and not rows:
            among = "" if self.account_ids is None else f" among {', '.join(self.account_ids)}"
            raise NotFound(
                f"no account of yours named {self.account_name!r}{among}", field="account_name"
            )
        return list(rows)


# -- the parts, in ORCA's words -------------------------------------------------------------

Reader = Callable[[BrokerService, Identity, Rows], Awaitable[Items]]


def _ids(accounts: Rows) -> list[str]:
    return [row["account_id"] for row in accounts]


async def read_accounts(broker: BrokerService, identity: Identity, accounts: Rows) -> Items:
    return [{"name": r["name"], "id": r["account_id"], "active": r["active"]} for r in accounts]


def orca_position(doc: Mapping[str, Any]) -> dict[str, Any]:
    quantity = doc["quantity"]
    return {
        "id": doc["position_id"],
        "account_id": doc["account_id"],
        "instrument": doc["symbol"],
        "quantity": whole(abs(quantity)),
        "side": "long" if quantity > 0 else "short",
        "avg_price": money(doc["average_price"]),
        "unrealized_pnl": money(doc["unrealized_pnl"]),
    }


async def read_positions(broker: BrokerService, identity: Identity, accounts: Rows) -> Items:
    """The open (non-zero) positions."""
    documents = await broker.positions(identity, _ids(accounts)) if accounts else []
    return [
        orca_position(position)
        for document in documents
        for position in document["positions"]
        if position["quantity"] != 0
    ]


def orca_order(row: Mapping[str, Any]) -> dict[str, Any]:
    kind = OrderType(row["type"])
    return {
        "order_id": str(row["order_id"]),
        "account_id": row["account_id"],
        "instrument": row["symbol"],
        "side": SIDES[Side(row["side"])],
        "quantity": whole(row["quantity"]),
        "price": row["stop_price"] if kind is OrderType.STOP else row["price"],
        "status": ORDER_STATUSES[OrderStatus(row["status"])],
        "order_type": ORDER_TYPES[kind],
    }


async def read_orders(broker: BrokerService, identity: Identity, accounts: Rows) -> Items:
    """The open orders (working, pending, partially filled), oldest first."""
    rows = await broker.open_orders(identity, _ids(accounts)) if accounts else []
    return [orca_order(row) for row in rows]


def orca_balance(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "account_id": doc["account_id"],
        "account_name": name,
        "balance": money(doc["balance"]),
        "net_liquidating_value": money(doc["net_liquidating_value"]),
        "cash_balance": money(doc["cash"]),
        "open_pl": money(doc["open_pnl"]),
        "realized_pl": money(doc["realized_pnl"]),
    }


async def read_balances(broker: BrokerService, identity: Identity, accounts: Rows) -> Items:
    names = {row["account_id"]: row["name"] for row in accounts}
    documents = await broker.balances(identity, _ids(accounts)) if accounts else []
    return [orca_balance(doc, names[doc["account_id"]]) for doc in documents]


@dataclass(frozen=True)
class Part:
    name: str
    ttl_ms: int  # seed 002's cache TTL
    read: Reader


ACCOUNTS = Part("accounts", 300_000, read_accounts)
POSITIONS = Part("positions", 1_000, read_positions)
ORDERS = Part("orders", 1_000, read_orders)
BALANCES = Part("balances", 2_000, read_balances)


@dataclass(frozen=True)
class Read:
    items: Items
    timestamp: float  # epoch seconds, taken before the broker was read
    cached: bool

    def body(self, field: str, values: list[Any] | None = None) -> dict[str, Any]:
        listed = self.items if values is None else values
        return {
            field: listed,
            "count": len(listed),
            "cached": self.cached,
            "timestamp": self.timestamp,
        }


# -- reading, through the cache ---------------------------------------------------------------


async def _from_cache(request: Request, keys: Mapping[str, str]) -> dict[str, Read]:
    """The copies Redis holds; none when Redis does not answer (then every part is read)."""
    try:
        values = await request.state.redis.mget(list(keys.values()))
    except (RedisError, OSError) as exc:
        log.warning("orca cache unreadable", extra={"error": str(exc)})
        return {}
    found = {}
    for name, value in zip(keys, values, strict=True):
        if value is not None:
            copy = orjson.loads(value)
            found[name] = Read(copy["items"], copy["timestamp"], True)
    return found


async def _to_cache(request: Request, copies: list[tuple[str, Read, int]]) -> None:
    """Store each read for what is left of its TTL counted from the read."""
    now = time.time()
    try:
        async with request.state.redis.pipeline(transaction=False) as pipe:
            for key, read, ttl_ms in copies:
                left = ttl_ms - int((now - read.timestamp) * 1000)
                if left > 0:
                    value = {"items": read.items, "timestamp": read.timestamp}
                    pipe.set(key, orjson.dumps(value), px=left)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("orca cache unwritable", extra={"error": str(exc)})


@dataclass(frozen=True)
class Ask:
    """What a trading read asks: who, which accounts, and whether a cached copy will do."""

    identity: Identity
    filter: Filter
    use_cache: bool

    @classmethod
    def of(cls, request: Request, use_cache: bool) -> Ask:
        identity = require_identity(request)
        return cls(identity, Filter.of(request), query_flag(request, "use_cache", use_cache))

    async def read(self, request: Request, parts: Sequence[Part]) -> dict[str, Read]:
        user, scope = self.identity.user_id, self.filter.digest
        keys = {part.name: request.state.keys.orca_cache(user, part.name, scope) for part in parts}
        found = await _from_cache(request, keys) if self.use_cache and parts else {}
        missing = [part for part in parts if part.name not in found]
        if missing:
            broker: BrokerService = request.state.broker
            read_at = time.time()  # what the parts hold is at least this recent
            accounts = await self.filter.accounts(broker, self.identity)
            # The parts are independent reads: each on its own connection, at once.
            bodies = await asyncio.gather(
                *(part.read(broker, self.identity, accounts) for part in missing)
            )
            fresh = []
            for part, body in zip(missing, bodies, strict=True):
                read = Read(body, read_at, False)
                found[part.name] = read
                fresh.append((keys[part.name], read, part.ttl_ms))
            await _to_cache(request, fresh)
        return found


async def _one(request: Request, part: Part, use_cache: bool) -> Read:
    return (await Ask.of(request, use_cache).read(request, [part]))[part.name]


def _balances_body(read: Read) -> dict[str, Any]:
    total = money(sum(balance["net_liquidating_value"] for balance in read.items))
    return {**read.body("balances"), "total_balance": total}


# -- routes -----------------------------------------------------------------------------------


@describe(ORCA, answers={200: TradingHealth, 503: TradingHealth}, public=True)
async def trading_health(request: Request) -> Response:
    """Trading API health: Redis (the cache) and the broker (its books, in Postgres).

    Redis down is ``degraded`` (reads answer uncached); the broker down is ``unhealthy``, 503."""
    started = time.perf_counter()
    report = await health.check(request.state.pool, request.state.redis)
    now = time.time()
    body = {
        "status": report.status,
        "timestamp": now,
        "datetime": orca_datetime(now),
        "checks": {"redis": report.checks["redis"], "broker": report.checks["postgres"]},
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    return JSONResponse(body, status_code=503 if report.status == "unhealthy" else 200)


@describe(ORCA, answers={200: TradingAccounts}, errors=_FILTERED, query=AccountsQuery)
async def trading_accounts(request: Request) -> Response:
    """The caller's accounts (cached 300 s by default)."""
    return JSONResponse((await _one(request, ACCOUNTS, True)).body("accounts"))


@describe(ORCA, answers={200: TradingPositions}, errors=_FILTERED, query=PositionsQuery)
async def trading_positions(request: Request) -> Response:
    """The open positions of the caller's accounts."""
    return JSONResponse((await _one(request, POSITIONS, False)).body("positions"))


@describe(ORCA, answers={200: TradingPositionIds}, errors=_FILTERED, query=PositionsQuery)
async def trading_position_ids(request: Request) -> Response:
    """The open positions' ids only (the positions' cache)."""
    read = await _one(request, POSITIONS, False)
    return JSONResponse(read.body("position_ids", [p["id"] for p in read.items]))


@describe(ORCA, answers={200: TradingOrders}, errors=_FILTERED, query=OrdersQuery)
async def trading_pending_orders(request: Request) -> Response:
    """The pending orders of the caller's accounts: Working, Pending and PartiallyFilled."""
    return JSONResponse((await _one(request, ORDERS, False)).body("orders"))


@describe(ORCA, answers={200: TradingOrderIds}, errors=_FILTERED, query=OrdersQuery)
async def trading_pending_order_ids(request: Request) -> Response:
    """The pending orders' ids only (the orders' cache)."""
    read = await _one(request, ORDERS, False)
    return JSONResponse(read.body("order_ids", [o["order_id"] for o in read.items]))


@describe(ORCA, answers={200: TradingBalances}, errors=_FILTERED, query=BalancesQuery)
async def trading_balances(request: Request) -> Response:
    """The balances of the caller's accounts (cached 2 s by default)."""
    return JSONResponse(_balances_body(await _one(request, BALANCES, True)))


SNAPSHOT: list[tuple[str, Part, Callable[[Read], dict[str, Any]]]] = [
    ("accounts", ACCOUNTS, lambda read: read.body("accounts")),
    ("positions", POSITIONS, lambda read: read.body("positions")),
    ("orders", ORDERS, lambda read: read.body("orders")),
    ("balances", BALANCES, _balances_body),
]


@describe(ORCA, answers={200: TradingSnapshot}, errors=_FILTERED, query=SnapshotQuery)
async def trading_snapshot(request: Request) -> Response:
    """Accounts, positions, pending orders and balances in one answer.

    Each part included is exactly what its endpoint answers to the same parameters."""
    started = time.perf_counter()
    ask = Ask.of(request, False)
    included = [
        (field, part, body)
        for field, part, body in SNAPSHOT
        if query_flag(request, f"include_{field}", True)
    ]
    reads = await ask.read(request, [part for _, part, _ in included])
    answer: dict[str, Any] = {field: body(reads[part.name]) for field, part, body in included}
    now = time.time()
    answer["metadata"] = {
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "timestamp": now,
        "datetime": orca_datetime(now),
    }
    return JSONResponse(answer)


def routes() -> list[BaseRoute]:
    wrap = ORCA.endpoint
    return [
        Route(f"{BASE}/health", wrap(trading_health), methods=["GET"]),
        Route(f"{BASE}/accounts", wrap(trading_accounts), methods=["GET"]),
        Route(f"{BASE}/positions", wrap(trading_positions), methods=["GET"]),
        Route(f"{BASE}/positions/ids", wrap(trading_position_ids), methods=["GET"]),
        Route(f"{BASE}/orders/pending", wrap(trading_pending_orders), methods=["GET"]),
        Route(f"{BASE}/orders/pending/ids", wrap(trading_pending_order_ids), methods=["GET"]),
        Route(f"{BASE}/balances", wrap(trading_balances), methods=["GET"]),
        Route(f"{BASE}/batch/snapshot", wrap(trading_snapshot), methods=["GET"]),
    ]
