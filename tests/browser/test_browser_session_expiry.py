"""A JWT that expires under an open live page: the hub closes the page's GraphQL socket (4401),
the page asks to sign in again over what it shows, and once signed in its curve resumes from the
last sequence it holds, with exactly the points of the REST equity route, none missing, none
twice (README "WebSocket rules"; hub/web/static/app/live.js)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from hub.auth import Identity, Role, decode_jwt, mint_jwt
from hub.settings import Settings
from tests.browser.conftest import Browsing, Trader, screenshot, sign_in
from tests.conftest import Account
from tests.helpers import eventually, running_worker
from tests.test_live import paper_account
from tests.test_live_runs import Feed, new_symbol, processed, started, stop, zigzag

# Long enough for the page to open and go live on a busy machine, short enough to wait out.
TTL_SECONDS = 15  # room for a loaded CI machine to open the page before it ends

# Every state the connection indicator takes from now on, for the test to read: a record holds
# the value before its change (records of one task come together), so the states taken are the
# old values after the first, then the current one.
RECORD_STATES = """() => {
  const conn = document.getElementById("conn");
  const old = [];
  new MutationObserver((records) => old.push(...records.map((r) => r.oldValue)))
    .observe(conn, { attributes: true, attributeFilter: ["data-state"], attributeOldValue: true });
  window.connStates = () => [...old.slice(1), conn.dataset.state];
}"""


async def rest_points(
    client: httpx.AsyncClient, who: Account, execution_id: str
) -> list[tuple[int, float]]:
    """Every point of the curve as (sequence, balance), through the REST equity route."""
    points: list[tuple[int, float]] = []
    url: str | None = f"/api/trading/executions/{execution_id}/equity/?page_size=1000"
    while url:
        got = await client.get(url, headers=who.headers)
        assert got.status_code == 200, got.text
        body = got.json()
        points += [(p["sequence"], p["balance"]) for p in body["equity_curve"]]
        url = body["next"]
    return points


async def shown(page: Any) -> list[tuple[int, float]]:
    """The points the page's equity chart holds, as (sequence, balance), in order."""
    pairs = await page.locator("#equity").evaluate(
        "el => el.chart.seqs.map((s, i) => [s, el.chart.ys[i]])"
    )
    return [(int(s), float(b)) for s, b in pairs]


async def test_an_expired_jwt_under_a_live_page_asks_again_and_the_curve_resumes(
    web: Browsing,
    settings: Settings,
    client: httpx.AsyncClient,
    admin: Account,
    trader: Trader,
) -> None:
    who = trader.account
    feed = Feed(client, admin, new_symbol())
    await feed.send(100.0)
    account = await paper_account(client, who)
    prices = zigzag(60, seed=23)
    async with running_worker(settings):
        run_id = await started(client, who, feed, account)
        await feed.send(*prices[:20])
        await processed(client, who, run_id, 15)

        # The page signs in with a JWT of the hub's own making that ends in a few seconds (the
        # hub's TTL setting is at least a minute), put where the sign-in form puts one.
        token, _ = mint_jwt(
            Identity(who.user_id, who.username, Role.USER), settings.jwt_secret, TTL_SECONDS
        )
        expires_at = decode_jwt(token, settings.jwt_secret).expires_at
        assert expires_at is not None
        await web.context.add_init_script(
            "if (!sessionStorage.getItem('tradehub.user')) {"
            f" sessionStorage.setItem('tradehub.token', {json.dumps(token)});"
            f" sessionStorage.setItem('tradehub.user', {json.dumps(who.username)}); }}"
        )
        url = f"{web.base_url}/#/executions/{run_id}"
        page = await web.page(f"/#/executions/{run_id}")
        await page.locator("#conn[data-state=live]").wait_for()
        before = await rest_points(client, who, run_id)

        async def drawn_before() -> bool:
            return (await shown(page))[: len(before)] == before

        await eventually(drawn_before, timeout=10)
        assert time.time() < expires_at, "the page went live after its JWT had expired"
        await page.evaluate(RECORD_STATES)

        # The JWT ends: the hub closes the socket, and the page asks again over what it shows.
        dialog = page.locator("#signin")
        wait_ms = (expires_at - time.time() + 10) * 1000
        await dialog.wait_for(state="visible", timeout=wait_ms)
        states = await page.evaluate("window.connStates()")
        assert "signed out" in states, states  # closed by the hub (4401), not a refused request
        assert "reconnecting" not in states, states  # no retries with a dead credential
        assert page.url == url
        # It kept its points: those drawn before, and whatever came until the socket closed.
        kept = await shown(page)
        assert kept[: len(before)] == before
        assert kept == (await rest_points(client, who, run_id))[: len(kept)]
        equity = page.locator("#equity")
        received = int(await equity.get_attribute("data-received") or 0)
        assert await page.evaluate("sessionStorage.getItem('tradehub.token')") is None
        # The indicator says why, and the dialog shows the password form only (its tab).
        await page.locator("#conn[data-state='signed out']").wait_for()
        assert await page.locator("#conn").inner_text() == "signed out"
        assert await page.locator("#signin-password").is_visible()
        assert await page.locator("#signin-key").is_hidden()
        await screenshot(page, "session-expired")

        # The run goes on meanwhile; signed in again, the curve takes up from where it stopped.
        await feed.send(*prices[20:40])
        await processed(client, who, run_id, 35)
        await sign_in(page, trader)
        assert page.url == url
        await page.locator("#conn[data-state=live]").wait_for()
        await feed.send(*prices[40:])
        await processed(client, who, run_id, len(prices) - 1)
        after = await rest_points(client, who, run_id)
        assert [s for s, _ in after] == list(range(1, len(after) + 1))
        assert len(after) > len(kept)

        async def caught_up() -> bool:
            return await shown(page) == after

        await eventually(caught_up, timeout=20)
        # Its counts are written when that point is drawn.
        equity = page.locator(f"#equity[data-last-sequence='{after[-1][0]}']")
        await equity.wait_for()
        assert await equity.get_attribute("data-gaps") == "0"
        assert await equity.get_attribute("data-duplicates") == "0"
        # Each point since the dialog came once, over the socket opened with the new JWT.
        assert await equity.get_attribute("data-received") == str(received + len(after) - len(kept))
        await screenshot(page, "session-resumed")
        await stop(client, who, run_id)
