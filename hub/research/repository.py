"""SQL for the research schema's models, artifacts, matrices and trained versions, and a pack's
count of active signals (for health). Backtests, sweeps and the leaderboard are in
``hub.research.backtests.repository``."""

from __future__ import annotations

from typing import Any

import asyncpg

from hub.db import Conn

MODEL_COLUMNS = """model_id, pack_id, template_id, name, risk_profile, ticker, timeframe, config,
    config_sha, active, created_by, created_at, updated_at"""
VERSION_COLUMNS = """version_id, model_id, version, matrix_sha, allowed_hours, params,
    feature_columns, file_sha, metrics, status, error, job_id, created_by, created_at,
    completed_at"""


# -- models -------------------------------------------------------------------------------


async def insert_model(
    conn: Conn, values: dict[str, Any], created_by: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""insert into research.models (model_id, pack_id, template_id, name, risk_profile,
                ticker, timeframe, config, config_sha, created_by)
            values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            on conflict (model_id) do nothing returning {MODEL_COLUMNS}""",
        values["model_id"],
        values["pack_id"],
        values["template_id"],
        values["name"],
        values["risk_profile"],
        values["ticker"],
        values["timeframe"],
        values["config"],
        values["config_sha"],
        created_by,
    )


async def model_ids_like(conn: Conn, base: str) -> set[str]:
    rows = await conn.fetch(
        "select model_id from research.models where model_id = $1 or model_id like $2",
        base,
        base.replace("_", r"\_") + r"\_%",
    )
    return {row["model_id"] for row in rows}


async def get_model(conn: Conn, model_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {MODEL_COLUMNS} from research.models where model_id = $1", model_id
    )


async def list_models(
    conn: Conn, model_id: str | None, pack_id: str | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where = "($1::text is null or m.model_id = $1) and ($2::text is null or m.pack_id = $2)"
    rows = await conn.fetch(
        f"""select {", ".join("m." + c.strip() for c in MODEL_COLUMNS.split(","))},
                   best.metrics as best_metrics, mx.matrix_sha as matrix_sha
            from research.models m
            left join lateral ({_BEST}) best on true
            left join lateral ({_NEWEST_MATRIX}) mx on true
            where {where}
            order by m.created_at desc, m.model_id limit $3 offset $4""",
        model_id,
        pack_id,
        limit,
        offset,
    )
    total = await conn.fetchval(
        f"select count(*) from research.models m where {where}", model_id, pack_id
    )
    return rows, int(total)


_BEST = """select b.backtest_id, b.metrics, b.completed_at from research.backtests b
    where b.model_id = m.model_id and b.status = 'completed'
    order by (b.metrics->>'sharpe')::float8 desc nulls last, b.completed_at desc limit 1"""
_NEWEST_MATRIX = """select x.matrix_sha from research.matrices x where x.model_id = m.model_id
    order by x.created_at desc limit 1"""


async def model_summary(conn: Conn, model_id: str) -> asyncpg.Record | None:
    """The model's best backtest (by sharpe) and newest matrix and trained version."""
    return await conn.fetchrow(
        f"""select best.backtest_id as best_backtest_id, best.metrics as best_metrics,
                   best.completed_at as last_backtest_at, mx.matrix_sha,
                   (select count(*) from research.model_versions v
                     where v.model_id = m.model_id and v.status = 'completed') as versions
            from research.models m
            left join lateral ({_BEST}) best on true
            left join lateral ({_NEWEST_MATRIX}) mx on true
            where m.model_id = $1""",
        model_id,
    )


async def update_model(conn: Conn, model_id: str, changes: dict[str, Any]) -> asyncpg.Record | None:
    sets = ", ".join(f"{name} = ${k + 2}" for k, name in enumerate(changes))
    return await conn.fetchrow(
        f"""update research.models set {sets}, updated_at = now() where model_id = $1
            returning {MODEL_COLUMNS}""",
        model_id,
        *changes.values(),
    )


async def delete_model(conn: Conn, model_id: str) -> bool:
    deleted = await conn.fetchval(
        "delete from research.models where model_id = $1 returning model_id", model_id
    )
    return deleted is not None


async def model_run_ids(conn: Conn, model_id: str) -> list[str]:
    rows = await conn.fetch(
        "select run_id from research.backtests where model_id = $1 and run_id is not null",
        model_id,
    )
    return [str(row["run_id"]) for row in rows]


async def models_of_pack(conn: Conn, pack_id: str) -> int:
    return int(
        await conn.fetchval("select count(*) from research.models where pack_id = $1", pack_id)
    )


# -- artifacts ----------------------------------------------------------------------------


async def put_artifact(conn: Conn, sha: str, kind: str, content: bytes) -> None:
    await conn.execute(
        """insert into research.artifacts (sha, kind, content, size_bytes) values ($1, $2, $3, $4)
           on conflict (sha) do nothing""",
        sha,
        kind,
        content,
        len(content),
    )


async def artifact(conn: Conn, sha: str) -> bytes | None:
    content: bytes | None = await conn.fetchval(
        "select content from research.artifacts where sha = $1", sha
    )
    return content


async def orphaned_artifacts(conn: Conn, shas: list[str]) -> list[asyncpg.Record]:
    """Of ``shas``, those no matrix or trained version uses any more: deleted, and answered."""
    return await conn.fetch(
        """delete from research.artifacts a where a.sha = any($1::text[])
             and not exists (select 1 from research.matrices x where x.matrix_sha = a.sha)
             and not exists (select 1 from research.model_versions v where v.file_sha = a.sha)
           returning a.sha, a.kind""",
        shas,
    )


async def artifacts_of_model(conn: Conn, model_id: str) -> list[str]:
    rows = await conn.fetch(
        """select matrix_sha as sha from research.matrices where model_id = $1
           union select file_sha from research.model_versions where model_id = $1
             and file_sha is not null""",
        model_id,
    )
    return [row["sha"] for row in rows]


# -- matrices -----------------------------------------------------------------------------


async def insert_matrix(conn: Conn, values: dict[str, Any], created_by: str) -> None:
    await conn.execute(
        """insert into research.matrices (model_id, matrix_sha, start_date, end_date, features,
               columns, horizon, row_count, size_bytes, created_by)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           on conflict (model_id, matrix_sha) do nothing""",
        values["model_id"],
        values["matrix_sha"],
        values["start_date"],
        values["end_date"],
        values["features"],
        values["columns"],
        values["horizon"],
        values["row_count"],
        values["size_bytes"],
        created_by,
    )


async def matrices_matching(conn: Conn, model_id: str, sha_prefix: str) -> list[asyncpg.Record]:
    """The model's matrices whose sha starts with ``sha_prefix`` (a full sha, or its start)."""
    return await conn.fetch(
        """select * from research.matrices where model_id = $1 and matrix_sha like $2
           order by created_at desc limit 2""",
        model_id,
        sha_prefix + "%",
    )


async def newest_matrix(conn: Conn, model_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "select * from research.matrices where model_id = $1 order by created_at desc limit 1",
        model_id,
    )


# -- trained versions ---------------------------------------------------------------------


async def insert_version(conn: Conn, values: dict[str, Any], created_by: str) -> asyncpg.Record:
    await conn.execute(
        "select pg_advisory_xact_lock(hashtext('research.version:' || $1))", values["model_id"]
    )
    row = await conn.fetchrow(
        f"""insert into research.model_versions (version_id, model_id, version, matrix_sha,
                allowed_hours, params, created_by)
            values ($1, $2, coalesce((select max(version) from research.model_versions
                                      where model_id = $2), 0) + 1, $3, $4, $5, $6)
            returning {VERSION_COLUMNS}""",
        values["version_id"],
        values["model_id"],
        values["matrix_sha"],
        values["allowed_hours"],
        values["params"],
        created_by,
    )
    assert row is not None
    return row


async def get_version(conn: Conn, version_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"select {VERSION_COLUMNS} from research.model_versions where version_id = $1", version_id
    )


async def latest_version(conn: Conn, model_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""select {VERSION_COLUMNS} from research.model_versions
            where model_id = $1 and status = 'completed' order by version desc limit 1""",
        model_id,
    )


async def set_version(conn: Conn, version_id: str, **values: Any) -> None:
    sets = ", ".join(f"{name} = ${k + 2}" for k, name in enumerate(values))
    done = (
        ", completed_at = now()"
        if values.get("status") in ("completed", "failed", "cancelled")
        else ""
    )
    await conn.execute(
        f"update research.model_versions set {sets}{done} where version_id = $1",
        version_id,
        *values.values(),
    )


async def set_job(conn: Conn, table: str, key: str, value: str, job_id: str) -> None:
    await conn.execute(f"update research.{table} set job_id = $2 where {key} = $1", value, job_id)


# -- health -------------------------------------------------------------------------------


async def active_signals_of_pack(conn: Conn, pack_id: str) -> int:
    count = await conn.fetchval(
        """select count(*) from research.signals s join research.models m using (model_id)
           where m.pack_id = $1 and s.status = 'active'""",
        pack_id,
    )
    return int(count)
