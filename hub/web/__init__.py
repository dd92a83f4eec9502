"""The browser side of the hub: the dashboard at ``/``, and the pages of GraphiQL (``GET
/graphql``) and the REST docs (``/docs``), every script and style served from
``hub/web/static`` (vendored, versioned, shipped in the wheel: no CDN, no build step).

The dashboard is one HTML page and plain ES modules (``static/app``); its routes live in the
URL's fragment, so the hub serves ``/`` and the static files only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

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


@cache
def page(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


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


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard, methods=["GET"], include_in_schema=False),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
