"""The five legacy REST families, each in its own module, mounted at their documented paths."""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest import cracktrader, executions, orca, orca_bots, sigmalab, stage1


def routes() -> list[BaseRoute]:
    return [
        *stage1.routes(),
        *executions.routes(),
        *cracktrader.routes(),
        *sigmalab.routes(),
        *orca.routes(),
        *orca_bots.routes(),
    ]
