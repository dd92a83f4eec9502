"""Datasets: OHLCV series in the ``ts`` schema, their names and owners, and reading bars back."""

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
