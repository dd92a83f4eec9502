"""The paper broker through its real interfaces: each matching rule with ticks posted through the
ingest route, idempotent client order ids, every risk rejection, bad input, a plain-Python ledger
against positions and balances, resumable order streams, and a second user refused everywhere."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import websockets
from gql import GraphQLRequest, gql

from tests.brokerdesk import Desk, new_symbol
from tests.conftest import Account, LiveServer, operation
from tests.helpers import eventually, gql_session


@pytest.fixture
def desk(client: httpx.AsyncClient, alice: Account, admin: Account) -> Desk:
    return Desk(client, alice, admin)


# -- matching, rule by rule -------------------------------------------------------------


async def test_a_market_order_fills_at_the_next_ticks_ask_or_bid_moved_by_slippage(
    desk: Desk,
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(slippageBps=10, feeRate=0.001)
    buy = await desk.place(account, symbol, side="BUY", quantity=10)
    sell = await desk.place(account, symbol, side="SELL", quantity=4)
    assert buy["status"] == sell["status"] == "WORKING"
    await desk.ticks(symbol, {"price": 101.0, "bid": 100.9, "ask": 101.1})
    bought = await desk.settled(account, buy["id"])
    sold = await desk.settled(account, sell["id"])
    assert bought["status"] == "FILLED" and bought["filledQuantity"] == 10
    assert bought["averagePrice"] == pytest.approx(101.1 * 1.001, rel=1e-12)
    assert sold["averagePrice"] == pytest.approx(100.9 * 0.999, rel=1e-12)
    # Without a bid and ask, the trade price (still moved by slippage).
    plain = await desk.place(account, symbol, side="BUY", quantity=1)
    await desk.ticks(symbol, 102.0)
    assert (await desk.settled(account, plain["id"]))["averagePrice"] == pytest.approx(
        102.0 * 1.001
    )
    # Fees come off cash.
    balances = await desk.balances(account)
    spent = 10 * 101.1 * 1.001 - 4 * 100.9 * 0.999 + 102.0 * 1.001
    fees = 0.001 * (10 * 101.1 * 1.001 + 4 * 100.9 * 0.999 + 102.0 * 1.001)
    assert balances["feesPaid"] == pytest.approx(fees)
    assert balances["cash"] == pytest.approx(100_000 - spent - fees)


async def test_a_resting_limit_fills_at_its_limit_when_a_tick_trades_at_or_through_it(
    desk: Desk,
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    buy = await desk.place(account, symbol, type="LIMIT", price=99.0, quantity=2)
    sell = await desk.place(account, symbol, side="SELL", type="LIMIT", price=103.0, quantity=1)
    await desk.ticks(symbol, 99.5, 102.9)
    assert (await desk.order(account, buy["id"]))["status"] == "WORKING"
    await desk.ticks(symbol, 98.7)  # through the buy limit: fills at the limit, not at 98.7
    assert (await desk.settled(account, buy["id"]))["averagePrice"] == 99.0
    await desk.ticks(symbol, 103.0)  # at the sell limit
    assert (await desk.settled(account, sell["id"]))["averagePrice"] == 103.0


async def test_a_limit_marketable_on_arrival_fills_at_the_next_ticks_price(desk: Desk) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    buy = await desk.place(account, symbol, type="LIMIT", price=101.0, quantity=1)
    await desk.ticks(symbol, 100.4)
    assert (await desk.settled(account, buy["id"]))["averagePrice"] == 100.4
    # Marketable on arrival, but the next tick is beyond the limit: it rests, then fills at
    # its limit once the market trades through it.
    late = await desk.place(account, symbol, type="LIMIT", price=100.5, quantity=1)
    await desk.ticks(symbol, 100.8)
    assert (await desk.order(account, late["id"]))["status"] == "WORKING"
    await desk.ticks(symbol, 100.1)
    assert (await desk.settled(account, late["id"]))["averagePrice"] == 100.5


async def test_a_stop_triggers_at_or_through_its_price_then_fills_as_a_market_order(
    desk: Desk,
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(slippageBps=5)
    stop = await desk.place(account, symbol, type="STOP", stopPrice=105.0, quantity=3)
    assert stop["status"] == "PENDING"
    await desk.ticks(symbol, 104.0)
    assert (await desk.order(account, stop["id"]))["status"] == "PENDING"
    await desk.ticks(symbol, {"price": 105.5, "bid": 105.4, "ask": 105.6})
    assert (await desk.settled(account, stop["id"]))["averagePrice"] == pytest.approx(
        105.6 * 1.0005
    )


async def test_a_stop_limit_becomes_a_limit_when_triggered(desk: Desk) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    await desk.place(account, symbol, side="BUY", quantity=10)  # something to sell
    await desk.ticks(symbol, 100.0)
    within = await desk.place(
        account, symbol, side="SELL", type="STOP_LIMIT", stopPrice=95.0, price=94.0, quantity=1
    )
    gapped = await desk.place(
        account, symbol, side="SELL", type="STOP_LIMIT", stopPrice=95.0, price=94.8, quantity=1
    )
    await desk.ticks(symbol, 94.5)  # triggers both: 94.5 is within the first limit only
    assert (await desk.settled(account, within["id"]))["averagePrice"] == 94.5
    assert (await desk.order(account, gapped["id"]))["status"] == "WORKING"
    await desk.ticks(symbol, 94.9)  # the triggered limit rests, and fills at its limit
    assert (await desk.settled(account, gapped["id"]))["averagePrice"] == 94.8


async def test_ioc_and_fok_against_a_tick_that_carries_a_size(desk: Desk) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    ioc = await desk.place(account, symbol, quantity=10, timeInForce="IOC")
    fok = await desk.place(account, symbol, quantity=10, timeInForce="FOK")
    await desk.ticks(symbol, {"price": 100.0, "size": 3})
    ioc_done = await desk.settled(account, ioc["id"])
    assert ioc_done["status"] == "CANCELLED" and ioc_done["filledQuantity"] == 3
    fok_done = await desk.settled(account, fok["id"])
    assert fok_done["status"] == "CANCELLED" and fok_done["filledQuantity"] == 0
    whole = await desk.place(account, symbol, quantity=10, timeInForce="FOK")
    await desk.ticks(symbol, {"price": 100.0, "size": 20})
    assert (await desk.settled(account, whole["id"]))["status"] == "FILLED"
    # A GTC order fills what each tick's size allows until it is done.
    gtc = await desk.place(account, symbol, quantity=5)
    await desk.ticks(symbol, {"price": 100.0, "size": 2})
    assert (await desk.settled(account, gtc["id"], "PARTIALLY_FILLED"))["filledQuantity"] == 2
    await desk.ticks(symbol, {"price": 101.0, "size": 10})
    done = await desk.settled(account, gtc["id"])
    assert done["status"] == "FILLED" and done["averagePrice"] == pytest.approx(
        (2 * 100 + 3 * 101) / 5
    )


async def test_a_day_order_expires_at_the_end_of_the_utc_day(desk: Desk) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    day = await desk.place(account, symbol, type="LIMIT", price=50.0, timeInForce="DAY")
    now = datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    assert datetime.fromisoformat(day["expiresAt"]) == midnight
    gtc = await desk.place(account, symbol, type="LIMIT", price=50.0)
    assert gtc["expiresAt"] is None


def test_the_matcher_expires_what_is_past_its_time() -> None:
    from hub.broker.matcher import expired
    from hub.broker.matching import BookOrder
    from hub.broker.model import OrderType, Side, TimeInForce

    def order(order_id: int, expires_ns: int | None) -> BookOrder:
        return BookOrder(
            order_id,
            "A",
            "S",
            Side.BUY,
            OrderType.LIMIT,
            1,
            0,
            1.0,
            None,
            TimeInForce.DAY,
            False,
            False,
            0,
            1,
            expires_ns,
            0.0,
        )

    book = [order(1, 100), order(2, 200), order(3, None)]
    assert [o.order_id for o in expired(book, 150)] == [1]
    assert [o.order_id for o in expired(book, 200)] == [1, 2]


# -- idempotency, risk, bad input --------------------------------------------------------


async def test_resending_a_client_order_id_never_creates_a_second_order(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(maxOrdersPerSecond=100)
    sends = [
        desk.place(account, symbol, type="LIMIT", price=90.0, clientOrderId="bot-1")
        for _ in range(12)
    ]
    placed = await asyncio.gather(*sends)
    assert len({o["id"] for o in placed}) == 1
    assert (
        await pool.fetchval(
            "select count(*) from broker_orders where account_id = $1 and client_order_id = 'bot-1'",
            account,
        )
        == 1
    )
    events = await pool.fetchval(
        "select count(*) from topic_events where topic = $1", f"account:{account}:orders"
    )
    assert events == 1


@pytest.mark.parametrize(
    ("limits", "order", "reason"),
    [
        ({"maxOrderQuantity": 5}, {"quantity": 6}, "max_order_quantity"),
        ({"maxOrderNotional": 1_000}, {"quantity": 11}, "max_order_notional"),
        ({"maxPosition": 3}, {"quantity": 4}, "max_position"),
        ({"initialBalance": 500}, {"quantity": 6}, "insufficient cash"),
        ({"initialBalance": 1_000, "feeRate": 0.01}, {"quantity": 10}, "insufficient cash"),
    ],
)
async def test_every_risk_limit_rejects_with_its_reason(
    desk: Desk, limits: dict[str, Any], order: dict[str, Any], reason: str
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(**limits)
    rejected = await desk.place(account, symbol, **order)
    assert rejected["status"] == "REJECTED"
    assert reason in rejected["rejectReason"]
    assert (await desk.positions(account))["positions"] == []


async def test_orders_beyond_the_accounts_rate_are_refused(desk: Desk, pool: asyncpg.Pool) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(maxOrdersPerSecond=3)
    answers = await asyncio.gather(
        *[desk.try_place(account, symbol, type="LIMIT", price=1.0) for _ in range(8)]
    )
    refused = [a for a in answers if "errors" in a]
    assert refused and all(a["errors"][0]["extensions"]["code"] == "RATE_LIMITED" for a in refused)
    stored = await pool.fetchval(
        "select count(*) from broker_orders where account_id = $1", account
    )
    assert stored == len(answers) - len(refused)


@pytest.mark.parametrize(
    ("order", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"quantity": -2}, "quantity"),
        ({"type": "LIMIT"}, "price"),
        ({"price": 100.0}, "price"),
        ({"type": "STOP"}, "stopPrice"),
        ({"clientOrderId": "has space"}, "clientOrderId"),
        ({"symbol": "NOSUCHSYM"}, "symbol"),
        ({"symbol": "bad symbol!"}, "symbol"),
    ],
)
async def test_bad_orders_are_refused_naming_the_field_and_write_nothing(
    desk: Desk, pool: asyncpg.Pool, order: dict[str, Any], field: str
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    fields = {"symbol": symbol, **order}
    answer = await desk.try_place(account, **fields)
    error = answer["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PARAMETER", error
    assert error["extensions"].get("field") == field, error
    assert (
        await pool.fetchval("select count(*) from broker_orders where account_id = $1", account)
        == 0
    )


async def test_unknown_accounts_and_enum_values_are_refused(desk: Desk) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    unknown = await desk.try_place("D99999999", symbol)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    account = await desk.account()
    bad_enum = await desk.try_place(account, symbol, side="SIDEWAYS")
    error = bad_enum["errors"][0]
    assert "SIDEWAYS" in error["message"]
    assert (
        error["extensions"]["code"] == "INVALID_PARAMETER"
        and error["extensions"]["field"] == "side"
    )
    assert await desk.orders(account) == []


# -- positions and balances against an independent ledger ---------------------------------


def replay_ledger(
    fills: list[dict[str, Any]], initial: float, marks: dict[str, float]
) -> dict[str, Any]:
    """Average-cost netting written out plainly, from the fills alone."""
    book: dict[str, list[float]] = {}  # symbol -> [quantity, average, realized]
    cash, fees, realized_total = initial, 0.0, 0.0
    for f in fills:
        qty = f["quantity"] if f["side"] == "buy" else -f["quantity"]
        price = f["price"]
        held, avg, realized = book.get(f["symbol"], [0.0, 0.0, 0.0])
        if held == 0 or (held > 0) == (qty > 0):
            new = held + qty
            avg = (abs(held) * avg + abs(qty) * price) / abs(new)
            held = new
        else:
            closing = min(abs(qty), abs(held))
            gain = closing * (price - avg) * (1 if held > 0 else -1)
            realized += gain
            realized_total += gain
            new = held + qty
            if abs(new) < 1e-9:
                held, avg = 0.0, 0.0
            elif (new > 0) != (held > 0):
                held, avg = new, price
            else:
                held = new
        book[f["symbol"]] = [held, avg, realized]
        cash -= qty * price + f["fee"]
        fees += f["fee"]
    open_pnl = sum(q * (marks[s] - a) for s, (q, a, _) in book.items() if q)
    return {"book": book, "cash": cash, "fees": fees, "realized": realized_total, "open": open_pnl}


async def test_positions_and_balances_equal_a_ledger_replayed_from_the_fills(
    desk: Desk, pool: asyncpg.Pool
) -> None:
    rng = random.Random(7)
    symbols = [new_symbol(), new_symbol()]
    for symbol in symbols:
        await desk.ticks(symbol, 100.0)
    account = await desk.account(
        initialBalance=1_000_000, feeRate=0.0005, slippageBps=2, maxOrdersPerSecond=1000
    )
    prices = dict.fromkeys(symbols, 100.0)
    for _ in range(40):
        symbol = rng.choice(symbols)
        order = await desk.place(
            account, symbol, side=rng.choice(["BUY", "SELL"]), quantity=rng.randint(1, 20)
        )
        prices[symbol] = round(prices[symbol] * (1 + rng.uniform(-0.01, 0.01)), 4)
        await desk.ticks(
            symbol,
            {"price": prices[symbol], "bid": prices[symbol] - 0.01, "ask": prices[symbol] + 0.01},
        )
        await desk.settled(account, order["id"])
    fills = [
        dict(r)
        for r in await pool.fetch(
            "select symbol, side, quantity, price, fee from broker_fills where account_id = $1 order by fill_id",
            account,
        )
    ]
    assert len(fills) == 40
    ledger = replay_ledger(fills, 1_000_000, prices)
    positions = {p["symbol"]: p for p in (await desk.positions(account))["positions"]}
    for symbol, (held, avg, realized) in ledger["book"].items():
        assert positions[symbol]["quantity"] == pytest.approx(held, abs=1e-9)
        if held:
            assert positions[symbol]["averagePrice"] == pytest.approx(avg, rel=1e-9)
        assert positions[symbol]["realizedPnl"] == pytest.approx(realized, abs=1e-6)
        assert positions[symbol]["lastPrice"] == prices[symbol]
    balances = await desk.balances(account)
    assert balances["cash"] == pytest.approx(ledger["cash"], abs=1e-6)
    assert balances["feesPaid"] == pytest.approx(ledger["fees"], abs=1e-9)
    assert balances["realizedPnl"] == pytest.approx(ledger["realized"], abs=1e-6)
    assert balances["openPnl"] == pytest.approx(ledger["open"], abs=1e-6)
    market_value = sum(q * prices[s] for s, (q, _, _) in ledger["book"].items())
    assert balances["netLiquidatingValue"] == pytest.approx(ledger["cash"] + market_value, abs=1e-6)


async def test_marks_reach_subscribers_throttled_and_ending_on_the_latest_state(
    server: LiveServer, desk: Desk
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    order = await desk.place(account, symbol, quantity=10)
    await desk.ticks(symbol, 100.0)
    await desk.settled(account, order["id"])
    seen: list[dict[str, Any]] = []
    async with gql_session(server.ws_url, desk.trader.token) as session:
        updates = session.subscribe(
            GraphQLRequest(gql(operation("BalanceUpdates")), variable_values={"accountId": account})
        )
        async with asyncio.timeout(15):
            first = await anext(updates)
        seen.append(first["balances"])
        loop = asyncio.get_running_loop()
        started = loop.time()
        last_price = 100.0
        for i in range(60):
            last_price = 100.0 + (i + 1) * 0.1
            await desk.ticks(symbol, last_price)
        expected = 10 * (last_price - 100.0)

        async def latest() -> bool:
            async with asyncio.timeout(5):
                seen.append((await anext(updates))["balances"])
            return seen[-1]["openPnl"] == pytest.approx(expected)

        await eventually(latest, timeout=15)
        elapsed = loop.time() - started
        await updates.aclose()
    sequences = [s["sequence"] for s in seen]
    assert sequences == sorted(set(sequences))
    # 60 ticks, yet at most 10 documents a second (plus the first and one in flight).
    assert len(seen) - 1 <= 10 * elapsed + 2


# -- streams and ownership ----------------------------------------------------------------


async def test_an_orders_subscription_resumed_anywhere_equals_the_order_history(
    server: LiveServer, desk: Desk, pool: asyncpg.Pool
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account(maxOrdersPerSecond=1000)
    for i in range(6):
        order = await desk.place(account, symbol, type="LIMIT", price=99.0 - i, quantity=1 + i)
        if i % 2:
            await desk.gql("CancelOrder", {"id": order["id"]})
    await desk.ticks(symbol, 97.5)  # fills the limit at 99 (97 and 95 stay working)
    await desk.place(account, symbol, quantity=1)
    await desk.ticks(symbol, 97.6)

    async def quiet() -> bool:
        return all(
            o["status"] != "WORKING" or (o["type"] == "LIMIT" and o["price"] < 97.5)
            for o in await desk.orders(account)
        )

    await eventually(quiet)
    history = {o["id"]: o for o in await desk.orders(account)}
    count = await pool.fetchval(
        "select count(*) from topic_events where topic = $1", f"account:{account}:orders"
    )
    assert (
        count == 6 + 3 + 1 + 2
    )  # placed, cancelled, the limit filled, the market placed and filled
    async with gql_session(server.ws_url, desk.trader.token) as session:
        everything = session.subscribe(
            GraphQLRequest(
                gql(operation("OrderUpdates")),
                variable_values={"accountId": account, "sinceSequence": 0},
            )
        )
        async with asyncio.timeout(15):
            events = [(await anext(everything))["orders"] for _ in range(count)]
        await everything.aclose()
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    last: dict[str, dict[str, Any]] = {}
    for event in events:
        last[event["order"]["id"]] = event["order"]
    assert last == history
    since = random.Random(3).randint(1, len(events) - 1)
    async with gql_session(server.ws_url, desk.trader.token) as session:
        resumed = session.subscribe(
            GraphQLRequest(
                gql(operation("OrderUpdates")),
                variable_values={"accountId": account, "sinceSequence": since},
            )
        )
        async with asyncio.timeout(15):
            tail = [(await anext(resumed))["orders"] for _ in range(len(events) - since)]
        await resumed.aclose()
    assert tail == events[since:]
    # The same log over /ws.
    async with websockets.connect(f"{server.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": desk.trader.token}))
        assert orjson.loads(await ws.recv())["op"] == "authenticated"
        await ws.send(
            orjson.dumps(
                {"op": "subscribe", "channel": f"account:{account}:orders", "since": since}
            )
        )
        frames: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(frames) < len(events) - since:
                frame = orjson.loads(await ws.recv())
                if "op" not in frame and frame.get("channel") == f"account:{account}:orders":
                    frames.append(frame)
    assert [f["seq"] for f in frames] == list(range(since + 1, len(events) + 1))
    assert [f["data"]["order"]["order_id"] for f in frames] == [
        e["order"]["id"] for e in events[since:]
    ]


async def test_another_users_account_is_refused_everywhere(
    server: LiveServer, desk: Desk, bob: Account
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    order = await desk.place(account, symbol, type="LIMIT", price=90.0)
    for name, variables in (
        ("Account", {"id": account}),
        ("Orders", {"accountId": account}),
        ("Positions", {"accountId": account}),
        ("Balances", {"accountId": account}),
        ("CancelOrder", {"id": order["id"]}),
        ("CancelAllOrders", {"accountId": account}),
        (
            "PlaceOrder",
            {
                "input": {
                    "accountId": account,
                    "symbol": symbol,
                    "side": "BUY",
                    "type": "MARKET",
                    "quantity": 1,
                }
            },
        ),
    ):
        answer = await desk.gql(name, variables, as_=bob)
        assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN", (name, answer)
    bobs = (await desk.gql("Accounts", as_=bob))["data"]["accounts"]
    assert account not in [a["id"] for a in bobs]
    for subscription in ("OrderUpdates", "PositionUpdates", "BalanceUpdates"):
        async with gql_session(server.ws_url, bob.token) as session:
            with pytest.raises(Exception, match="(?i)forbidden|not yours|may not"):
                await anext(
                    session.subscribe(
                        gql(operation(subscription)), variable_values={"accountId": account}
                    )
                )
    async with websockets.connect(f"{server.ws_url}/ws") as ws:
        await ws.send(orjson.dumps({"op": "auth", "token": bob.token}))
        assert orjson.loads(await ws.recv())["op"] == "authenticated"
        for stream in ("orders", "positions", "balances"):
            await ws.send(
                orjson.dumps({"op": "subscribe", "channel": f"account:{account}:{stream}"})
            )
            async with asyncio.timeout(10):
                refused = orjson.loads(await ws.recv())
            assert refused["op"] == "error" and refused["code"] == "forbidden", refused
        await ws.send(orjson.dumps({"op": "subscribe", "channel": f"book:{symbol}"}))
        async with asyncio.timeout(10):
            internal = orjson.loads(await ws.recv())
        assert internal["op"] == "error" and internal["code"] in ("forbidden", "unknown_channel"), (
            internal
        )
    assert (await desk.order(account, order["id"]))["status"] == "WORKING"


def test_the_book_hands_a_tick_only_the_orders_it_can_reach() -> None:
    from hub.broker.book import Book
    from hub.broker.matching import BookOrder
    from hub.broker.model import OrderType, Side, TimeInForce

    def order(
        order_id: int,
        side: Side,
        kind: OrderType,
        price: float | None,
        stop: float | None = None,
        tif: TimeInForce = TimeInForce.GTC,
        marketable: bool = False,
    ) -> BookOrder:
        return BookOrder(
            order_id,
            "A",
            "S",
            side,
            kind,
            1,
            0,
            price,
            stop,
            tif,
            False,
            marketable,
            0,
            1,
            None,
            0.0,
        )

    book = Book()
    orders = [
        order(1, Side.BUY, OrderType.LIMIT, 99.0),
        order(2, Side.BUY, OrderType.LIMIT, 101.0),
        order(3, Side.SELL, OrderType.LIMIT, 100.5),
        order(4, Side.SELL, OrderType.LIMIT, 98.0),
        order(5, Side.BUY, OrderType.STOP, None, 100.2),
        order(6, Side.SELL, OrderType.STOP_LIMIT, 97.0, 99.5),
        order(7, Side.BUY, OrderType.MARKET, None),
        order(8, Side.BUY, OrderType.LIMIT, 50.0, tif=TimeInForce.IOC),
        order(9, Side.SELL, OrderType.LIMIT, 200.0, marketable=True),
    ]
    for o in orders:
        book.put(o)
    # The index agrees with a pass over every order, at prices around each level.
    for price in (50.0, 97.0, 98.0, 99.0, 99.5, 100.0, 100.2, 100.5, 101.0, 150.0):
        every = [
            o.order_id
            for o in orders
            if o.type is OrderType.MARKET
            or o.time_in_force is not TimeInForce.GTC
            or o.marketable
            or (
                o.type is OrderType.LIMIT
                and (price <= o.price if o.side is Side.BUY else price >= o.price)
            )
            or (
                o.type in (OrderType.STOP, OrderType.STOP_LIMIT)
                and (price >= o.stop_price if o.side is Side.BUY else price <= o.stop_price)
            )
        ]
        assert [o.order_id for o in book.reached(price)] == every, price
    book.remove(2)
    orders[5].triggered = True
    book.put(orders[5])  # a triggered stop-limit rests as a limit at 97
    assert [o.order_id for o in book.reached(101.0)] == [3, 4, 5, 6, 7, 8, 9]
    assert [o.order_id for o in book.reached(96.0)] == [1, 7, 8, 9]
    assert 6 in [o.order_id for o in book.reached(97.0)] and 6 not in [
        o.order_id for o in book.reached(96.0)
    ]
    assert len(book) == 8


async def test_a_matcher_lets_go_of_a_symbol_with_nothing_left_and_leaves_no_subscription(
    server: LiveServer, desk: Desk
) -> None:
    symbol = new_symbol()
    await desk.ticks(symbol, 100.0)
    account = await desk.account()
    order = await desk.place(account, symbol, type="LIMIT", price=50.0)
    state = server.lifespan_state
    matchers = state.broker.matchers
    assert symbol in matchers.symbols
    channels = [
        state.keys.topic_channel(f"ticks:{symbol}"),
        state.keys.topic_channel(f"book:{symbol}"),
    ]
    assert all(c.encode() in state.bus._channels for c in channels)
    await desk.gql("CancelOrder", {"id": order["id"]})

    async def let_go() -> bool:
        return symbol not in matchers.symbols

    await eventually(let_go, timeout=15)
    assert not any(c.encode() in state.bus._channels for c in channels)
    assert await state.redis.get(state.keys.matcher_lease(symbol)) is None
