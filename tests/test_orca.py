"""ORCA's trading API (seed 002) through the real server: each endpoint's exact answer, the
filters, the errors in ORCA's format, and the Redis cache (per user and filter, at seed 002's
TTLs, with a truthful ``cached``)."""

from __future__ import annotations

import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from tests.conftest import Account, LiveServer, make_account, operation
from tests.helpers import eventually, graphql

BASE = "/api/v1/trading"
READS = [
    "accounts",
    "positions",
    "positions/ids",
    "orders/pending",
    "orders/pending/ids",
    "balances",
    "batch/snapshot",
]
ORCA_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")


@pytest.fixture
async def trader(settings: Settings) -> Account:
    """A user of the test's own, so that "all of the caller's accounts" is known."""
    return await make_account(settings)


def new_symbol() -> str:
    return f"ORCA{secrets.token_hex(3).upper()}"


async def tick(server: LiveServer, symbol: str, price: float, **extra: Any) -> None:
    now = time.time_ns()
    md = server.lifespan_state.marketdata
    await md.publish_tick(symbol, {"ts": now, "price": price, "recv_ns": now, **extra})


async def open_account(client: httpx.AsyncClient, who: Account, name: str) -> str:
    body = await graphql(
        client, operation("CreatePaperAccount"), {"input": {"name": name}}, token=who.token
    )
    assert "errors" not in body, body
    account_id: str = body["data"]["createPaperAccount"]["id"]
    return account_id


async def place(
    client: httpx.AsyncClient, who: Account, account_id: str, symbol: str, **order: Any
) -> str:
    variables = {"input": {"accountId": account_id, "symbol": symbol, **order}}
    body = await graphql(client, operation("PlaceOrder"), variables, token=who.token)
    assert "errors" not in body, body
    assert body["data"]["placeOrder"]["status"] in ("WORKING", "PENDING"), body
    order_id: str = body["data"]["placeOrder"]["id"]
    return order_id


async def get(
    client: httpx.AsyncClient, path: str, who: Account | None, **params: Any
) -> httpx.Response:
    headers = who.headers if who is not None else {}
    return await client.get(f"{BASE}/{path}", params=params, headers=headers)


async def ok(client: httpx.AsyncClient, path: str, who: Account, **params: Any) -> Any:
    response = await get(client, path, who, **params)
    assert response.status_code == 200, response.text
    return response.json()


def orca_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail", "status_code"} and body["status_code"] == status, body
    detail: str = body["detail"]
    return detail


def without_timestamps(body: Any) -> Any:
    assert isinstance(body["timestamp"], float)
    return {key: value for key, value in body.items() if key != "timestamp"}


async def test_health_checks_redis_and_the_broker(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/health")  # public, as health checks are
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"status", "timestamp", "datetime", "checks", "response_time_ms"}
    assert body["status"] == "healthy"
    assert body["checks"] == {"redis": "healthy", "broker": "healthy"}
    assert isinstance(body["timestamp"], float) and isinstance(body["response_time_ms"], float)
    assert ORCA_DATETIME.fullmatch(body["datetime"]), body["datetime"]
    stamped = datetime.fromisoformat(body["datetime"]).replace(tzinfo=UTC).timestamp()
    assert abs(stamped - body["timestamp"]) < 1e-5  # one instant, two forms


async def test_every_read_answers_seed_002s_shapes(
    server: LiveServer, client: httpx.AsyncClient, trader: Account
) -> None:
    symbol, idle = new_symbol(), new_symbol()
    a = await open_account(client, trader, "PAAPEX2666680000001")
    b = await open_account(client, trader, "PAAPEX2666680000003")
    await tick(server, symbol, 100.0)
    await tick(server, idle, 10.0)
    await place(client, trader, a, symbol, side="BUY", type="MARKET", quantity=2)
    await place(client, trader, b, symbol, side="SELL", type="MARKET", quantity=3)
    await tick(server, symbol, 101.0)

    async def both_filled() -> bool:
        return bool((await ok(client, "positions", trader))["count"] == 2)

    await eventually(both_filled, timeout=30)
    partial = await place(
        client, trader, a, symbol, side="BUY", type="LIMIT", quantity=5, price=100.0
    )
    stop = await place(
        client, trader, a, symbol, side="SELL", type="STOP", quantity=1, stopPrice=10
    )
    stop_limit = await place(
        client,
        trader,
        b,
        symbol,
        side="BUY",
        type="STOP_LIMIT",
        quantity=1,
        price=200,
        stopPrice=150,
    )
    market = await place(client, trader, b, idle, side="BUY", type="MARKET", quantity=1.5)
    await tick(server, symbol, 99.0, size=2)  # fills 2 of the limit buy, at its price

    async def partly_filled() -> bool:
        orders = (await ok(client, "orders/pending", trader))["orders"]
        return any(o["status"] == "PartiallyFilled" for o in orders)

    await eventually(partly_filled, timeout=30)
    await tick(server, symbol, 102.0)  # the mark: fills nothing

    accounts = await ok(client, "accounts", trader, use_cache="false")
    assert without_timestamps(accounts) == {
        "accounts": [
            {"name": "PAAPEX2666680000001", "id": a, "active": True},
            {"name": "PAAPEX2666680000003", "id": b, "active": True},
        ],
        "count": 2,
        "cached": False,
    }

    positions = await ok(client, "positions", trader)
    assert [set(p) for p in positions["positions"]] == [
        {"id", "account_id", "instrument", "quantity", "side", "avg_price", "unrealized_pnl"}
    ] * 2
    ids = [p.pop("id") for p in positions["positions"]]
    assert all(i.isdigit() for i in ids) and len(set(ids)) == 2
    assert without_timestamps(positions) == {
        "positions": [
            {
                "account_id": a,
                "instrument": symbol,
                "quantity": 4,  # a whole quantity is an integer, as the seed shows it
                "side": "long",
                "avg_price": 100.5,
                "unrealized_pnl": 6.0,
            },
            {
                "account_id": b,
                "instrument": symbol,
                "quantity": 3,
                "side": "short",
                "avg_price": 101.0,
                "unrealized_pnl": -3.0,
            },
        ],
        "count": 2,
        "cached": False,
    }
    assert isinstance(positions["positions"][0]["quantity"], int)
    position_ids = await ok(client, "positions/ids", trader)
    assert without_timestamps(position_ids) == {"position_ids": ids, "count": 2, "cached": False}

    orders = await ok(client, "orders/pending", trader)
    expected_orders = [
        (partial, a, "Buy", 5, 100.0, "PartiallyFilled", "Limit"),
        (stop, a, "Sell", 1, 10.0, "Pending", "Stop"),
        (stop_limit, b, "Buy", 1, 200.0, "Pending", "StopLimit"),
        (market, b, "Buy", 1.5, None, "Working", "Market"),
    ]
    assert without_timestamps(orders) == {
        "orders": [
            {
                "order_id": order_id,
                "account_id": account_id,
                "instrument": idle if order_id == market else symbol,
                "side": side,
                "quantity": quantity,
                "price": price,
                "status": status,
                "order_type": order_type,
            }
            for order_id, account_id, side, quantity, price, status, order_type in expected_orders
        ],
        "count": 4,
        "cached": False,
    }
    order_ids = await ok(client, "orders/pending/ids", trader)
    assert without_timestamps(order_ids) == {
        "order_ids": [partial, stop, stop_limit, market],
        "count": 4,
        "cached": False,
    }

    balances = await ok(client, "balances", trader, use_cache="false")
    assert without_timestamps(balances) == {
        "balances": [
            {
                "account_id": a,
                "account_name": "PAAPEX2666680000001",
                "balance": 100_000.0,
                "net_liquidating_value": 100_006.0,
                "cash_balance": 100_000.0 - 2 * 101 - 2 * 100,
                "open_pl": 6.0,
                "realized_pl": 0.0,
            },
            {
                "account_id": b,
                "account_name": "PAAPEX2666680000003",
                "balance": 100_000.0,
                "net_liquidating_value": 99_997.0,
                "cash_balance": 100_000.0 + 3 * 101,
                "open_pl": -3.0,
                "realized_pl": 0.0,
            },
        ],
        "total_balance": 200_003.0,
        "count": 2,
        "cached": False,
    }

    snapshot = await ok(client, "batch/snapshot", trader)
    assert set(snapshot) == {"accounts", "positions", "orders", "balances", "metadata"}
    assert without_timestamps(snapshot["accounts"]) == without_timestamps(accounts)
    assert without_timestamps(snapshot["positions"]) == without_timestamps(
        await ok(client, "positions", trader)
    )
    assert without_timestamps(snapshot["orders"]) == without_timestamps(orders)
    assert without_timestamps(snapshot["balances"]) == without_timestamps(balances)
    metadata = snapshot["metadata"]
    assert set(metadata) == {"response_time_ms", "timestamp", "datetime"}
    assert ORCA_DATETIME.fullmatch(metadata["datetime"])
    stamped = datetime.fromisoformat(metadata["datetime"]).replace(tzinfo=UTC).timestamp()
    assert abs(stamped - metadata["timestamp"]) < 1e-5

    some = await ok(
        client, "batch/snapshot", trader, include_positions="false", include_balances="0"
    )
    assert set(some) == {"accounts", "orders", "metadata"}
    none = await ok(
        client,
        "batch/snapshot",
        trader,
        include_accounts="False",
        include_positions="false",
        include_orders="false",
        include_balances="false",
    )
    assert set(none) == {"metadata"}


async def test_a_user_without_accounts_reads_empty_answers(
    client: httpx.AsyncClient, trader: Account
) -> None:
    for path, field in [
        ("accounts", "accounts"),
        ("positions", "positions"),
        ("positions/ids", "position_ids"),
        ("orders/pending", "orders"),
        ("orders/pending/ids", "order_ids"),
    ]:
        body = await ok(client, path, trader)
        assert body[field] == [] and body["count"] == 0, (path, body)
    balances = await ok(client, "balances", trader)
    assert balances["balances"] == [] and balances["total_balance"] == 0
    assert isinstance(balances["total_balance"], float)  # 0.0, as seed 002 types it


async def test_amounts_are_floats_even_when_zero(
    server: LiveServer, client: httpx.AsyncClient, trader: Account
) -> None:
    """A typed client reads seed 002's amounts as floats: an account without positions has
    open_pl 0.0 (the broker's sum over nothing is 0), a flat short's P&L is 0.0, not -0.0."""
    symbol = new_symbol()
    idle = await open_account(client, trader, "IDLE")
    short = await open_account(client, trader, "SHORT")
    await tick(server, symbol, 100.0)
    await place(client, trader, short, symbol, side="SELL", type="MARKET", quantity=1)
    await tick(server, symbol, 101.0)  # fills the sell at 101, the mark stays 101

    async def filled() -> bool:
        return bool((await ok(client, "positions", trader))["count"] == 1)

    await eventually(filled, timeout=30)
    raw = (await get(client, "positions", trader)).text
    assert '"unrealized_pnl":0.0' in raw and "-0.0" not in raw, raw
    balances = (await ok(client, "balances", trader, account_ids=idle))["balances"]
    assert [type(value) for key, value in balances[0].items() if "_id" not in key] == [
        str,
        float,
        float,
        float,
        float,
        float,
    ], balances


async def test_filters_pick_the_callers_accounts(
    server: LiveServer, client: httpx.AsyncClient, trader: Account, bob: Account, admin: Account
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 50.0)
    a = await open_account(client, trader, "first")
    b = await open_account(client, trader, "second")
    c = await open_account(client, trader, "third")
    orders = {
        account_id: await place(
            client, trader, account_id, symbol, side="BUY", type="LIMIT", quantity=1, price=1
        )
        for account_id in (a, b, c)
    }

    def listed(body: Any, field: str, key: str) -> list[str]:
        return [item[key] for item in body[field]]

    by_ids = {"account_ids": f"{c},{a}"}
    assert listed(await ok(client, "accounts", trader, **by_ids), "accounts", "id") == [c, a]
    pending = await ok(client, "orders/pending", trader, **by_ids)
    assert listed(pending, "orders", "order_id") == [orders[a], orders[c]]
    assert (await ok(client, "orders/pending/ids", trader, **by_ids))["order_ids"] == [
        orders[a],
        orders[c],
    ]
    balances = await ok(client, "balances", trader, **by_ids)
    assert listed(balances, "balances", "account_id") == [c, a]
    assert balances["total_balance"] == 200_000.0
    spaced = await ok(client, "balances", trader, account_ids=f" {b} , {b}")  # repeats once
    assert listed(spaced, "balances", "account_id") == [b]

    named = await ok(client, "balances", trader, account_name="second")
    assert listed(named, "balances", "account_name") == ["second"]
    both = await ok(client, "orders/pending", trader, account_ids=f"{a},{b}", account_name="first")
    assert listed(both, "orders", "order_id") == [orders[a]]
    snapshot = await ok(client, "batch/snapshot", trader, account_name="third")
    assert listed(snapshot["accounts"], "accounts", "id") == [c]
    assert listed(snapshot["orders"], "orders", "account_id") == [c]
    assert listed(snapshot["balances"], "balances", "account_id") == [c]
    # Absent, account_name is no filter: seed 002's default name is not applied.
    assert (await ok(client, "accounts", trader))["count"] == 3

    theirs = await open_account(client, bob, "first")
    for path in READS:
        orca_error(await get(client, path, trader, account_ids=f"{a},{theirs}"), 403)
        orca_error(await get(client, path, trader, account_ids="D999999999999"), 404)
        assert "named" in orca_error(await get(client, path, trader, account_name="nobody"), 404)
        orca_error(await get(client, path, trader, account_ids=b, account_name="first"), 404)
    # The seed's default name, sent, is a filter like any other: this user has no such account.
    orca_error(await get(client, "accounts", trader, account_name="PAAPEX2666680000001"), 404)
    # An admin may name any account; without account_ids an admin reads their own.
    assert listed(await ok(client, "accounts", admin, account_ids=a), "accounts", "id") == [a]
    assert a not in listed(await ok(client, "accounts", admin), "accounts", "id")


async def test_errors_answer_in_orcas_format(client: httpx.AsyncClient, alice: Account) -> None:
    for path in READS:
        orca_error(await get(client, path, None), 401)
        bad_key = await client.get(
            f"{BASE}/{path}", headers={"Authorization": "Bearer th_nope_nope"}
        )
        orca_error(bad_key, 401)
        assert "use_cache" in orca_error(await get(client, path, alice, use_cache="maybe"), 422)
        for bad in ("x1", "D1,,D2", "D1;D2", ",".join(["D1"] * 101), "d1"):
            detail = orca_error(await get(client, path, alice, account_ids=bad), 422)
            assert "account_ids" in detail
        orca_error(await get(client, path, alice, account_name="n" * 65), 422)
    for flag in ("include_accounts", "include_positions", "include_orders", "include_balances"):
        response = await get(client, "batch/snapshot", alice, **{flag: "yes please"})
        assert flag in orca_error(response, 422)
    # An empty value is the parameter's absence, as on every route.
    assert (await ok(client, "positions", alice, use_cache="", account_ids=""))["cached"] is False


async def test_cached_accounts_are_the_old_answer_until_read_fresh(
    client: httpx.AsyncClient, trader: Account
) -> None:
    first = await open_account(client, trader, "one")
    fresh = await ok(client, "accounts", trader, use_cache="true")
    assert fresh["cached"] is False and [x["id"] for x in fresh["accounts"]] == [first]
    again = await ok(client, "accounts", trader)  # use_cache defaults to true here
    assert again == {**fresh, "cached": True}  # the same read, its timestamp included

    second = await open_account(client, trader, "two")
    stale = await ok(client, "accounts", trader, use_cache="true")
    assert stale == {**fresh, "cached": True}  # 300 s: the new account is not in it yet
    current = await ok(client, "accounts", trader, use_cache="false")
    assert current["cached"] is False and current["timestamp"] > fresh["timestamp"]
    assert [x["id"] for x in current["accounts"]] == [first, second]
    # A fresh read replaced the copy.
    assert await ok(client, "accounts", trader, use_cache="true") == {**current, "cached": True}

    # The snapshot reads each part through that part's cache.
    snapshot = await ok(
        client,
        "batch/snapshot",
        trader,
        use_cache="true",
        include_positions="false",
        include_orders="false",
    )
    assert snapshot["accounts"] == {**current, "cached": True}
    assert snapshot["balances"]["count"] == 2
    uncached = await ok(client, "batch/snapshot", trader)  # use_cache defaults to false here
    assert all(uncached[part]["cached"] is False for part in ("accounts", "balances"))


async def test_a_filter_and_a_user_have_copies_of_their_own(
    client: httpx.AsyncClient, trader: Account, settings: Settings
) -> None:
    other = await make_account(settings)
    mine = await open_account(client, trader, "same")
    await open_account(client, trader, "else")
    theirs = await open_account(client, other, "same")

    every = await ok(client, "accounts", trader, use_cache="true")
    assert every["count"] == 2
    named = await ok(client, "accounts", trader, use_cache="true", account_name="same")
    assert named["cached"] is False and [x["id"] for x in named["accounts"]] == [mine]
    their_answer = await ok(client, "accounts", other, use_cache="true", account_name="same")
    assert their_answer["cached"] is False
    assert [x["id"] for x in their_answer["accounts"]] == [theirs]
    their_every = await ok(client, "accounts", other, use_cache="true")
    assert their_every["cached"] is False and their_every["count"] == 1
    assert (await ok(client, "accounts", trader, use_cache="true")) == {**every, "cached": True}


async def test_positions_are_cached_for_a_second(
    server: LiveServer, client: httpx.AsyncClient, trader: Account
) -> None:
    symbol = new_symbol()
    account = await open_account(client, trader, "hft")
    await tick(server, symbol, 10.0)
    await place(client, trader, account, symbol, side="BUY", type="MARKET", quantity=1)
    await tick(server, symbol, 10.0)

    async def holding(quantity: int) -> bool:
        positions = (await ok(client, "positions", trader))["positions"]
        return [p["quantity"] for p in positions] == [quantity]

    await eventually(lambda: holding(1), timeout=30)

    async def cached_pair() -> bool:
        """A read and one right after it: within the TTL the second is the first's copy (on
        a machine too slow for that, the pair is tried again)."""
        first = await ok(client, "positions", trader, use_cache="true")
        second = await ok(client, "positions", trader, use_cache="true")
        ids = await ok(client, "positions/ids", trader, use_cache="true")
        if not (second["cached"] and ids["cached"]):
            return False
        assert second["timestamp"] == first["timestamp"] == ids["timestamp"]
        assert second["positions"] == first["positions"]
        assert ids["position_ids"] == [p["id"] for p in first["positions"]]
        return True

    await eventually(cached_pair, timeout=30)
    copy = await ok(client, "positions", trader, use_cache="true")
    assert copy["cached"] is True
    # use_cache=false never answers from the copy, and the default here is false.
    assert (await ok(client, "positions", trader, use_cache="false"))["cached"] is False
    assert (await ok(client, "positions", trader))["cached"] is False
    assert (await ok(client, "positions/ids", trader))["cached"] is False

    await place(client, trader, account, symbol, side="BUY", type="MARKET", quantity=1)
    await tick(server, symbol, 10.0)

    async def refreshed() -> bool:
        """Copies answer until the copy expires; then a read is fresh and sees the fill."""
        body = await ok(client, "positions", trader, use_cache="true")
        quantities = [p["quantity"] for p in body["positions"]]
        if body["cached"]:
            assert quantities in ([1], [2])  # the old copy, or one a fresh read made since
            return False
        return quantities == [2]

    await eventually(refreshed, timeout=30)


async def test_pending_orders_are_cached_for_a_second(
    server: LiveServer, client: httpx.AsyncClient, trader: Account
) -> None:
    symbol = new_symbol()
    account = await open_account(client, trader, "orders")
    await tick(server, symbol, 10.0)
    first = await place(
        client, trader, account, symbol, side="BUY", type="LIMIT", quantity=1, price=1
    )

    async def cached_pair() -> bool:
        fresh = await ok(client, "orders/pending", trader, use_cache="true")
        copy = await ok(client, "orders/pending/ids", trader, use_cache="true")
        if not copy["cached"]:
            return False
        assert copy["timestamp"] == fresh["timestamp"] and copy["order_ids"] == [first]
        return True

    await eventually(cached_pair, timeout=30)
    second = await place(
        client, trader, account, symbol, side="BUY", type="LIMIT", quantity=1, price=2
    )

    async def refreshed() -> bool:
        body = await ok(client, "orders/pending/ids", trader, use_cache="true")
        if body["cached"]:
            assert body["order_ids"] in ([first], [first, second])
            return False
        assert body["order_ids"] == [first, second]
        return True

    await eventually(refreshed, timeout=30)
