"""The jobs and market-data pages: a job's live status and its cancel button (signed in with an
API key), and a symbol's ticks drawn as they arrive (issue 14, item 1)."""

from __future__ import annotations

import secrets
import time

import httpx

from tests.browser.conftest import Browsing, Trader, screenshot, sign_in
from tests.conftest import Account, operation
from tests.helpers import graphql


async def test_a_pending_job_shows_and_is_cancelled_from_its_button(
    web: Browsing, client: httpx.AsyncClient, admin: Account
) -> None:
    body = await graphql(
        client,
        operation("GenerateSyntheticDataset"),
        {"input": {"symbol": f"JOB{secrets.token_hex(3).upper()}", "bars": 10}},
        token=admin.token,
    )
    job_id = body["data"]["generateSyntheticDataset"]["jobId"]
    page = await web.page("/#/jobs")
    dialog = page.locator("#signin")
    await dialog.get_by_role("button", name="API key").click()
    await dialog.locator("input[name=key]").fill(admin.token)
    await dialog.get_by_role("button", name="Sign in with key").click()
    await dialog.wait_for(state="hidden")
    row = page.locator(f"tr[data-key='{job_id}']")
    await row.wait_for()
    await screenshot(page, "jobs")
    if await row.get_by_role("button", name="Cancel").count():
        await row.get_by_role("button", name="Cancel").click()
        await row.locator(".badge.cancelled, .badge.completed").wait_for()
    got = (await client.get(f"/api/jobs/{job_id}", headers=admin.headers)).json()
    assert got["status"] in ("CANCELLED", "COMPLETED")


async def test_a_symbols_ticks_are_drawn_as_they_arrive(
    web: Browsing, trader: Trader, client: httpx.AsyncClient, admin: Account
) -> None:
    symbol = f"MD{secrets.token_hex(3).upper()}"
    prices = [100.0, 100.5, 99.75, 101.25, 100.9]
    await post_tick(client, admin, symbol, prices[0])  # before: from the hub's recent ticks
    page = await web.page(f"/#/market/{symbol}")
    await sign_in(page, trader)
    await page.locator("#ticks[data-points='1']").wait_for()
    for price in prices[1:]:  # after: as they arrive
        await post_tick(client, admin, symbol, price)
    await page.locator(f"#ticks[data-points='{len(prices)}']").wait_for()
    assert "100.9000" in await page.locator("#last-tick").inner_text()
    await screenshot(page, "market")


async def post_tick(client: httpx.AsyncClient, admin: Account, symbol: str, price: float) -> None:
    got = await client.post(
        "/api/v1/marketdata/ticks",
        json={"ticks": [{"symbol": symbol, "ts": time.time_ns(), "price": price}]},
        headers=admin.headers,
    )
    assert got.status_code == 200, got.text
