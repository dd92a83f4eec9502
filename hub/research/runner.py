"""What the research jobs do in a worker: train a version, run a walk-forward backtest (its
predictions written as a Stage1 run), and evaluate a chunk of a sweep's configs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from hub.auth import Identity, Role
from hub.research import artifacts as files
from hub.research import evaluate
from hub.research import repository as repo
from hub.research.backtests import repository as backtests_repo
from hub.research.execution import record_execution
from hub.research.model import GATES
from hub.research.training import (
    design,
    feature_columns,
    lgb_params,
    train_booster,
    walk_forward,
)
from hub.runs.model import RunSpec

if TYPE_CHECKING:
    import asyncpg

    from hub.jobs.context import JobContext
    from hub.research.service import ResearchService

log = logging.getLogger("tradehub.research")
BAR_COLUMNS = ("ts", "open", "high", "low", "close")


async def bars_covering(
    service: ResearchService, model: asyncpg.Record, ts: np.ndarray
) -> dict[str, np.ndarray]:
    """The model's bars from the first to the last of ``ts`` (int64 ns), with a bar's margin
    each side: a window read ends on float8 times, which may round an end bar out."""
    from hub.datasets.timeframes import timeframe_ns

    dataset = await service.datasets.find(model["ticker"], model["timeframe"])
    if dataset is None:
        raise ValueError(f"{model['ticker']} has no {model['timeframe']} bars any more")
    step = timeframe_ns(model["timeframe"])
    return await service.datasets.bars(dataset, int(ts[0]) - step, int(ts[-1]) + step, BAR_COLUMNS)


def acting_as(user_id: str | None) -> Identity:
    """The backtest's creator, as whom its Stage1 run is written."""
    if user_id is None:
        raise ValueError("the backtest's creator was deleted")
    return Identity(user_id, "research", Role.USER)


def gated(metrics: dict[str, Any], risk_profile: str) -> tuple[bool, list[str]]:
    reasons = GATES[risk_profile].judge(metrics)
    return not reasons, reasons


async def emit(
    service: ResearchService, user_id: str | None, event: str, data: dict[str, Any]
) -> None:
    """Tell the user's webhooks, when the webhooks domain is served (and never fail the job)."""
    try:
        webhooks = service.resources.service("webhooks")
    except LookupError:
        return
    if user_id is None:
        return
    try:
        await webhooks.emit(user_id, event, data)
    except Exception:
        log.exception("webhook emit failed", extra={"event": event})


# -- training -------------------------------------------------------------------------------


async def train(service: ResearchService, ctx: JobContext, version_id: str) -> dict[str, Any]:
    version = await repo.get_version(service.pool, version_id)
    if version is None:
        raise ValueError(f"no version {version_id}")
    if version["status"] == "completed":
        return {"version_id": version_id, "file_sha": version["file_sha"]}
    await repo.set_version(service.pool, version_id, status="training")
    matrix = files.matrix_columns(await service.matrix_content(version["matrix_sha"]))
    columns = feature_columns(list(matrix))
    x = design(matrix, columns)
    target = np.asarray(matrix["target"], dtype=np.float64).copy()
    if version["allowed_hours"] is not None:
        target[~np.isin(matrix["hour"], version["allowed_hours"])] = np.nan
    p = version["params"]
    params = lgb_params(p["learning_rate"], p["num_leaves"], p["batch_size"])
    rows = int(np.isfinite(target).sum())
    await ctx.progress(0, rows)
    booster = await asyncio.to_thread(train_booster, x, target, params, int(p["epochs"]))
    text = booster.model_to_string().encode()
    known = np.isfinite(target)
    fitted = booster.predict(x[known])
    accuracy = float(np.mean((fitted >= 0.5) == (target[known] > 0))) if known.any() else None
    sha = files.sha256(text)
    await ctx.progress(rows, rows)
    async with service.pool.acquire() as conn, conn.transaction():
        await repo.put_artifact(conn, sha, "model", text)
        await repo.set_version(
            conn,
            version_id,
            status="completed",
            file_sha=sha,
            feature_columns=columns,
            metrics={
                "train_rows": rows,
                "train_accuracy": accuracy,
                "rounds": booster.current_iteration(),
            },
        )
    service.files.restore("model", sha, text)
    return {"version_id": version_id, "file_sha": sha, "train_rows": rows}


# -- walk-forward backtests -------------------------------------------------------------------


def cut(
    matrix: dict[str, np.ndarray], start: dt.date | None, end: dt.date | None
) -> dict[str, np.ndarray]:
    from hub.research.service import DAY_NS, day_ns

    ts = matrix["ts"]
    lo = 0 if start is None else int(np.searchsorted(ts, day_ns(start)))
    hi = len(ts) if end is None else int(np.searchsorted(ts, day_ns(end) + DAY_NS))
    return {name: values[lo:hi] for name, values in matrix.items()}


async def backtest(service: ResearchService, ctx: JobContext, backtest_id: str) -> dict[str, Any]:
    row = await service.get_backtest(backtest_id)
    if row["status"] != "running":
        return {"backtest_id": backtest_id, "status": row["status"]}
    model = await service.get_model(row["model_id"])
    owner = None if row["created_by"] is None else str(row["created_by"])
    config = row["config"]
    matrix = cut(
        files.matrix_columns(await service.matrix_content(row["matrix_sha"])),
        row["start_date"],
        row["end_date"],
    )
    columns = feature_columns(list(matrix))
    x = design(matrix, columns)
    target = np.asarray(matrix["target"], dtype=np.float64)
    hours = config.get("allowed_hours")
    trainable = None if hours is None else np.isin(matrix["hour"], hours)
    await ctx.progress(0, len(target))
    wf = await asyncio.to_thread(
        walk_forward,
        x,
        target,
        splits=int(config["splits"]),
        horizon=int(model["config"]["horizon"]),
        params=lgb_params(float(config["learning_rate"]), 15, 20),
        rounds=int(config["epochs"]),
        trainable=trainable,
    )
    ts = matrix["ts"][wf.rows]
    run_id = await write_run(service, row, model, columns, ts, wf, target)
    data = evaluate.joined(await bars_covering(service, model, ts), ts, wf.prediction)
    if len(data["ts"]) == 0:
        raise ValueError("no bar has a walk-forward prediction")
    single = {
        "threshold": config["value"],
        "allowed_hours": hours,
        "top_pct": config.get("top_pct"),
    }
    exit_ = float(model["config"]["thresholds"]["exit"])
    result = await asyncio.to_thread(evaluate.single_result, data, single, exit_)
    metrics = evaluate.research_metrics(result.metrics)
    metrics["predictions"] = len(ts)
    params = evaluate.strategy_params(single["threshold"], exit_, hours, single["top_pct"])
    await record_execution(service, row, model, data, params, result)
    passed, reasons = gated(metrics, row["risk_profile"])
    await ctx.progress(len(target), len(target))
    done = await backtests_repo.complete_backtest(
        service.pool, backtest_id, metrics, passed, reasons, run_id
    )
    await service.release_slot(owner, backtest_id)
    if done is not None:
        await emit(
            service, owner, "backtest.completed",
            {"backtest_id": backtest_id, "model_id": row["model_id"], "status": "success",
             "metrics": metrics},
        )  # fmt: skip
    return {"backtest_id": backtest_id, "run_id": run_id, "metrics": metrics}


async def write_run(
    service: ResearchService,
    row: asyncpg.Record,
    model: asyncpg.Record,
    columns: list[str],
    ts: np.ndarray,
    wf: Any,
    target: np.ndarray,
) -> str:
    """The walk-forward predictions as a Stage1 run (``ts.wf_<run_id>``), made once: a re-run
    of the job writes the same run again."""
    import uuid

    runs = service.resources.service("runs")
    dataset = await service.datasets.find(model["ticker"], model["timeframe"])
    if dataset is None:
        raise ValueError(f"{model['ticker']} has no {model['timeframe']} bars any more")
    identity = acting_as(None if row["created_by"] is None else str(row["created_by"]))
    run_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tradehub:research:{row['backtest_id']}"))
    value = float(row["config"]["value"])
    spec = RunSpec.model_validate(
        {
            "run_id": run_id,
            "dataset_id": str(dataset["dataset_id"]),
            "fold_count": int(row["config"]["splits"]),
            "features": columns,
            "thresholds": [value],
        },
        strict=False,
    )
    await runs.create_run(identity, spec)
    await runs.write_predictions(
        identity,
        run_id,
        timestamp=ts // 1000,
        bar_index=wf.rows.astype(np.int64),
        fold_number=wf.fold,
        prediction=wf.prediction,
        target=target[wf.rows],
        thresholds=[np.full(len(ts), value)],
    )
    return run_id


# -- sweeps -------------------------------------------------------------------------------------


async def sweep_chunk(
    service: ResearchService, ctx: JobContext, sweep_id: str, first: int, last: int
) -> dict[str, Any]:
    from hub.runs import repository as runs_repo
    from hub.runs.model import predictions_measurement

    sweep = await backtests_repo.get_sweep(service.pool, sweep_id)
    if sweep is None:
        raise ValueError(f"no sweep {sweep_id}")
    configs = [
        r
        for r in await backtests_repo.sweep_configs(service.pool, sweep_id, first, last)
        if r["status"] == "running"
    ]
    if not configs:
        return {"sweep_id": sweep_id, "evaluated": 0}
    source = await service.get_backtest(sweep["source_backtest_id"])
    model = await service.get_model(sweep["model_id"])
    async with service.pool.acquire() as conn:
        found = await runs_repo.layout(conn, predictions_measurement(source["run_id"]))
        if found is None:
            raise ValueError(f"backtest {source['backtest_id']} has no stored predictions")
        ts, prediction = await runs_repo.series(conn, found)
    data = evaluate.joined(await bars_covering(service, model, ts), ts, prediction)
    await ctx.progress(0, len(configs))
    exit_ = float(model["config"]["thresholds"]["exit"])
    results = await asyncio.to_thread(
        evaluate.sweep_metrics, data, [r["config"] for r in configs], exit_
    )
    await ctx.progress(len(configs), len(configs))
    async with service.pool.acquire() as conn, conn.transaction():
        await backtests_repo.lock_sweep(conn, sweep_id)
        for row, metrics in zip(configs, results, strict=True):
            passed, reasons = gated(metrics, row["risk_profile"])
            await backtests_repo.complete_backtest(
                conn, row["backtest_id"], metrics, passed, reasons
            )
        ended = await backtests_repo.finish_sweep_if_done(conn, sweep_id)
    if ended is not None:
        await sweep_ended(service, ended)
    return {"sweep_id": sweep_id, "evaluated": len(configs)}


async def sweep_ended(service: ResearchService, sweep: asyncpg.Record) -> None:
    await emit(
        service, str(sweep["created_by"]) if sweep["created_by"] else None, "sweep.completed",
        {"sweep_id": sweep["sweep_id"], "model_id": sweep["model_id"], "tag": sweep["tag"],
         "status": sweep["status"], "total_configs": sweep["total_configs"]},
    )  # fmt: skip


# -- jobs that failed or were cancelled -----------------------------------------------------------


async def job_ended(service: ResearchService, job_row: asyncpg.Record) -> None:
    """Close what the job drove: a version, a backtest, a sweep's configs (and the sweep)."""
    status = "cancelled" if job_row["status"] == "CANCELLED" else "failed"
    error = job_row["error"] or f"the job {status}"
    payload = job_row["payload"] or {}
    if "version_id" in payload:
        await repo.set_version(service.pool, payload["version_id"], status=status, error=error)
    if "backtest_id" in payload:
        ended = await backtests_repo.end_backtests(
            service.pool, backtest_id=payload["backtest_id"], status=status, error=error
        )
        for row in ended:
            owner = None if row["created_by"] is None else str(row["created_by"])
            await service.release_slot(owner, row["backtest_id"])
    if "sweep_id" in payload:
        async with service.pool.acquire() as conn, conn.transaction():
            await backtests_repo.lock_sweep(conn, payload["sweep_id"])
            await backtests_repo.end_backtests(
                conn, job_id=str(job_row["job_id"]), status=status, error=error
            )
            finished = await backtests_repo.finish_sweep_if_done(conn, payload["sweep_id"])
        if finished is not None:
            with contextlib.suppress(Exception):
                await sweep_ended(service, finished)
