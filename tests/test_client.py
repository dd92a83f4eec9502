"""The Python client (``client/``) against a real hub: login, the REST families and GraphQL
operations typed, ``subscribe`` with resume, ``recovered: false`` raised, a JWT refreshed on
an open subscription, and order entry on ``/ws``."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator

import pytest
from tradehub_client import (
    AsyncClient,
    AuthenticationError,
    Backoff,
    BadOrder,
    Client,
    FeedEvent,
    GraphQLError,
    HistoryGone,
    OrderConflict,
    SubscriptionRefused,
)
from tradehub_client import operations as client_operations
from tradehub_client.payloads import OrderEvent, PositionsState

from hub.server import GuardedWebSocketProtocol
from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, make_account
from tests.helpers import eventually

PASSWORD = "correct horse battery"
FAST = Backoff(initial=0.05, maximum=0.5)


async def tick(server: LiveServer, symbol: str, price: float) -> None:
    await server.lifespan_state.marketdata.publish_tick(
        symbol, {"ts": time.time_ns(), "price": price, "recv_ns": time.time_ns()}
    )


def new_symbol() -> str:
    return f"CL{secrets.token_hex(4).upper()}"


class Collector:
    """Events of one subscription gathered by a task, for the test to wait on."""

    def __init__(self, events: AsyncIterator[FeedEvent]) -> None:
        self.events: list[FeedEvent] = []
        self.error: BaseException | None = None
        self._iterator = events
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._iterator:
                self.events.append(event)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            self.error = exc

    async def count(self, n: int, timeout: float = 30) -> list[FeedEvent]:
        async def enough() -> bool:
            if self.error is not None:
                raise self.error
            return len(self.events) >= n

        await eventually(enough, timeout=timeout, pause=0.02)
        return self.events

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self._iterator.aclose()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
async def carol(settings: Settings) -> Account:
    return await make_account(settings, password=PASSWORD)


@pytest.fixture
async def hub(server: LiveServer, carol: Account) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        server.url, username=carol.username, password=PASSWORD, backoff=FAST
    ) as client:
        yield client


async def test_login_and_graphql_operations(hub: AsyncClient, carol: Account) -> None:
    token = await hub.login()
    assert token.count(".") == 2 and hub.tokens.logins == 1  # a JWT
    me = await hub.gql.me()
    assert me.username == carol.username and me.role == "USER"
    assert (await hub.gql.health()).postgres is True
    data = await hub.execute("Me")
    assert data["me"]["userId"] == me.user_id
    account = await hub.gql.create_paper_account(f"cl-{secrets.token_hex(3)}", initialBalance=5000)
    assert account.initial_balance == 5000 and account.broker == "paper"
    assert account.id in {a.id for a in await hub.gql.accounts()}
    assert (await hub.gql.account(account.id)).name == account.name
    balances = await hub.gql.balances(account.id)
    assert balances.cash == 5000 and balances.account_id == account.id
    assert (await hub.gql.positions(account.id)).positions == []
    assert await hub.gql.orders(account.id) == []
    jobs = await hub.gql.jobs(limit=5)
    assert jobs.count >= 0
    with pytest.raises(GraphQLError) as refused:
        await hub.gql.account("D999999999")
    assert refused.value.errors
    with pytest.raises(ValueError, match="subscription"):
        await hub.execute("OrderUpdates", {"accountId": account.id})
    with pytest.raises(KeyError, match="no GraphQL operation named 'Nope'"):
        await hub.execute("Nope")


def test_the_packaged_operations_are_the_contracts() -> None:
    shipped = client_operations.load()
    files = sorted(p.stem for p in (ROOT / "graphql" / "operations").glob("*.graphql"))
    assert sorted(shipped) == files
    for name in files:
        text = (ROOT / "graphql" / "operations" / f"{name}.graphql").read_text()
        assert shipped[name].document == text


async def test_rest_trading_family_typed(
    server: LiveServer, hub: AsyncClient, carol: Account
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    account = await hub.gql.create_paper_account(f"cl-{secrets.token_hex(3)}")
    filled = await hub.gql.place_order(account.id, symbol, "buy", 2)
    limit = await hub.gql.place_order(account.id, symbol, "buy", 1, type="limit", price=50.0)
    assert limit.status == "WORKING"
    await tick(server, symbol, 100.0)  # market orders fill at the next tick

    async def position() -> bool:
        return bool((await hub.gql.positions(account.id)).positions)

    await eventually(position)
    accounts = await hub.trading.accounts(account_ids=[account.id], use_cache=False)
    assert [(a.id, a.name) for a in accounts.accounts] == [(account.id, account.name)]
    positions = await hub.trading.positions(account_ids=[account.id])
    assert [(p.instrument, p.quantity, p.side) for p in positions.positions] == [
        (symbol, 2, "long")
    ]
    pending = await hub.trading.pending_orders(account_ids=[account.id])
    assert [(o.order_id, o.order_type, o.price) for o in pending.orders] == [
        (limit.id, "Limit", 50.0)
    ]
    assert (await hub.trading.pending_order_ids(account_ids=[account.id])).order_ids == [limit.id]
    balances = await hub.trading.balances(account_ids=[account.id], use_cache=False)
    assert balances.balances[0].cash_balance == pytest.approx(100_000 - 2 * 100.0)
    snapshot = await hub.trading.snapshot(account_ids=[account.id], include_balances=False)
    assert snapshot.balances is None and snapshot.positions is not None
    assert (await hub.trading.health()).status in ("healthy", "degraded")
    cancelled = await hub.gql.cancel_order(limit.id)
    assert cancelled.status == "CANCELLED" and filled.symbol == symbol
    from tradehub_client import ApiError

    with pytest.raises(ApiError) as refused:
        await hub.trading.positions(account_ids=["D1"])
    assert refused.value.status in (403, 404) and refused.value.message


async def test_bad_credentials_are_an_authentication_error(
    server: LiveServer, carol: Account
) -> None:
    async with AsyncClient(server.url, username=carol.username, password="wrong-password") as bad:
        with pytest.raises(AuthenticationError) as refused:
            await bad.gql.me()
        assert refused.value.status == 401
    async with AsyncClient(server.url, api_key="th_not_a_key") as bad:
        with pytest.raises(AuthenticationError):
            await bad.gql.me()
        with pytest.raises(AuthenticationError):
            async for _ in bad.subscribe("ticks:X"):
                pass


async def test_subscribe_replays_then_follows_then_resumes(
    server: LiveServer, hub: AsyncClient
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    account = await hub.gql.create_paper_account(f"cl-{secrets.token_hex(3)}")
    channel = f"account:{account.id}:orders"
    for _ in range(3):
        await hub.place_order(account.id, symbol, "buy", 1)
    await tick(server, symbol, 101.0)  # market orders fill at the next tick
    history = Collector(hub.subscribe(channel, since=0))
    first = await history.count(6)  # created and filled, each order
    assert [e.seq for e in first] == list(range(1, 7))
    assert {e.data["event"] for e in first} == {"created", "filled"}
    fills = [e.parse(OrderEvent) for e in first if e.data["event"] == "filled"]
    assert [(f.order.status, f.fill and f.fill.price) for f in fills] == [("filled", 101.0)] * 3
    await hub.place_order(account.id, symbol, "sell", 1)
    await tick(server, symbol, 102.0)
    live = await history.count(8)
    assert [e.seq for e in live] == list(range(1, 9))
    await history.stop()
    # Resuming from a sequence delivers exactly what follows it.
    again = Collector(hub.subscribe(channel, since=5))
    resumed = await again.count(3)
    assert [e.seq for e in resumed] == [6, 7, 8]
    await again.stop()
    # A state topic starts with its current state (a mark may follow it at once).
    state = Collector(hub.subscribe(f"account:{account.id}:positions"))
    current = (await state.count(1))[0]
    held = current.parse(PositionsState)
    assert [(p.symbol, p.quantity) for p in held.positions] == [(symbol, 2)]
    await state.stop()


async def test_subscribe_survives_dropped_sockets(server: LiveServer, hub: AsyncClient) -> None:
    """The hub cuts the socket (its send times out, a proxy drops it): the client reconnects
    and resumes from the last sequence it delivered, so nothing is lost or repeated."""
    symbol = new_symbol()
    collector = Collector(hub.subscribe(f"ticks:{symbol}", since=0))
    prices = [100.0 + i for i in range(60)]
    before = hub.feed.reconnects
    for i, price in enumerate(prices):
        await tick(server, symbol, price)
        if i % 20 == 10:
            await collector.count(i + 1)
            await _drop_feed_sockets(server)
    events = await collector.count(len(prices))
    assert [e.data["price"] for e in events] == prices
    assert [e.seq for e in events] == list(range(1, len(prices) + 1))
    assert len({e.epoch for e in events}) == 1
    assert hub.feed.reconnects > before
    await collector.stop()


async def _drop_feed_sockets(server: LiveServer) -> None:
    """Abort every /ws connection the hub holds, as a network failure would."""
    for connection in list(server.server.server_state.connections):
        if isinstance(connection, GuardedWebSocketProtocol) and connection.scope["path"] == "/ws":
            connection.transport.abort()


async def test_history_gone_is_raised(server: LiveServer, hub: AsyncClient) -> None:
    symbol = new_symbol()
    topic = f"ticks:{symbol}"
    for price in (1.0, 2.0, 3.0):
        await tick(server, symbol, price)
    # A resume from another epoch: what followed it is gone.
    with pytest.raises(HistoryGone) as gone:
        async for _ in hub.subscribe(topic, since=2, epoch="0000000000000000"):
            pass
    assert gone.value.missed == (3, None) and gone.value.channel == topic
    # Redis loses the topic's history under a live subscriber: the next ticks start a new
    # epoch, and the client says so instead of handing over a hole.
    collector = Collector(hub.subscribe(topic, since=0))
    await collector.count(3)
    keys = server.lifespan_state.keys
    await server.lifespan_state.redis.delete(keys.topic_sequence(topic), keys.topic_history(topic))
    await tick(server, symbol, 4.0)

    async def raised() -> bool:
        return collector.task.done()

    await eventually(raised)
    assert isinstance(collector.error, HistoryGone), collector.error
    assert [e.seq for e in collector.events] == [1, 2, 3]
    # Refusals are final and typed.
    with pytest.raises(SubscriptionRefused) as refused:
        async for _ in hub.subscribe("nonsense:topic"):
            pass
    assert refused.value.code == "unknown_channel"


async def test_order_entry_on_ws(server: LiveServer, hub: AsyncClient, alice: Account) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    account = await hub.gql.create_paper_account(f"cl-{secrets.token_hex(3)}")
    ack = await hub.place_order(account.id, symbol, "buy", 1, type="limit", price=90.0)
    assert ack.op == "order_accepted" and ack.status == "working"
    again = await hub.place_order(
        account.id, symbol, "buy", 1, type="limit", price=90.0, client_order_id=ack.id
    )
    assert again.order_id == ack.order_id  # the same id never makes a second order
    cancelled = await hub.cancel_order(ack.order_id)
    assert cancelled.op == "order_cancelled" and cancelled.status == "cancelled"
    with pytest.raises(OrderConflict) as finished:
        await hub.cancel_order(ack.order_id)
    assert finished.value.status == "cancelled"
    with pytest.raises(BadOrder) as bad:
        await hub.place_order(account.id, symbol, "buy", 1, type="limit")
    assert bad.value.field == "price"
    orders = await hub.gql.orders(account.id)
    assert len(orders) == 1


@pytest.fixture(scope="module")
async def short_jwt_server(settings: Settings) -> AsyncIterator[LiveServer]:
    # Settings refuse a TTL under a minute; the test copies past the check to keep it short.
    live = LiveServer(settings.model_copy(update={"jwt_ttl_seconds": 4}))
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


# A login costs the hub an argon2 hash (most of a second on a busy machine): ahead of a
# 4-second JWT (3 to 4 s of life: its exp is whole seconds) the client starts 2.5 s early.
@pytest.mark.parametrize("margin", [2.5, -60.0], ids=["ahead-of-expiry", "on-refusal"])
async def test_an_expiring_jwt_is_refreshed_under_a_subscription(
    short_jwt_server: LiveServer, carol: Account, margin: float
) -> None:
    """Default: the client logs in again before the JWT expires and re-authenticates the open
    socket. With a margin that never comes, the hub closes the socket at expiry and the client
    logs in again then; either way the subscription goes on with nothing lost."""
    server = short_jwt_server
    symbol = new_symbol()
    async with AsyncClient(
        server.url, username=carol.username, password=PASSWORD, refresh_margin=margin, backoff=FAST
    ) as client:
        collector = Collector(client.subscribe(f"ticks:{symbol}", since=0))
        prices: list[float] = []
        while client.tokens.logins < 3:  # past two expiries
            prices.append(float(len(prices)))
            await tick(server, symbol, prices[-1])
            await collector.count(len(prices))
            await asyncio.sleep(0.05)  # a market's pace: the JWT must expire under it
        events = await collector.count(len(prices))
        assert [e.data["price"] for e in events] == prices
        assert [e.seq for e in events] == list(range(1, len(prices) + 1))
        if margin > 0:
            assert client.feed.reconnects == 0  # re-authenticated in place
        else:
            assert client.feed.reconnects >= 2
        await collector.stop()


async def test_the_blocking_client(server: LiveServer, carol: Account) -> None:
    """``Client`` from a thread without a loop (the hub runs on this test's loop)."""
    symbol = new_symbol()
    await tick(server, symbol, 100.0)

    def trade() -> None:
        with Client(server.url, username=carol.username, password=PASSWORD) as client:
            assert client.gql.me().username == carol.username
            account = client.gql.create_paper_account(f"cl-{secrets.token_hex(3)}")
            client.execute("Positions", {"accountId": account.id})
            listed = client.trading.accounts(account_ids=[account.id], use_cache=False)
            assert [a.id for a in listed.accounts] == [account.id]
            ack = client.place_order(account.id, symbol, "buy", 1, type="limit", price=1.0)
            assert ack.status == "working"
            events = client.subscribe(f"account:{account.id}:orders", since=0)
            first = next(events)
            assert first.seq == 1 and first.data["event"] == "created"
            events.close()
            assert client.cancel_order(ack.order_id).status == "cancelled"

    await asyncio.wait_for(asyncio.to_thread(trade), timeout=60)
