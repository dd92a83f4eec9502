"""GraphQL for runs and simulations: ``run``, ``runs``, ``simulation``, ``simulations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from hub.errors import BadRequest
from hub.gql.context import Context
from hub.gql.cost import rows
from hub.runs.model import SimulationStatus

MAX_LIMIT = 500

strawberry.enum(SimulationStatus)


@strawberry.type(description="A walk-forward run (Stage1's run object); shared by every user.")
class Run:
    run_id: strawberry.ID
    dataset_id: strawberry.ID
    fold_count: int
    features: list[str]
    thresholds: list[float]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Run:
        return cls(
            run_id=strawberry.ID(str(row["run_id"])),
            dataset_id=strawberry.ID(str(row["dataset_id"])),
            fold_count=row["fold_count"],
            features=list(row["features"]),
            thresholds=list(row["thresholds"]),
            created_at=row["created_at"],
        )


@strawberry.type(description="A simulation of a run; results holds its metrics once completed.")
class Simulation:
    simulation_id: strawberry.ID
    run_id: strawberry.ID
    initial_capital: float
    parameters: JSON
    results: JSON
    status: SimulationStatus
    job_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Simulation:
        return cls(
            simulation_id=strawberry.ID(str(row["simulation_id"])),
            run_id=strawberry.ID(str(row["run_id"])),
            initial_capital=row["initial_capital"],
            parameters=row["parameters"],
            results=row["results"],
            status=SimulationStatus(row["status"]),
            job_id=None if row["job_id"] is None else strawberry.ID(str(row["job_id"])),
            created_at=row["created_at"],
        )


def checked_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if offset < 0:
        raise BadRequest(f"offset must not be negative, got {offset}", field="offset")


async def resolve_run(info: Info[Context, None], id: strawberry.ID) -> Run:
    info.context.require_identity()
    return Run.from_row(await info.context.state.runs.get_run(str(id)))


async def resolve_runs(
    info: Info[Context, None],
    dataset_id: strawberry.ID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Run]:
    info.context.require_identity()
    checked_page(limit, offset)
    found = await info.context.state.runs.list_runs(
        dataset_id=None if dataset_id is None else str(dataset_id), limit=limit, offset=offset
    )
    return [Run.from_row(row) for row in found]


async def resolve_simulation(info: Info[Context, None], id: strawberry.ID) -> Simulation:
    info.context.require_identity()
    return Simulation.from_row(await info.context.state.runs.get_simulation(str(id)))


async def resolve_simulations(
    info: Info[Context, None],
    run_id: strawberry.ID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Simulation]:
    info.context.require_identity()
    checked_page(limit, offset)
    found = await info.context.state.runs.list_simulations(
        run_id=None if run_id is None else str(run_id), limit=limit, offset=offset
    )
    return [Simulation.from_row(row) for row in found]


@strawberry.type
class Query:
    run: Run = strawberry.field(resolver=resolve_run, description="A walk-forward run.")
    runs: list[Run] = strawberry.field(
        resolver=resolve_runs,
        description="Walk-forward runs, newest first; of one dataset with datasetId.",
        metadata=rows("limit", 50),
    )
    simulation: Simulation = strawberry.field(
        resolver=resolve_simulation, description="A simulation of a run."
    )
    simulations: list[Simulation] = strawberry.field(
        resolver=resolve_simulations,
        description="Simulations, newest first; of one run with runId.",
        metadata=rows("limit", 50),
    )
