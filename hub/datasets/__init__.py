"""Datasets: OHLCV series in the ``ts`` schema, their names and owners, reading bars back, and
the catalogue (Stage1's dataset objects, with their measurements' stats counted when read)."""

from __future__ import annotations

from hub.datasets import gql
from hub.datasets.jobs import SYNTHETIC
from hub.datasets.service import DatasetService
from hub.domains import Domain

domain = Domain(
    name="datasets",
    service=DatasetService,
    jobs=(SYNTHETIC,),
    query=gql.Query,
    mutation=gql.Mutation,
)
