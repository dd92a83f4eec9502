"""A live curve on an open page survives a restart of the hub serving it: the page says it is
reconnecting, resumes from the last sequence it holds, and ends with exactly the points of the
REST equity route, none missing, none twice; then the run is stopped from its page (issue 14,
item 2)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from hub.settings import Settings
from tests.browser.conftest import Trader, browsing, screenshot, sign_in
from tests.browser.test_browser_dashboard import drawn, rest_equity
from tests.conftest import ROOT, Account, LiveServer, free_port
from tests.helpers import eventually, hub_env, running_worker
from tests.test_live import paper_account
from tests.test_live_runs import Feed, new_symbol, processed, started, zigzag


@contextlib.contextmanager
def hub_process(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``tradehub serve`` in its own process on ``port``; stopped (SIGTERM) on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        env=hub_env(settings, TRADEHUB_PORT=str(port)),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


async def ready(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:

        async def answers() -> bool:
            try:
                return (await http.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(answers, timeout=60, pause=0.2)


@contextlib.asynccontextmanager
async def serving(settings: Settings, port: int) -> AsyncIterator[None]:
    with hub_process(settings, port):
        await ready(f"http://127.0.0.1:{port}")
        yield


async def test_a_live_curve_resumes_across_a_hub_restart_with_no_gap_or_duplicate(
    browser: Any,
    settings: Settings,
    server: LiveServer,
    client: httpx.AsyncClient,
    admin: Account,
    trader: Trader,
) -> None:
    who = trader.account
    feed = Feed(client, admin, new_symbol())
    await feed.send(100.0)
    account = await paper_account(client, who)
    prices = zigzag(90, seed=11)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with running_worker(settings):
        run_id = await started(client, who, feed, account)
        await feed.send(*prices[:30])
        await processed(client, who, run_id, 25)
        async with browsing(browser, url) as web:
            async with serving(settings, port):
                page = await web.page(f"/#/executions/{run_id}")
                await sign_in(page, trader)
                await page.locator("#conn[data-state=live]").wait_for()
                before = await rest_equity(client, who, run_id)

                async def shown_before() -> bool:
                    return len(await drawn(page)) >= len(before) > 0

                await eventually(shown_before, timeout=30)
            # The hub is gone: the page says so, and the run goes on meanwhile.
            await page.locator("#conn[data-state=reconnecting]").wait_for()
            await screenshot(page, "restart-reconnecting")
            await feed.send(*prices[30:60])
            await processed(client, who, run_id, 55)
            async with serving(settings, port):
                await page.locator("#conn[data-state=live]").wait_for(timeout=60_000)
                await feed.send(*prices[60:])
                await processed(client, who, run_id, len(prices) - 1)
                after = await rest_equity(client, who, run_id)
                assert after == list(range(1, len(after) + 1))
                assert len(after) > len(before)

                async def caught_up() -> bool:
                    return await drawn(page) == after

                await eventually(caught_up, timeout=30)
                equity = page.locator("#equity")
                assert await equity.get_attribute("data-gaps") == "0"
                assert await equity.get_attribute("data-duplicates") == "0"
                await screenshot(page, "restart-resumed")
                # Stopped from its page: the header follows the run to STOPPED.
                await page.locator("#stop-execution").click()
                await page.locator(".status[data-status=STOPPED]").wait_for(timeout=60_000)
                assert await page.locator("#stop-execution").is_hidden()
