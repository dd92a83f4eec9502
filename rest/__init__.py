"""The five legacy REST families, each in its own module, mounted at their documented paths,
and InfluxDB's write API (``rest.influx``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest import (
    cracktrader,
    executions,
    influx,
    orca,
    orca_bots,
    orca_upload,
    sigmalab,
    sigmalab_limits,
    sigmalab_signals,
    sigmalab_webhooks,
    stage1,
    stage1_questdb,
)


def routes() -> list[BaseRoute]:
    return [
        *stage1.routes(),
        *stage1_questdb.routes(),
        *executions.routes(),
        *cracktrader.routes(),
        *sigmalab.routes(),
        *sigmalab_limits.routes(),
        *sigmalab_webhooks.routes(),
        *sigmalab_signals.routes(),
        *orca.routes(),
        *orca_bots.routes(),
        *orca_upload.routes(),
        *influx.routes(),
    ]
