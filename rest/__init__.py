"""The five legacy REST families, each in its own module, mounted at their documented paths."""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest import sigmalab


def routes() -> list[BaseRoute]:
    return [*sigmalab.routes()]
