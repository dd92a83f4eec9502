"""What the three browser pages load is in the wheel: every script and style the pages and the
dashboard's modules name is served by the hub, cacheable for good, each vendored library beside
its licence, and no page names another host (no browser needed)."""

from __future__ import annotations

import re

import httpx

from hub import web

PAGES = ("/", "/graphql", "/docs")
ASSET = re.compile(r"""(?:src|href)="(/static/[^"]+)\"""")
MODULE = re.compile(r"""<(?:script type="module" src|link rel="modulepreload" href)="([^"]+)\"""")
IMPORT = re.compile(r"""(?:from|import)\s*\(?\s*["']([^"']+\.js)["']""")


async def test_every_asset_the_pages_name_is_served_and_cacheable(
    client: httpx.AsyncClient,
) -> None:
    urls: set[str] = set()
    modules: list[str] = []
    for path in PAGES:
        got = await client.get(path, headers={"Accept": "text/html"})
        assert got.status_code == 200, path
        assert got.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in got.headers["content-security-policy"]
        assert not re.search(r"(?:src|href)=\"https?://", got.text), path
        assert "unpkg" not in got.text and "jsdelivr" not in got.text
        urls |= set(ASSET.findall(got.text))
        modules += MODULE.findall(got.text)
    # The ES modules the dashboard imports, followed from its entry points.
    assert modules
    queue = list(modules)
    seen: set[str] = set()
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        got = await client.get(url)
        assert got.status_code == 200, url
        assert "immutable" in got.headers["cache-control"], url
        base = url.rsplit("/", 1)[0]
        for name in IMPORT.findall(got.text):
            if name.startswith("/"):
                queue.append(name)
            else:
                parts = (base + "/" + name).split("/")
                resolved: list[str] = []
                for part in parts:
                    if part == "..":
                        resolved.pop()
                    elif part != ".":
                        resolved.append(part)
                queue.append("/".join(resolved))
    for url in urls - seen:
        got = await client.get(url)
        assert got.status_code == 200, url
        assert "immutable" in got.headers["cache-control"], url
    assert any("/uplot-" in u for u in seen) and any("/graphql-ws-" in u for u in seen)
    assert any(u.endswith("/pages/accounts.js") for u in seen)  # imported when opened
    assert any("/graphiql-" in u for u in urls) and any("/swagger-ui-dist-" in u for u in urls)


def test_each_vendored_library_names_its_version_and_ships_its_licence() -> None:
    vendor = web.STATIC / "vendor"
    libraries = [p for p in vendor.iterdir() if p.is_dir()]
    assert libraries
    for library in libraries:
        assert re.fullmatch(r"[a-z-]+-\d+\.\d+\.\d+", library.name), library.name
        assert any(p.name.startswith("LICENSE") for p in library.iterdir()), library.name
        assert library.name in (vendor / "README.md").read_text()
