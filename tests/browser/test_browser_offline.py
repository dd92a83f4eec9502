"""The dashboard, GraphiQL and the REST docs render with every request to anything but the hub
refused: their scripts and styles come from the wheel, not from a CDN (issue 14, item 5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.browser.conftest import Browsing, Trader, screenshot, sign_in


async def test_the_dashboard_renders_with_only_the_hub_reachable(
    web: Browsing, trader: Trader
) -> None:
    page = await web.page("/")
    await page.locator("#signin input[name=username]").wait_for()
    await screenshot(page, "offline-signin")
    await sign_in(page, trader)
    await page.locator("#start-backtest select[name=strategy] option").first.wait_for(
        state="attached"
    )
    assert "Loading..." not in await page.locator("#view").inner_text()
    await page.locator("#conn[data-state=live]").wait_for()
    await screenshot(page, "offline-dashboard")
    assert web.blocked == []


async def test_graphiql_renders_and_runs_a_query_with_only_the_hub_reachable(
    web: Browsing, trader: Trader
) -> None:
    page: Any = await web.page("/")
    await sign_in(page, trader)
    await page.get_by_role("link", name="GraphiQL").click()  # same tab: same session
    await page.wait_for_url("**/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await editor.wait_for()
    assert "Loading..." not in await page.locator("#graphiql").inner_text()
    # The schema came from the hub: the docs explorer lists the root types.
    await page.get_by_role("button", name="Show Documentation Explorer").click()
    await page.locator(".graphiql-doc-explorer").get_by_text("Query", exact=True).first.wait_for()
    # A query runs with the dashboard's credential.
    await page.goto(web.base_url + "/graphql?q=" + quote("{ me { username role } }"))
    await editor.wait_for()
    await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
    result = page.locator(".graphiql-response")
    await result.filter(has_text=trader.account.username).wait_for()
    await screenshot(page, "offline-graphiql")
    assert web.blocked == []


async def test_the_rest_docs_render_with_only_the_hub_reachable(web: Browsing) -> None:
    page = await web.page("/docs")
    await page.locator(".swagger-ui .opblock").first.wait_for()
    assert await page.locator(".swagger-ui .opblock").count() > 20
    await screenshot(page, "offline-docs")
    assert web.blocked == []
