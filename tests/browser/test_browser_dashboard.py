"""The dashboard against a real hub and worker: sign in, start a backtest from the form and watch
its curve and trades fill, a refused input shown beside its field, an expired session asked
again over the page it left, a paper order placed and cancelled (issue 14, items 1 and 2)."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hub.settings import Settings
from tests.browser.conftest import Browsing, Trader, browsing, screenshot, sign_in
from tests.conftest import Account, LiveServer
from tests.helpers import eventually, generate_dataset, running_worker


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


async def rest_equity(client: httpx.AsyncClient, who: Account, execution_id: str) -> list[int]:
    """Every sequence of the curve, through the REST equity route (seed 003), page by page."""
    sequences: list[int] = []
    url: str | None = f"/api/trading/executions/{execution_id}/equity/?page_size=1000"
    while url:
        got = await client.get(url, headers=who.headers)
        assert got.status_code == 200, got.text
        body = got.json()
        sequences += [p["sequence"] for p in body["equity_curve"]]
        url = body["next"]
    return sequences


async def drawn(page: Any) -> list[int]:
    """The sequences the page's equity chart holds, in order."""
    return list(await page.locator("#equity").evaluate("el => el.chart.seqs"))


async def test_a_backtest_started_from_the_form_fills_its_curve_and_trades(
    web: Browsing,
    trader: Trader,
    server: LiveServer,
    client: httpx.AsyncClient,
    admin: Account,
    worker: None,
) -> None:
    symbol = f"WEB{secrets.token_hex(3).upper()}"
    await generate_dataset(server.url, admin, symbol, bars=1500, seed=5)
    page = await web.page("/#/executions")
    await sign_in(page, trader)
    form = page.locator("#start-backtest")
    await form.locator("select[name=strategy] option[value=sma_crossover]").wait_for(
        state="attached"
    )
    await form.locator("select[name=strategy]").select_option("sma_crossover")
    # A refused input: the server's message beside the field it names.
    await form.locator("input[name=symbol]").fill("NO_SUCH_SYMBOL")
    await form.locator("input[name=timeframe]").fill("1h")
    await form.get_by_role("button", name="Start backtest").click()
    error = form.locator("[data-error-for=symbol]")
    await error.wait_for()
    assert "NO_SUCH_SYMBOL" in await error.inner_text()
    assert await form.locator("input[name=symbol]").get_attribute("aria-invalid") == "true"
    await screenshot(page, "backtest-form-error")

    await form.locator("input[name=symbol]").fill(symbol)
    await form.locator("input[data-param=fast]").fill("5")
    await form.locator("input[data-param=slow]").fill("20")
    await form.get_by_role("button", name="Start backtest").click()
    await page.wait_for_url("**/#/executions/*")
    execution_id = page.url.rsplit("/", 1)[1]
    await page.locator(".status[data-status=COMPLETED]").wait_for(timeout=120_000)
    rest = await rest_equity(client, trader.account, execution_id)
    assert len(rest) > 1000

    async def curve_complete() -> bool:
        return await drawn(page) == rest

    await eventually(curve_complete, timeout=30)
    trades = (
        await client.get(
            f"/api/trading/executions/{execution_id}/trades/?page_size=1000",
            headers=trader.account.headers,
        )
    ).json()
    assert trades["count"] > 0
    count = page.locator("#trade-count")
    await count.filter(has_text=str(trades["count"])).wait_for()
    assert await page.locator(".trades tbody tr:not(.empty)").count() == min(trades["count"], 500)
    equity = page.locator("#equity")
    assert await equity.get_attribute("data-gaps") == "0"
    assert await equity.get_attribute("data-duplicates") == "0"
    await screenshot(page, "execution")

    # The list shows it, completed.
    await page.goto(web.base_url + "/#/executions")
    row = page.locator(f"tr[data-key='{execution_id}']")
    await row.locator(".badge.completed").wait_for()

    # Reloaded while signed in, the page sends its curve's query before its modules load, and
    # draws that answer.
    await page.goto(f"{web.base_url}/#/executions/{execution_id}")
    await page.reload()
    await page.locator("#equity[data-first-draw-at]").wait_for()
    await eventually(curve_complete, timeout=30)
    assert await page.evaluate("window.tradehubEarly === null")

    # At a phone's width the page and its chart fit the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.locator("#equity .uplot").evaluate(
        "el => new Promise(r => { const f = () => el.offsetWidth <= 390 ? r() : "
        "requestAnimationFrame(f); f(); })"
    )
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await screenshot(page, "phone-execution")


async def test_an_expired_session_asks_again_over_the_page_it_left(
    web: Browsing, trader: Trader
) -> None:
    page = await web.page("/#/accounts")
    await sign_in(page, trader)
    name = page.locator("#create-account input[name=name]")
    await name.fill("kept while signing in again")
    # The session ends (an expired or revoked credential): the next call is refused.
    await page.evaluate("sessionStorage.setItem('tradehub.token', 'expired-' + Date.now())")
    await page.locator("#create-account input[name=initialBalance]").fill("-5")
    await page.locator("#create-account").get_by_role("button").click()
    await page.locator("#signin").wait_for()
    await sign_in(page, trader)
    assert page.url.endswith("#/accounts")
    assert await name.input_value() == "kept while signing in again"
    # The refused value is the server's to name: beside the initial balance.
    await page.locator("#create-account").get_by_role("button").click()
    error = page.locator("#create-account [data-error-for=initialBalance]")
    await error.wait_for()
    assert await error.inner_text()


async def post_ticks(
    client: httpx.AsyncClient, admin: Account, symbol: str, *prices: float
) -> None:
    batch = [{"symbol": symbol, "ts": time.time_ns(), "price": p} for p in prices]
    got = await client.post(
        "/api/v1/marketdata/ticks", json={"ticks": batch}, headers=admin.headers
    )
    assert got.status_code == 200, got.text


async def test_a_paper_order_placed_and_cancelled_from_the_ticket(
    web: Browsing, trader: Trader, client: httpx.AsyncClient, admin: Account
) -> None:
    symbol = f"PO{secrets.token_hex(3).upper()}"
    await post_ticks(client, admin, symbol, 100.0)
    page = await web.page("/#/accounts")
    await sign_in(page, trader)
    await page.locator("#create-account input[name=name]").fill(f"paper-{secrets.token_hex(3)}")
    await page.locator("#create-account").get_by_role("button").click()
    await page.wait_for_url("**/#/accounts/*")
    balances = page.locator("#balances")
    await balances.locator("[data-key=cash]").filter(has_text="100,000.00").wait_for()
    await page.locator("#conn[data-state=live]").wait_for()

    ticket = page.locator("#order-ticket")
    await ticket.locator("input[name=symbol]").fill(symbol)
    await ticket.locator("input[name=quantity]").fill("3")
    await ticket.get_by_role("button", name="Place order").click()
    await page.locator("#ticket-result").filter(has_text=symbol).wait_for()
    await post_ticks(client, admin, symbol, 101.0)  # the market order fills at this tick
    position = page.locator(".positions tr", has_text=symbol)
    await position.locator("td[data-label=Quantity]").filter(has_text="3.0000").wait_for()
    await balances.locator("[data-key=cash]").filter(has_text="99,697.00").wait_for()
    await page.locator(".fills tbody tr:not(.empty)").first.wait_for()

    # A resting limit: working, then cancelled from its button.
    await ticket.locator("select[name=type]").select_option("LIMIT")
    await ticket.locator("input[name=price]").fill("50")
    await ticket.get_by_role("button", name="Place order").click()
    working = page.locator(".orders tbody tr:not(.empty)", has_text=symbol)
    await working.wait_for()
    await screenshot(page, "account")
    await working.get_by_role("button", name="Cancel").click()
    await working.wait_for(state="detached")
    await page.locator(".orders tr.empty").wait_for()

    # A refused order: the server's message beside the field it names.
    await ticket.locator("input[name=quantity]").fill("-1")
    await ticket.get_by_role("button", name="Place order").click()
    error = ticket.locator("[data-error-for=quantity]")
    await error.wait_for()
    assert await error.inner_text()


async def test_the_dashboard_reads_at_a_phone_width(
    browser: Any, server: LiveServer, trader: Trader
) -> None:
    async with browsing(browser, server.url, width=390, height=844) as phone:
        page = await phone.page("/#/executions")
        await sign_in(page, trader)
        await page.locator("#start-backtest select[name=strategy] option").first.wait_for(
            state="attached"
        )
        # Nothing wider than the screen but the tables' own scrolling boxes.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        await screenshot(page, "phone-executions")
        for name, path, ready in [
            ("accounts", "#/accounts", "#create-account"),
            ("jobs", "#/jobs", "table"),
            ("market", "#/market/PHONE", "#ticks"),
        ]:
            await page.goto(phone.base_url + "/" + path)
            await page.locator(ready).first.wait_for()
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390, name
            await screenshot(page, f"phone-{name}")
