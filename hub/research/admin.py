"""What only an admin may do to a research model: change its config, name, risk profile or
activity, and delete it with every file no other model uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from hub.auth import Identity
from hub.errors import BadRequest, Forbidden, NotFound
from hub.research import repository as repo
from hub.research.model import PatchModel, canonical_sha

if TYPE_CHECKING:
    from hub.research.service import ResearchService


async def patch_model(
    service: ResearchService, identity: Identity, model_id: str, patch: PatchModel
) -> asyncpg.Record:
    if not identity.is_admin:
        raise Forbidden("admin role required")
    row = await service.get_model(model_id)
    changes: dict[str, Any] = {}
    if patch.config is not None:
        config = {**row["config"], **patch.config.model_dump(exclude_none=True)}
        if config["thresholds"]["exit"] >= config["thresholds"]["entry"]:
            raise BadRequest(
                "thresholds.exit must be below thresholds.entry", field="config.thresholds"
            )
        if patch.config.features is not None:
            from engine.features import UnknownFeatures, parse_features

            try:
                parse_features(config["features"])
            except UnknownFeatures as exc:
                raise BadRequest(
                    str(exc), field="config.features", details={"unknown": exc.names}
                ) from None
        changes["config"] = config
        changes["config_sha"] = canonical_sha(config)
    for name in ("name", "risk_profile", "active"):
        if getattr(patch, name) is not None:
            changes[name] = getattr(patch, name)
    if not changes:
        return row
    updated = await repo.update_model(service.pool, model_id, changes)
    if updated is None:
        raise NotFound(f"no model {model_id!r}", field="model_id")
    return updated


async def delete_model(
    service: ResearchService, identity: Identity, model_id: str
) -> dict[str, Any]:
    """The model, its matrices, versions, backtests, sweeps and signals, and every file no
    other model uses."""
    if not identity.is_admin:
        raise Forbidden("admin role required")
    await service.get_model(model_id)
    async with service.pool.acquire() as conn, conn.transaction():
        shas = await repo.artifacts_of_model(conn, model_id)
        await repo.delete_model(conn, model_id)
        removed = await repo.orphaned_artifacts(conn, shas)
    for row in removed:
        service.files.delete(row["kind"], row["sha"])
    return {"model_id": model_id, "deleted": True, "artifacts_removed": len(removed)}
