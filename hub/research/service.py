"""Decisions about research models: templates, creation, matrices, and the jobs that train,
backtest and sweep them (whose bodies are :mod:`hub.research.runner`).

Models are shared research records: every user reads every model and the leaderboard; only a
model's creator (or an admin) builds its matrices, trains, backtests and sweeps it; only an
admin changes or deletes one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, NotFound
from hub.research import artifacts as files
from hub.research import repository as repo
from hub.research.backtests import repository as backtests_repo
from hub.research.model import (
    BASE_FEATURES,
    TEMPLATES,
    Backtest,
    BuildMatrix,
    CreateModel,
    Train,
    canonical_sha,
)
from hub.times import ns_of

if TYPE_CHECKING:
    from hub.datasets.service import DatasetService
    from hub.domains import Resources
    from hub.jobs.service import JobService
    from hub.research.training import Predictor

TRAIN_JOB = "research.train"
BACKTEST_JOB = "research.backtest"
SWEEP_JOB = "research.sweep"
DAY_NS = 86_400_000_000_000
# Rough LightGBM cost (rows x rounds per second on one thread): the answer's estimated_time.
ROWS_ROUNDS_PER_SECOND = 2_000_000


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def day_ns(day: dt.date) -> int:
    return ns_of(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))


FIRST_DAY, LAST_DAY = dt.date(1970, 1, 1), dt.date(2261, 12, 31)  # what int64 nanoseconds hold


def check_dates(start: dt.date | None, end: dt.date | None) -> None:
    for name, day in (("start_date", start), ("end_date", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise BadRequest(
                f"{name} must be between {FIRST_DAY} and {LAST_DAY}, got {day}", field=name
            )
    if start is not None and end is not None and end < start:
        raise BadRequest("end_date must not be before start_date", field="end_date")


def training_seconds(rows: int, rounds: int, columns: int) -> int:
    """A rough estimate of a LightGBM fit (rows x rounds x columns on one thread)."""
    return max(1, round(rows * rounds * max(columns, 1) / 10 / ROWS_ROUNDS_PER_SECOND))


def estimated_backtest_seconds(row: asyncpg.Record, matrix_rows: int, columns: int) -> int:
    """A walk-forward of ``splits`` folds fits on half the rows on average, once a fold."""
    config = row["config"]
    splits = int(config["splits"])
    return splits * training_seconds(matrix_rows // 2, int(config["epochs"]), columns)


def owner_of(row: asyncpg.Record) -> str | None:
    return None if row["created_by"] is None else str(row["created_by"])


class ResearchService:
    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.pool: asyncpg.Pool = resources.pool
        self.datasets: DatasetService = resources.service("datasets")
        self.jobs: JobService = resources.service("jobs")
        self.files = files.Artifacts(resources.settings.data_dir)

    # -- models -------------------------------------------------------------------------

    async def create_model(self, identity: Identity, spec: CreateModel) -> asyncpg.Record:
        from engine.features import UnknownFeatures, parse_features

        template = TEMPLATES.get(spec.template_id)
        if template is None:
            raise BadRequest(
                f"unknown template_id {spec.template_id!r}; templates: {', '.join(TEMPLATES)}",
                field="template_id",
            )
        given = spec.config.model_dump(exclude_none=True)
        config = template.defaults()
        indicators = given.pop("indicators", None)
        config.update(given)
        if indicators is not None and "features" not in given:
            config["features"] = list(dict.fromkeys([*BASE_FEATURES, *indicators]))
        config["indicators"] = indicators if indicators is not None else []
        try:
            parse_features(config["features"])
        except UnknownFeatures as exc:
            raise BadRequest(
                str(exc), field="config.features", details={"unknown": exc.names}
            ) from None
        ticker, timeframe = config["ticker"], config["timeframe"]
        if await self.datasets.find(ticker, timeframe) is None:
            raise BadRequest(
                f"ticker {ticker!r} names no dataset with {timeframe} bars",
                field="config.ticker",
                details={"supported_tickers": await self.datasets.symbols(timeframe)},
            )
        thresholds = config["thresholds"]
        if thresholds["exit"] >= thresholds["entry"]:
            raise BadRequest(
                "thresholds.exit must be below thresholds.entry", field="config.thresholds"
            )
        base = "_".join(
            (re.sub(r"[^A-Za-z0-9]", "", ticker) or "X", template.asset, template.horizon_label,
             template.frequency)
        )  # fmt: skip
        values = {
            "pack_id": template.pack_id,
            "template_id": template.template_id,
            "name": spec.name,
            "risk_profile": spec.risk_profile,
            "ticker": ticker,
            "timeframe": timeframe,
            "config": config,
            "config_sha": canonical_sha(config),
        }
        for _ in range(20):  # another create may take the same id meanwhile: try the next
            taken = await repo.model_ids_like(self.pool, base)
            n = 1
            while (base if n == 1 else f"{base}_{n}") in taken:
                n += 1
            values["model_id"] = base if n == 1 else f"{base}_{n}"
            row = await repo.insert_model(self.pool, values, identity.user_id)
            if row is not None:
                return row
        raise BadRequest(f"could not find a free model id like {base!r}", field="config.ticker")

    async def get_model(self, model_id: str, *, field: str | None = None) -> asyncpg.Record:
        row = await repo.get_model(self.pool, model_id)
        if row is None:
            raise NotFound(f"no model {model_id[:128]!r}", field=field or "model_id")
        return row

    async def owned_model(self, identity: Identity, model_id: str) -> asyncpg.Record:
        row = await self.get_model(model_id)
        if not identity.is_admin and owner_of(row) != identity.user_id:
            raise Forbidden(f"model {model_id} belongs to another user")
        return row

    async def model_summary(self, model_id: str) -> asyncpg.Record | None:
        return await repo.model_summary(self.pool, model_id)

    async def list_models(
        self, *, model_id: str | None, pack_id: str | None, limit: int, offset: int
    ) -> tuple[list[asyncpg.Record], int]:
        return await repo.list_models(self.pool, model_id, pack_id, limit, offset)

    # -- matrices -----------------------------------------------------------------------

    async def build_matrix(self, identity: Identity, spec: BuildMatrix) -> dict[str, Any]:
        """Features of the model's dataset bars between the dates (each day whole, UTC) and the
        forward return, as a Parquet file named by its sha256."""
        from engine.features import UnknownFeatures, feature_matrix, parse_features
        from hub.datasets.timeframes import timeframe_ns

        check_dates(spec.start_date, spec.end_date)
        model = await self.owned_model(identity, spec.model_id)
        config = model["config"]
        names = list(spec.features or config["features"])
        try:
            specs = parse_features(names)
        except UnknownFeatures as exc:
            raise BadRequest(str(exc), field="features", details={"unknown": exc.names}) from None
        dataset = await self.datasets.find(model["ticker"], model["timeframe"])
        if dataset is None:
            raise BadRequest(
                f"model {model['model_id']}'s ticker {model['ticker']!r} has no "
                f"{model['timeframe']} bars any more",
                field="model_id",
            )
        horizon = int(config["horizon"])
        start_ns, end_ns = day_ns(spec.start_date), day_ns(spec.end_date) + DAY_NS
        # From the first bar (the indicators warm up), to the horizon past the end (the target).
        read_to = end_ns + (horizon + 1) * timeframe_ns(model["timeframe"])
        bars = await self.datasets.bars(dataset, None, read_to)

        def build() -> tuple[bytes, list[str], int]:
            columns = feature_matrix(bars, specs, horizon, threads=2)
            ts = columns["ts"]
            lo, hi = np.searchsorted(ts, start_ns), np.searchsorted(ts, end_ns)
            window = {name: np.ascontiguousarray(v[lo:hi]) for name, v in columns.items()}
            return files.matrix_bytes(window), list(window), int(hi - lo)

        content, columns, rows = await asyncio.to_thread(build)
        if rows == 0:
            raise BadRequest(
                f"no {model['timeframe']} bars of {model['ticker']!r} between "
                f"{spec.start_date} and {spec.end_date}",
                field="start_date",
            )
        sha = files.sha256(content)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.put_artifact(conn, sha, "matrix", content)
            await repo.insert_matrix(
                conn,
                {
                    "model_id": model["model_id"], "matrix_sha": sha,
                    "start_date": spec.start_date, "end_date": spec.end_date,
                    "features": names, "columns": columns, "horizon": horizon,
                    "row_count": rows, "size_bytes": len(content),
                },
                identity.user_id,
            )  # fmt: skip
        self.files.restore("matrix", sha, content)
        return {
            "matrix_sha": sha,
            "rows": rows,
            "columns": len(columns),
            "size_mb": round(len(content) / 1_000_000, 3),
            "status": "completed",
            "path": files.relative_path("matrix", sha),
            "model_id": model["model_id"],
            "features": names,
            "column_names": columns,
        }

    async def matrix_of(
        self, model_id: str, sha: str | None, *, field: str = "matrix_sha"
    ) -> asyncpg.Record:
        """The model's matrix ``sha`` (a full sha or a unique start of one), or its newest."""
        if sha is None:
            found = await repo.newest_matrix(self.pool, model_id)
            if found is None:
                raise BadRequest(
                    f"model {model_id} has no matrix yet: POST /build_matrix first", field=field
                )
            return found
        rows = await repo.matrices_matching(self.pool, model_id, sha)
        if not rows:
            raise NotFound(f"model {model_id} has no matrix {sha!r}", field=field)
        if len(rows) > 1:
            raise BadRequest(
                f"matrix_sha {sha!r} names more than one matrix; give more of it", field=field
            )
        return rows[0]

    async def matrix_content(self, sha: str) -> bytes:
        """The matrix's bytes: its file, or (written back to the file) the stored copy."""
        return await self.artifact("matrix", sha)

    async def artifact(self, kind: str, sha: str) -> bytes:
        content = self.files.read(kind, sha)
        if content is not None and files.sha256(content) == sha:
            return content
        stored = await repo.artifact(self.pool, sha)
        if stored is None:
            raise NotFound(f"no {kind} {sha}")
        self.files.restore(kind, sha, stored)
        return stored

    # -- jobs: train, backtest, sweep -----------------------------------------------------

    async def train(self, identity: Identity, spec: Train) -> dict[str, Any]:
        from hub.research.training import feature_columns

        model = await self.owned_model(identity, spec.model_id)
        matrix = await self.matrix_of(model["model_id"], spec.matrix_sha)
        hours = spec.allowed_hours
        rows = await self.rows_in_hours(matrix, hours)
        params = spec.config.model_dump()
        values = {
            "version_id": new_id("mv"),
            "model_id": model["model_id"],
            "matrix_sha": matrix["matrix_sha"],
            "allowed_hours": hours,
            "params": params,
        }
        async with self.pool.acquire() as conn, conn.transaction():
            version = await repo.insert_version(conn, values, identity.user_id)
            job = await self.jobs.insert(
                conn, identity, TRAIN_JOB, {"version_id": values["version_id"]}, total=rows
            )
            await repo.set_job(
                conn, "model_versions", "version_id", values["version_id"], str(job["job_id"])
            )
        await self.jobs.after_insert(str(job["job_id"]))
        width = len(feature_columns(matrix["columns"]))
        return {
            "job_id": str(job["job_id"]),
            "status": "queued",
            "estimated_time": training_seconds(rows, params["epochs"], width),
            "queue_position": await self.jobs.queue_position(str(job["job_id"])),
            "model_id": model["model_id"],
            "version": version["version"],
            "version_id": version["version_id"],
        }

    async def rows_in_hours(
        self,
        matrix: asyncpg.Record,
        hours: list[int] | None,
        start: dt.date | None = None,
        end: dt.date | None = None,
    ) -> int:
        """The matrix's rows from ``start`` to ``end`` (days, both whole) whose hour is in
        ``hours`` (every row when None and no window); a 400 when there is none (daily bars all
        start at hour 0, say), before anything is written, rather than a job that can only
        fail. It names ``allowed_hours`` when the hours leave nothing, else ``start_date``."""
        if hours is None and start is None and end is None:
            return int(matrix["row_count"])
        content = await self.matrix_content(matrix["matrix_sha"])
        lo = None if start is None else day_ns(start)
        hi = None if end is None else day_ns(end) + DAY_NS
        within, rows = await asyncio.to_thread(files.rows_in_hours, content, hours, lo, hi)
        sha = matrix["matrix_sha"][:12]
        if within == 0:
            raise BadRequest(
                f"no row of matrix {sha} lies between {start or 'its start'} and "
                f"{end or 'its end'}",
                field="start_date" if start is not None else "end_date",
            )
        if rows == 0:
            raise BadRequest(
                f"no row of matrix {sha} in that window has an hour in allowed_hours {hours}",
                field="allowed_hours",
            )
        return rows

    async def backtest(self, identity: Identity, spec: Backtest) -> asyncpg.Record:
        model = await self.owned_model(identity, spec.model_id)
        matrix = await self.matrix_of(model["model_id"], spec.matrix_sha)
        check_dates(spec.start_date, spec.end_date)
        config = spec.config.model_dump()
        if config["value"] is None:
            config["value"] = float(model["config"]["thresholds"]["entry"])
        if config["allowed_hours"] is None:
            config["allowed_hours"] = model["config"].get("allowed_hours")
        await self.rows_in_hours(matrix, config["allowed_hours"], spec.start_date, spec.end_date)
        values = {
            "backtest_id": new_id("bt"),
            "kind": "walk_forward",
            "model_id": model["model_id"],
            "matrix_sha": matrix["matrix_sha"],
            "config": config,
            "start_date": spec.start_date,
            "end_date": spec.end_date,
            "risk_profile": model["risk_profile"],
            "tag": spec.tag,
        }
        limits = self.optional("ratelimits")
        if limits is not None:  # the tier's concurrent backtests: 429 before anything is written
            await limits.acquire_backtest(identity.user_id, values["backtest_id"])
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await backtests_repo.insert_backtest(conn, values, identity.user_id)
                job = await self.jobs.insert(
                    conn, identity, BACKTEST_JOB, {"backtest_id": values["backtest_id"]},
                    total=int(matrix["row_count"]),
                )  # fmt: skip
                await repo.set_job(
                    conn, "backtests", "backtest_id", values["backtest_id"], str(job["job_id"])
                )
        except BaseException:  # nothing was written: the slot goes back at once, not in 6 h
            await self.release_slot(identity.user_id, values["backtest_id"])
            raise
        await self.jobs.after_insert(str(job["job_id"]))
        return await self.get_backtest(values["backtest_id"])

    def optional(self, name: str) -> Any:
        """Another domain's service when this process serves it (rate limits, webhooks)."""
        try:
            return self.resources.service(name)
        except LookupError:
            return None

    async def release_slot(self, user_id: str | None, backtest_id: str) -> None:
        limits = self.optional("ratelimits")
        if limits is not None and user_id is not None:
            await limits.release_backtest(user_id, backtest_id)

    async def get_backtest(self, backtest_id: str) -> asyncpg.Record:
        row = await backtests_repo.get_backtest(self.pool, backtest_id)
        if row is None:
            raise NotFound(f"no backtest {backtest_id[:64]!r}", field="backtest_id")
        return row

    async def backtest_estimate(self, row: asyncpg.Record) -> int:
        """Seconds a walk-forward backtest may take, from its matrix's size."""
        from hub.research.training import feature_columns

        matrix = await self.matrix_of(row["model_id"], row["matrix_sha"])
        columns = len(feature_columns(matrix["columns"]))
        return estimated_backtest_seconds(row, int(matrix["row_count"]), columns)

    async def queue_position(self, job_id: str) -> int:
        return await self.jobs.queue_position(job_id)

    # -- predictions --------------------------------------------------------------------

    async def predictor(self, model_id: str) -> Predictor:
        """The model's newest trained version, loaded: ask it ``predict_latest(bars)``."""
        from hub.research.training import Predictor, load_booster

        model = await self.get_model(model_id)
        version = await repo.latest_version(self.pool, model_id)
        if version is None:
            raise BadRequest(
                f"model {model_id} has no trained version: POST /train first", field="model_id"
            )
        text = await self.artifact("model", version["file_sha"])
        matrix = await self.matrix_of(model_id, version["matrix_sha"])
        return Predictor(
            model_id=model_id,
            version_id=version["version_id"],
            features=list(matrix["features"]),
            columns=list(version["feature_columns"]),
            horizon=int(model["config"]["horizon"]),
            booster=await asyncio.to_thread(load_booster, text),
        )
