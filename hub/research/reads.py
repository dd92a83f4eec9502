"""What research answers: model documents, the leaderboard, CSV exports (streamed) and the
health of its parts."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np

from hub.errors import BadRequest, NotFound
from hub.research import evaluate
from hub.research import repository as repo
from hub.research.backtests import repository as backtests_repo
from hub.times import iso, iso_ns

if TYPE_CHECKING:
    from hub.research.service import ResearchService

EXPORT_PAGE = 500


def best_metrics(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {k: metrics.get(k) for k in ("sharpe", "cum_ret", "max_drawdown", "win_rate", "trades")}


def model_item(row: asyncpg.Record) -> dict[str, Any]:
    """A model as ``GET /models`` lists it."""
    best = row["best_metrics"] or {}
    return {
        "model_id": row["model_id"],
        "pack_id": row["pack_id"],
        "name": row["name"],
        "updated_at": iso(row["updated_at"]),
        "sharpe": best.get("sharpe"),
        "cum_ret": best.get("cum_ret"),
        "lineage": {
            "matrix_sha": row["matrix_sha"],
            "config_sha": row["config_sha"],
            "risk_profile": row["risk_profile"],
        },
    }


def model_document(row: asyncpg.Record, summary: asyncpg.Record | None) -> dict[str, Any]:
    """A model as ``GET /models/{id}`` shows it: config, its best backtest's metrics, lineage."""
    return {
        "model_id": row["model_id"],
        "pack_id": row["pack_id"],
        "template_id": row["template_id"],
        "name": row["name"],
        "risk_profile": row["risk_profile"],
        "active": row["active"],
        "config": row["config"],
        "metrics": best_metrics(summary["best_metrics"]) if summary else None,
        "best_backtest_id": summary["best_backtest_id"] if summary else None,
        "trained_versions": int(summary["versions"]) if summary else 0,
        "lineage": {
            "matrix_sha": summary["matrix_sha"] if summary else None,
            "config_sha": row["config_sha"],
            "created_by": None if row["created_by"] is None else str(row["created_by"]),
            "created_at": iso(row["created_at"]),
        },
        "updated_at": iso(row["updated_at"]),
    }


def board_config(row: asyncpg.Record) -> dict[str, Any]:
    config = row["config"]
    threshold = config.get("threshold", config.get("value"))
    out = {"threshold": threshold, "allowed_hours": config.get("allowed_hours"),
           "top_pct": config.get("top_pct")}  # fmt: skip
    if "splits" in config:
        out["splits"] = config["splits"]
    return out


def board_item(rank: int, row: asyncpg.Record) -> dict[str, Any]:
    return {
        "rank": rank,
        "backtest_id": row["backtest_id"],
        "model_id": row["model_id"],
        "pack_id": row["pack_id"],
        "kind": row["kind"],
        "sweep_id": row["sweep_id"],
        "tag": row["tag"],
        "risk_profile": row["risk_profile"],
        "metrics": best_metrics(row["metrics"]),
        "gate": {"pass": bool(row["gate_pass"]), "reasons": list(row["gate_reasons"] or [])},
        "config": board_config(row),
        "completed_at": iso(row["completed_at"]),
    }


def backtest_document(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "backtest_id": row["backtest_id"],
        "model_id": row["model_id"],
        "kind": row["kind"],
        "status": row["status"],
        "metrics": row["metrics"],
        "gate": None
        if row["gate_pass"] is None
        else {"pass": bool(row["gate_pass"]), "reasons": list(row["gate_reasons"] or [])},
        "config": row["config"],
        "matrix_sha": row["matrix_sha"],
        "run_id": None if row["run_id"] is None else str(row["run_id"]),
        "execution_id": row["execution_id"],
        "sweep_id": row["sweep_id"],
        "tag": row["tag"],
        "risk_profile": row["risk_profile"],
        "error": row["error"],
        "job_id": None if row["job_id"] is None else str(row["job_id"]),
        "created_at": iso(row["created_at"]),
        "completed_at": iso(row["completed_at"]),
    }


async def leaderboard(
    service: ResearchService, filters: dict[str, Any], sort_by: str, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    if sort_by not in backtests_repo.SORTS:
        raise BadRequest(
            f"sort_by must be one of {', '.join(backtests_repo.SORTS)}, got {sort_by[:40]!r}",
            field="sort_by",
        )
    rows, total = await backtests_repo.leaderboard(service.pool, filters, sort_by, limit, offset)
    return [board_item(offset + k + 1, row) for k, row in enumerate(rows)], total


# -- exports --------------------------------------------------------------------------------


def _csv_line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


async def backtest_trades(service: ResearchService, backtest_id: str) -> np.ndarray:
    """The backtest's trades: its config through the engine again, on the predictions it
    traded (the walk-forward run it wrote, or its sweep's)."""
    from hub.research.runner import bars_covering
    from hub.runs import repository as runs_repo
    from hub.runs.model import predictions_measurement

    row = await service.get_backtest(backtest_id)
    if row["status"] != "completed" or row["run_id"] is None:
        raise BadRequest(
            f"backtest {backtest_id} is {row['status']}: nothing to export", field="backtest_id"
        )
    model = await service.get_model(row["model_id"])
    async with service.pool.acquire() as conn:
        found = await runs_repo.layout(conn, predictions_measurement(row["run_id"]))
        if found is None:
            raise NotFound(f"backtest {backtest_id}'s predictions are gone")
        ts, prediction = await runs_repo.series(conn, found)
    if len(ts) == 0:
        raise NotFound(f"backtest {backtest_id}'s predictions are gone")
    try:
        bars = await bars_covering(service, model, ts)
    except ValueError as exc:
        raise NotFound(str(exc)) from None
    data = evaluate.joined(bars, ts, prediction)
    config = row["config"]
    single = {"threshold": config.get("threshold", config.get("value")),
              "allowed_hours": config.get("allowed_hours"), "top_pct": config.get("top_pct")}  # fmt: skip
    exit_ = float(model["config"]["thresholds"]["exit"])
    _, trades = await asyncio.to_thread(evaluate.single_metrics, data, single, exit_)
    return trades


async def export_backtest(service: ResearchService, backtest_id: str) -> AsyncIterator[bytes]:
    """Seed 001's columns: a BUY line at each entry, a SELL line at each exit with its pnl."""
    from engine.records import TradeStatus

    trades = await backtest_trades(service, backtest_id)

    async def lines() -> AsyncIterator[bytes]:
        yield b"timestamp,action,price,quantity,pnl,cumulative_pnl\n"
        total = 0.0
        for trade in trades:
            units = float(trade["units"])
            yield _csv_line(
                [
                    iso_ns(int(trade["entry_ts"])),
                    "BUY",
                    float(trade["entry_price"]),
                    units,
                    0,
                    total,
                ]
            )
            if trade["status"] == TradeStatus.Open:
                continue
            total += float(trade["pnl"])
            yield _csv_line(
                [iso_ns(int(trade["exit_ts"])), "SELL", float(trade["exit_price"]), units,
                 float(trade["pnl"]), total]
            )  # fmt: skip

    return lines()


LEADERBOARD_COLUMNS = [
    "rank", "backtest_id", "model_id", "pack_id", "risk_profile", "tag", "threshold",
    "allowed_hours", "top_pct", "sharpe", "cum_ret", "max_drawdown", "win_rate", "trades",
    "gate_pass", "gate_reasons",
]  # fmt: skip


async def export_leaderboard(
    service: ResearchService, filters: dict[str, Any], sort_by: str
) -> AsyncIterator[bytes]:
    await leaderboard(service, filters, sort_by, 1, 0)  # refuses a bad sort before streaming

    async def lines() -> AsyncIterator[bytes]:
        yield _csv_line(LEADERBOARD_COLUMNS)
        offset = 0
        while True:
            items, _ = await leaderboard(service, filters, sort_by, EXPORT_PAGE, offset)
            for item in items:
                m, c = item["metrics"] or {}, item["config"]
                hours = c["allowed_hours"]
                yield _csv_line(
                    [item["rank"], item["backtest_id"], item["model_id"], item["pack_id"],
                     item["risk_profile"], item["tag"] or "", c["threshold"],
                     "" if hours is None else " ".join(str(h) for h in hours),
                     "" if c["top_pct"] is None else c["top_pct"], m.get("sharpe"),
                     m.get("cum_ret"), m.get("max_drawdown"), m.get("win_rate"), m.get("trades"),
                     item["gate"]["pass"], "; ".join(item["gate"]["reasons"])]
                )  # fmt: skip
            if len(items) < EXPORT_PAGE:
                return
            offset += EXPORT_PAGE

    return lines()


# -- health ---------------------------------------------------------------------------------


async def components(service: ResearchService) -> dict[str, str]:
    from hub import health

    report = await health.check(service.pool, service.resources.redis)
    worker = "unhealthy"
    if report.redis:
        try:
            seen = await service.resources.redis.exists(service.resources.keys.worker_health)
            worker = "healthy" if seen else "degraded"
        except Exception:  # noqa: BLE001 - an unreachable queue is an unhealthy one
            worker = "unhealthy"
    market = "unhealthy"
    if report.postgres:
        market = "healthy" if await service.datasets.symbols() else "degraded"
    return {
        "database": "healthy" if report.postgres else "unhealthy",
        "cache": "healthy" if report.redis else "unhealthy",
        "worker_queue": worker,
        "market_data": market,
        # Seed 001's name for its market-data source: here the hub's own datasets.
        "polygon_api": market,
    }


async def ticker_health(service: ResearchService, ticker: str) -> dict[str, Any]:
    from hub.datasets.catalogue.repository import ticker_series
    from hub.datasets.timeframes import timeframe_ns

    rows = await ticker_series(service.pool, ticker)
    if not rows:
        raise NotFound(f"no dataset of ticker {ticker[:40]!r}", field="ticker")
    best = max(rows, key=lambda r: r["ohlcv_last_ts"] or 0)
    first, last, count = best["ohlcv_first_ts"], best["ohlcv_last_ts"], int(best["ohlcv_row_count"])
    quality = None
    if first is not None and last is not None and count:
        expected = (last - first) * 1000 // timeframe_ns(best["granularity"]) + 1
        quality = round(min(1.0, count / max(expected, 1)), 4)
    return {
        "status": "healthy" if count else "degraded",
        "last_update": None if last is None else iso_ns(int(last) * 1000),
        "data_quality": quality,
        "timeframe": best["granularity"],
        "bars": count,
    }


async def pack_health(service: ResearchService, pack_id: str) -> dict[str, Any]:
    count = await repo.models_of_pack(service.pool, pack_id)
    if count == 0:
        raise NotFound(f"no model in pack {pack_id[:40]!r}", field="pack_id")
    active = await repo.active_signals_of_pack(service.pool, pack_id)
    return {"status": "healthy", "models_count": count, "active_signals": active}


async def model_health(service: ResearchService, model_id: str) -> dict[str, Any]:
    await service.get_model(model_id, field="model_id")
    summary = await service.model_summary(model_id)
    last = None if summary is None else summary["last_backtest_at"]
    best = None if summary is None else summary["best_backtest_id"]
    performance = "untested"
    if best is not None:
        row = await service.get_backtest(best)
        performance = "meeting_target" if row["gate_pass"] else "below_target"
    return {
        "status": "healthy" if best is not None else "degraded",
        "last_backtest": iso(last),
        "performance": performance,
    }
