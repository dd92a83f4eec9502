"""Decisions about walk-forward runs, their predictions and their simulations.

Runs and simulations are shared research records, as datasets are: every user reads them all;
any user creates them; they never change once created (a repeated create with the same content
answers the stored record, a different one is a 409). A run's predictions are written by its
creator (or an admin) through :meth:`RunService.write_predictions`, or loaded into the same
measurement by an import.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
import orjson

from hub.auth import Identity
from hub.errors import BadRequest, Conflict, Forbidden, HubError, NotFound
from hub.runs import repository as repo
from hub.runs import simulate
from hub.runs.model import RunSpec, SimulationSpec, SimulationStatus, predictions_measurement

if TYPE_CHECKING:
    from hub.datasets.service import DatasetService
    from hub.domains import Resources
    from hub.jobs.context import JobContext
    from hub.jobs.service import JobService

SIMULATE_JOB = "runs.simulate"
LATEST_US = 9_223_372_036_854_775  # the last microsecond an int64 of nanoseconds holds
# A whole float as the CSV (Postgres) writes it and the seed shows it: `1`, not orjson's `1.0`.
# The rows hold numbers and nulls only, so a ".0" before a comma or a bracket ends a number.
_WHOLE = re.compile(rb"\.0(?=[,\]])")


def parse_id(raw: Any, what: str, *, missing: type[HubError] = NotFound) -> str:
    """``raw`` as a canonical UUID string; anything else is ``missing`` (404 for an id in a
    path, 400 for one in a body or filter)."""
    try:
        return str(uuid.UUID(str(raw)))
    except ValueError:
        raise missing(f"no {what} {str(raw)[:64]!r}", field=f"{what}_id") from None


class RunService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool: asyncpg.Pool = resources.pool
        self.datasets: DatasetService = resources.service("datasets")
        self.jobs: JobService = resources.service("jobs")

    # -- runs ---------------------------------------------------------------------------

    async def create_run(self, identity: Identity, spec: RunSpec) -> tuple[asyncpg.Record, bool]:
        """The run (True) or, for a repeated create of the same run, the stored one (False)."""
        try:
            dataset = await self.datasets.stored(str(spec.dataset_id))
        except NotFound as exc:
            raise BadRequest(exc.message, field="dataset_id") from None
        values: dict[str, Any] = {
            "run_id": str(spec.run_id or uuid.uuid4()),
            "dataset_id": str(dataset["dataset_id"]),
            "fold_count": spec.fold_count,
            "features": list(spec.features),
            "thresholds": [float(t) for t in spec.thresholds],
        }
        row = await repo.insert_run(self.pool, values, identity.user_id)
        if row is not None:
            return row, True
        stored = await repo.get_run(self.pool, values["run_id"])
        if stored is None or any(_plain(stored[k]) != v for k, v in values.items()):
            raise Conflict(f"run {values['run_id']} exists with other values", field="run_id")
        return stored, False

    async def get_run(self, run_id: str) -> asyncpg.Record:
        row = await repo.get_run(self.pool, parse_id(run_id, "run"))
        if row is None:
            raise NotFound(f"no run {run_id!r}", field="run_id")
        return row

    async def list_runs(
        self, *, dataset_id: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        """Runs, newest first; of one dataset when ``dataset_id`` is given."""
        key = None if dataset_id is None else parse_id(dataset_id, "dataset", missing=BadRequest)
        return await repo.list_runs(self.pool, key, limit, offset)

    async def runs_of_dataset(
        self, dataset_id: str, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        dataset = await self.datasets.stored(dataset_id)  # 404 when unknown
        return await repo.list_runs(self.pool, str(dataset["dataset_id"]), limit, offset)

    # -- predictions --------------------------------------------------------------------

    async def write_predictions(
        self,
        identity: Identity,
        run_id: str,
        *,
        timestamp: np.ndarray,
        bar_index: np.ndarray,
        fold_number: np.ndarray,
        prediction: np.ndarray,
        target: np.ndarray,
        thresholds: list[np.ndarray] | None = None,
    ) -> int:
        """Store the run's predictions (``timestamp`` in epoch microseconds, strictly
        increasing; one ``thresholds`` column per threshold of the run) in place of any before,
        in one transaction; the number of rows."""
        run = await self.get_run(run_id)
        owner = run["created_by"]
        if not identity.is_admin and (owner is None or str(owner) != identity.user_id):
            raise Forbidden(f"run {run['run_id']} belongs to another user")
        columns = _checked_columns(
            run, timestamp, bar_index, fold_number, prediction, target, thresholds or []
        )
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                await repo.replace(conn, predictions_measurement(run["run_id"]), columns)
            except ValueError as exc:
                raise Conflict(str(exc)) from None
        return len(columns["timestamp"])

    async def prediction_stream(self, run_id: str, fmt: str) -> AsyncIterator[bytes]:
        """The run's predictions as ``csv`` (a header line, then a row a line) or ``json``
        (``{"dataset": [[...], ...]}``, numbers written as the CSV writes them: a whole
        ``target`` is ``1``), produced a chunk at a time while it is read. Checks
        (404, a malformed measurement) happen here, before anything is sent."""
        if fmt not in ("csv", "json"):
            raise BadRequest(f"format must be csv or json, got {fmt[:40]!r}", field="format")
        run = await self.get_run(run_id)
        found = await self._layout(run)
        if fmt == "csv":
            return self._csv(run, found)
        return self._json(found)

    async def _layout(self, run: asyncpg.Record) -> repo.Layout | None:
        measurement = predictions_measurement(run["run_id"])
        try:
            return await repo.layout(self.pool, measurement)
        except ValueError as exc:
            raise Conflict(str(exc)) from None

    async def _csv(self, run: asyncpg.Record, found: repo.Layout | None) -> AsyncIterator[bytes]:
        if found is None:  # nothing stored yet: the header alone
            yield (",".join(repo.header(len(run["thresholds"]))) + "\n").encode()
            return
        async for chunk in repo.csv_chunks(self.pool, found):
            yield chunk

    async def _json(self, found: repo.Layout | None) -> AsyncIterator[bytes]:
        yield b'{"dataset":['
        if found is not None:
            separator = b""
            async for rows in repo.row_batches(self.pool, found):
                # NaN and infinities become null: JSON has no such numbers.
                encoded = orjson.dumps([tuple(row) for row in rows])[1:-1]
                yield separator + _WHOLE.sub(b"", encoded)
                separator = b","
        yield b"]}"

    # -- simulations --------------------------------------------------------------------

    async def create_simulation(
        self, identity: Identity, spec: SimulationSpec
    ) -> tuple[asyncpg.Record, bool]:
        """Check everything the job will need, then write the simulation and its job in one
        transaction (the job is enqueued once it committed). A repeated create with the same
        content answers the stored simulation (False) and starts nothing."""
        try:
            run = await self.get_run(str(spec.run_id))
        except NotFound as exc:
            raise BadRequest(exc.message, field="run_id") from None
        given = spec.parameters.given()
        simulate.check(*simulate.strategy_of(given, list(run["thresholds"])))
        dataset = await self.datasets.describe(str(run["dataset_id"]))
        if not dataset["ohlcv_measurement"] or not dataset["ohlcv_row_count"]:
            raise BadRequest(
                f"dataset {dataset['dataset_id']} of run {run['run_id']} has no OHLCV bars",
                field="run_id",
            )
        await self.datasets.check_bars(dataset, simulate.BAR_COLUMNS, field="run_id")
        if await self._layout(run) is None:
            raise BadRequest(
                f"run {run['run_id']} has no predictions yet "
                f"(ts.{predictions_measurement(run['run_id'])})",
                field="run_id",
            )
        values: dict[str, Any] = {
            "simulation_id": str(spec.simulation_id or uuid.uuid4()),
            "run_id": str(run["run_id"]),
            "initial_capital": float(spec.initial_capital),
            "parameters": given,
        }
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.insert_simulation(conn, values, identity.user_id)
            if row is not None:
                job = await self.jobs.insert(
                    conn,
                    identity,
                    SIMULATE_JOB,
                    {"simulation_id": values["simulation_id"]},
                    total=int(dataset["ohlcv_row_count"]),
                )
                await repo.set_job(conn, values["simulation_id"], str(job["job_id"]))
        if row is None:
            stored = await repo.get_simulation(self.pool, values["simulation_id"])
            if stored is None or any(_plain(stored[k]) != v for k, v in values.items()):
                raise Conflict(
                    f"simulation {values['simulation_id']} exists with other values",
                    field="simulation_id",
                )
            return stored, False
        await self.jobs.after_insert(str(job["job_id"]))
        return await self.get_simulation(values["simulation_id"]), True

    async def get_simulation(self, simulation_id: str) -> asyncpg.Record:
        row = await repo.get_simulation(self.pool, parse_id(simulation_id, "simulation"))
        if row is None:
            raise NotFound(f"no simulation {simulation_id!r}", field="simulation_id")
        return row

    async def list_simulations(
        self, *, run_id: str | None, limit: int, offset: int
    ) -> list[asyncpg.Record]:
        key = None if run_id is None else parse_id(run_id, "run", missing=BadRequest)
        return await repo.list_simulations(self.pool, key, limit, offset)

    async def trades(self, simulation_id: str, limit: int, offset: int) -> list[asyncpg.Record]:
        simulation = await self.get_simulation(simulation_id)
        return await repo.trades(self.pool, str(simulation["simulation_id"]), limit, offset)

    # -- the job ------------------------------------------------------------------------

    async def simulate(self, ctx: JobContext, simulation_id: str) -> dict[str, Any]:
        """Run the simulation: the dataset's bars that have a prediction, through the engine's
        threshold strategy; its trades (by COPY) and results in one transaction. A re-run
        after a lost worker finds them written, or writes them again in place."""
        from engine.backtest import run_backtest

        row = await self.get_simulation(simulation_id)
        if row["status"] == SimulationStatus.COMPLETED:
            return _summary(row, None)
        await repo.set_status(
            self.pool, simulation_id, SimulationStatus.RUNNING, unless=(SimulationStatus.COMPLETED,)
        )
        run = await self.get_run(str(row["run_id"]))
        stored = await self.datasets.stored(str(run["dataset_id"]))
        dataset = (await self.datasets.with_stats([stored]))[0]  # bars changed: cache misses
        if not dataset["ohlcv_measurement"]:
            raise ValueError(f"dataset {dataset['dataset_id']} names no OHLCV measurement")
        measurement = predictions_measurement(run["run_id"])
        async with self.pool.acquire() as conn:
            found = await repo.layout(conn, measurement)
            if found is None:
                raise ValueError(f"run {run['run_id']} has no predictions (ts.{measurement})")
            ts, values = await repo.series(conn, found)
        # Only the bars the predictions span: a run often covers part of its dataset.
        start, end = (int(ts[0]), int(ts[-1]) + 1) if len(ts) else (None, None)
        bars = await self.datasets.bars(dataset, start, end, simulate.BAR_COLUMNS)
        data = simulate.joined(bars, ts, values)
        total = len(data["ts"])
        await ctx.log("simulating", bars=total, predictions=len(ts))
        if total == 0:
            raise ValueError(
                f"no bar of dataset {dataset['dataset_id']} has a prediction of run "
                f"{run['run_id']}: their times never meet"
            )
        params, options = simulate.strategy_of(row["parameters"], list(run["thresholds"]))
        await ctx.progress(0, total)
        result = await asyncio.to_thread(
            run_backtest,
            data,
            simulate.STRATEGY,
            params,
            initial_capital=float(row["initial_capital"]),
            **options,
        )
        trades = simulate.trade_rows(simulation_id, result.trades)
        results = simulate.results_of(result.metrics)
        await ctx.progress(total, total)  # still ours, and not cancelled: write
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.lock_simulation(conn, simulation_id)
            done = await repo.complete(conn, simulation_id, results, trades)
        return _summary(done, len(trades))

    async def job_ended(self, job_row: asyncpg.Record) -> None:
        """The simulation's job failed or was cancelled: so is the simulation (unless it
        completed first)."""
        simulation_id = (job_row["payload"] or {}).get("simulation_id")
        if simulation_id is None:
            return
        status = (
            SimulationStatus.CANCELLED
            if job_row["status"] == "CANCELLED"
            else SimulationStatus.FAILED
        )
        await repo.set_status(
            self.pool, str(simulation_id), status, unless=(SimulationStatus.COMPLETED,)
        )


def _plain(value: Any) -> Any:
    """A stored value as the create compares it."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return list(value)
    return value


def _summary(row: asyncpg.Record, trades: int | None) -> dict[str, Any]:
    return {
        "simulation_id": str(row["simulation_id"]),
        "trades": trades,
        "metrics": row["results"],
    }


def _checked_columns(
    run: asyncpg.Record,
    timestamp: np.ndarray,
    bar_index: np.ndarray,
    fold_number: np.ndarray,
    prediction: np.ndarray,
    target: np.ndarray,
    thresholds: list[np.ndarray],
) -> dict[str, np.ndarray]:
    expected = len(run["thresholds"])
    if len(thresholds) != expected:
        raise BadRequest(
            f"run {run['run_id']} has {expected} thresholds, so its predictions carry "
            f"{expected} threshold columns; got {len(thresholds)}",
            field="thresholds",
        )
    named = {
        "timestamp": np.asarray(timestamp),
        "bar_index": np.asarray(bar_index),
        "fold_number": np.asarray(fold_number),
        "prediction": np.asarray(prediction),
        "target": np.asarray(target),
        **{f"threshold_{k}": np.asarray(t) for k, t in enumerate(thresholds)},
    }
    n = len(named["timestamp"])
    for name, column in named.items():
        if column.ndim != 1 or len(column) != n:
            raise BadRequest(f"{name} has shape {column.shape}, expected ({n},)", field=name)
        integral = name in ("timestamp", "bar_index", "fold_number")
        if integral and column.dtype.kind not in "iu":
            raise BadRequest(f"{name} must be integers, got {column.dtype}", field=name)
        if not integral and column.dtype.kind not in "iuf":
            raise BadRequest(f"{name} must be numbers, got {column.dtype}", field=name)
    ts = named["timestamp"].astype(np.int64)
    if n > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        raise BadRequest("timestamp must be strictly increasing", field="timestamp")
    if n and (ts[0] < 0 or ts[-1] > LATEST_US):
        raise BadRequest(
            "timestamp must be epoch microseconds from 1970 to 2262", field="timestamp"
        )
    folds = named["fold_number"]
    if n and (folds.min() < -(2**31) or folds.max() >= 2**31):
        raise BadRequest("fold_number must fit 32 bits", field="fold_number")
    return named
