"""Walk-forward runs, their predictions (the ``ts.wf_<run>`` measurements) and simulations of
them with their trades."""

from __future__ import annotations

from hub.domains import Domain
from hub.runs import gql
from hub.runs.jobs import SIMULATE
from hub.runs.service import RunService

domain = Domain(
    name="runs",
    service=RunService,
    jobs=(SIMULATE,),
    query=gql.Query,
)
