"""The browser side of the hub: the dashboard at ``/``, and the pages of GraphiQL (``GET
/graphql``) and the REST docs (``/docs``), every script and style served from
``hub/web/static`` (vendored, versioned, shipped in the wheel: no CDN, no build step).

The dashboard is one HTML page and plain ES modules (``static/app``); its routes live in the
URL's fragment, so the hub serves ``/`` and the static files only. A browser keeps every script
for a year: a vendored library's directory names its version, and the dashboard's modules are
served under ``/static/app-<hash of their contents>/``, which the page names.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

# Pages that run only the hub's own scripts and styles, and talk to the hub only.
_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self' ws: wss:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


APP = STATIC / "app"


@cache
def app_version() -> str:
    """A digest of the dashboard's own files: their URL changes whenever one of them does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in APP.rglob("*") if p.is_file()):
        digest.update(path.relative_to(APP).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def page(name: str) -> str:
    text = (TEMPLATES / name).read_text(encoding="utf-8")
    return text.replace("/static/app/", f"/static/app-{app_version()}/")


def html(name: str) -> Response:
    return HTMLResponse(
        page(name),
        headers={
            "Content-Security-Policy": _POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def dashboard(request: Request) -> Response:
    return html("dashboard.html")


class Assets(StaticFiles):
    """Files whose URL names their version: a browser keeps them for a year."""

    def file_response(
        self, full_path: Any, stat_result: Any, scope: Any, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard, methods=["GET"], include_in_schema=False),
        Mount(f"/static/app-{app_version()}", Assets(directory=APP), name="app"),
        Mount("/static/vendor", Assets(directory=STATIC / "vendor"), name="vendor"),
    ]
