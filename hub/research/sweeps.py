"""Sweeps: a grid of thresholds x allowed_hours x top_pct over one backtest's walk-forward
predictions, split into chunks that run as jobs on every worker of the queue."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import asyncpg

from hub.errors import BadRequest, NotFound
from hub.research.backtests import repository as backtests_repo
from hub.research.evaluate import grid_configs
from hub.research.model import Sweep

if TYPE_CHECKING:
    from hub.auth import Identity
    from hub.research.service import ResearchService

CONFIGS_PER_CHUNK = 8
MAX_CHUNKS = 4  # each chunk is a job of the user's: within TRADEHUB_MAX_ACTIVE_JOBS_PER_USER


def chunks(total: int, limit: int) -> list[tuple[int, int]]:
    """``(first, last)`` config numbers of each chunk: as many as ``total`` needs at
    ``CONFIGS_PER_CHUNK`` a chunk, at most ``limit``, of near-equal sizes."""
    parts = max(1, min(math.ceil(total / CONFIGS_PER_CHUNK), limit))
    size = math.ceil(total / parts)
    return [(first, min(first + size, total) - 1) for first in range(0, total, size)]


def sweep_document(row: asyncpg.Record) -> dict[str, Any]:
    total, done = int(row["total_configs"]), int(row["done"])
    return {
        "sweep_id": row["sweep_id"],
        "model_id": row["model_id"],
        "total_configs": total,
        "completed_configs": done,
        "status": row["status"],
        # a whole percent, as seed 001 shows ("progress": 0): 100 only once every config is done
        "progress": 100 * done // total if total else 100,
        "tag": row["tag"],
        "risk_profile": row["risk_profile"],
        "backtest_id": row["source_backtest_id"],
    }


async def create_sweep(service: ResearchService, identity: Identity, spec: Sweep) -> dict[str, Any]:
    from hub.research.service import SWEEP_JOB, new_id

    model = await service.owned_model(identity, spec.model_id)
    if spec.backtest_id is not None:
        source = await service.get_backtest(spec.backtest_id)
        if source["model_id"] != model["model_id"] or source["kind"] != "walk_forward":
            raise BadRequest(
                f"backtest {spec.backtest_id} is no walk-forward backtest of {model['model_id']}",
                field="backtest_id",
            )
        if source["status"] != "completed":
            raise BadRequest(
                f"backtest {spec.backtest_id} is {source['status']}", field="backtest_id"
            )
    else:
        found = await backtests_repo.newest_walk_forward(service.pool, model["model_id"])
        if found is None:
            raise BadRequest(
                f"model {model['model_id']} has no completed backtest to sweep: POST /backtest first",
                field="model_id",
            )
        source = found
    hours = spec.sweep.allowed_hours or [source["config"].get("allowed_hours")]
    configs = grid_configs(spec.sweep.thresholds, hours, spec.sweep.top_pct or [None])
    sweep_id = new_id("sweep")
    risk = spec.risk_profile or model["risk_profile"]
    rows = [
        (
            f"{sweep_id}_{n:04d}",
            "sweep",
            model["model_id"],
            sweep_id,
            n,
            source["matrix_sha"],
            source["run_id"],
            config,
            risk,
            spec.tag,
            identity.user_id,
        )
        for n, config in enumerate(configs)
    ]
    parts = chunks(len(configs), MAX_CHUNKS)
    async with service.pool.acquire() as conn, conn.transaction():
        await backtests_repo.insert_sweep(
            conn,
            {"sweep_id": sweep_id, "model_id": model["model_id"],
             "source_backtest_id": source["backtest_id"], "risk_profile": risk,
             "grid": spec.sweep.model_dump(), "tag": spec.tag, "total_configs": len(configs)},
            identity.user_id,
        )  # fmt: skip
        await backtests_repo.insert_sweep_configs(conn, rows)
        jobs = []
        for first, last in parts:
            job = await service.jobs.insert(
                conn, identity, SWEEP_JOB,
                {"sweep_id": sweep_id, "first": first, "last": last},
                total=last - first + 1,
            )  # fmt: skip
            await backtests_repo.set_chunk_job(conn, sweep_id, first, last, str(job["job_id"]))
            jobs.append(str(job["job_id"]))
    for job_id in jobs:
        await service.jobs.after_insert(job_id)
    document = await get_sweep(service, sweep_id)
    document["job_ids"] = jobs
    return document


async def get_sweep(service: ResearchService, sweep_id: str) -> dict[str, Any]:
    row = await backtests_repo.get_sweep(service.pool, sweep_id)
    if row is None:
        raise NotFound(f"no sweep {sweep_id[:64]!r}", field="sweep_id")
    return sweep_document(row)
