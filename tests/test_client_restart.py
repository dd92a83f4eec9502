"""A hub process restarted under the client's open subscriptions: the client reconnects with
backoff and resumes each channel from the last sequence it delivered (and its epoch), so the bot
sees every order event and every tick once, in order, including those published while the hub
was down; an order sent while it was down is placed once, when it is back."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
from tradehub_client import AsyncClient, Backoff

from hub.settings import Settings
from tests.conftest import ROOT, Account, LiveServer, free_port
from tests.helpers import eventually, hub_env
from tests.test_client import Collector, new_symbol, tick

ORDERS_PER_PHASE = 4


class HubProcess:
    """``python -m hub serve`` on a fixed port, which can be stopped and started again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            env=hub_env(self.settings, TRADEHUB_PORT=str(self.port)),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:

            async def ready() -> bool:
                assert self.process is not None and self.process.poll() is None, "hub exited"
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=90, pause=0.2)

    async def stop(self) -> None:
        """SIGTERM, as a deploy restarts it: uvicorn closes the open sockets (1012) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.process.wait, 30)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@contextlib.contextmanager
def hub_process(settings: Settings) -> Iterator[HubProcess]:
    hub = HubProcess(settings)
    try:
        yield hub
    finally:
        hub.kill()


async def test_a_hub_restart_mid_subscription_loses_and_repeats_nothing(
    server: LiveServer, settings: Settings, alice: Account
) -> None:
    symbol = new_symbol()
    await tick(server, symbol, 100.0)
    prices = [100.0]
    with hub_process(settings) as remote:
        await remote.start()
        # The bot follows the hub process; the desk trades through the test's own hub, which
        # keeps publishing while the bot's hub is away.
        async with (
            AsyncClient(
                remote.url, api_key=alice.token, backoff=Backoff(initial=0.05, maximum=0.5)
            ) as bot,
            AsyncClient(server.url, api_key=alice.token) as desk,
        ):
            account = (await desk.gql.create_paper_account(f"rs-{secrets.token_hex(3)}")).id
            orders = Collector(bot.subscribe(f"account:{account}:orders", since=0))
            ticks = Collector(bot.subscribe(f"ticks:{symbol}", since=0))

            async def trade(phase: int) -> None:
                for _ in range(ORDERS_PER_PHASE):
                    await desk.place_order(account, symbol, "buy", 1)
                    prices.append(100.0 + len(prices))
                    await tick(server, symbol, prices[-1])  # fills it

            await trade(1)
            await orders.count(2 * ORDERS_PER_PHASE)
            await ticks.count(len(prices))
            await remote.stop()
            # Away: events keep coming, and the bot sends an order of its own.
            await trade(2)
            held = asyncio.create_task(
                bot.place_order(account, symbol, "sell", 1, client_order_id="while-away")
            )
            await remote.start()
            ack = await asyncio.wait_for(held, timeout=60)
            prices.append(100.0 + len(prices))
            await tick(server, symbol, prices[-1])  # fills the bot's order
            await trade(3)
            total = 2 * (3 * ORDERS_PER_PHASE + 1)
            events = await orders.count(total, timeout=60)
            seen = await ticks.count(len(prices), timeout=60)
            # Exactly these: a repeat would have filled the count before the last event came.
            assert [e.seq for e in orders.events] == list(range(1, total + 1))
            assert [e.seq for e in ticks.events] == list(range(1, len(prices) + 1))
            assert [e.data["price"] for e in seen] == prices
            assert len({e.epoch for e in seen}) == 1
            assert bot.feed.reconnects >= 2  # both subscriptions came back
            mine = [o for o in await desk.gql.orders(account) if o.client_order_id == "while-away"]
            assert [o.id for o in mine] == [ack.order_id]  # placed once
            statuses = [e.data["order"]["status"] for e in events if e.data["event"] == "filled"]
            assert len(statuses) == 3 * ORDERS_PER_PHASE + 1
            await orders.stop()
            await ticks.stop()
