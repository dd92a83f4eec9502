"""Browser tests: Playwright driving Debian's Chromium (``apt-get install chromium``; Playwright's
own browser download is not used) against the real hub of ``tests/conftest.py``.

Without a ``chromium`` on PATH these tests skip, unless ``TRADEHUB_REQUIRE_BROWSER=1`` (which
``.ci/run`` sets after installing it) or ``CI`` is set: there a missing browser fails the run.
Every page gets a context that aborts any request to a host other than the hub's, and fails the
test on a script error; screenshots go to ``tests/browser/artifacts/`` (not committed).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from hub.settings import Settings
from tests.conftest import Account, LiveServer, make_account

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("TRADEHUB_REQUIRE_BROWSER") == "1" or bool(os.environ.get("CI"))


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (TRADEHUB_REQUIRE_BROWSER/CI: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        _unavailable("no chromium on PATH (apt-get install chromium)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Browsing:
    """A browser context on one hub: its pages, the requests it refused, the errors it saw."""

    context: Any
    base_url: str
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def page(self, path: str = "/") -> Any:
        page = await self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        await page.goto(self.base_url + path)
        return page


@contextlib.asynccontextmanager
async def browsing(
    browser: Any, base_url: str, *, width: int = 1280, height: int = 900
) -> AsyncIterator[Browsing]:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, base_url=base_url
    )
    context.set_default_timeout(30_000)
    hub = urlsplit(base_url).netloc
    state = Browsing(context, base_url)

    async def only_the_hub(route: Any) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == hub:
            await route.continue_()
        else:
            state.blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_the_hub)
    try:
        yield state
    finally:
        await context.close()
    assert not state.errors, state.errors


@pytest.fixture
async def web(browser: Any, server: LiveServer) -> AsyncIterator[Browsing]:
    async with browsing(browser, server.url) as state:
        yield state


@dataclass(frozen=True)
class Trader:
    account: Account
    password: str


@pytest.fixture(scope="session")
async def trader(settings: Settings) -> Trader:
    password = "pw-" + secrets.token_hex(8)
    return Trader(await make_account(settings, password=password), password)


async def sign_in(page: Any, trader: Trader) -> None:
    dialog = page.locator("#signin")
    await dialog.locator("input[name=username]").fill(trader.account.username)
    await dialog.locator("input[name=password]").fill(trader.password)
    await dialog.get_by_role("button", name="Sign in", exact=True).click()
    await dialog.wait_for(state="hidden")
    await page.locator("#who").filter(has_text=trader.account.username).wait_for()


async def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^\w.-]", "_", name) + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path
