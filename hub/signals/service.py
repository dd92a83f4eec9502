"""Reading signals: Sigma Lab's ``GET /signals`` and ``/signals/leaderboard``, and GraphQL's.

Models are a shared research catalogue (every user lists them), and so are their signals:
any signed-in caller reads them; only who made a model (or an admin) changes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from hub.datasets.timeframes import timeframe_ns
from hub.errors import BadRequest, NotFound
from hub.signals import repository as repo
from hub.signals.decide import live_metrics
from hub.signals.documents import document_of_row

if TYPE_CHECKING:
    from hub.domains import Resources

STATUSES = ("active", "filled", "cancelled")
RISK_PROFILES = ("Conservative", "Balanced", "Aggressive")


class SignalService:
    def __init__(self, resources: Resources) -> None:
        self.pool = resources.pool
        self.engine: Any = None  # the evaluator, in a worker

    async def find(
        self,
        *,
        model_id: str | None = None,
        status: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Signals newest first, by the time of the bar each was judged on."""
        if status is not None and status not in STATUSES:
            raise BadRequest(
                f"status must be one of {', '.join(STATUSES)}, got {status!r}", field="status"
            )
        _check_window(start, end)
        filters = {
            "s.model_id=": model_id,
            "s.status=": status,
            "s.bar_ts>=": start,
            "s.bar_ts<": end,
        }
        rows, total = await repo.list_signals(self.pool, filters, limit, offset)
        return [document_of_row(row) for row in rows], total

    async def leaderboard(
        self,
        *,
        pack: str | None = None,
        risk_profile: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Per model with signals in ``[start, end)``, best live sharpe first (models without one
        last, by success rate)."""
        if risk_profile is not None and risk_profile not in RISK_PROFILES:
            raise BadRequest(
                f"risk_profile must be one of {', '.join(RISK_PROFILES)}, got {risk_profile!r}",
                field="risk_profile",
            )
        _check_window(start, end)
        filters = {
            "m.pack_id=": pack,
            "m.risk_profile=": risk_profile,
            "s.bar_ts>=": start,
            "s.bar_ts<": end,
        }
        items = []
        for row in await repo.scores(self.pool, filters):
            horizon = int((row["config"] or {}).get("horizon") or 1)
            metrics = live_metrics(
                int(row["total"]),
                int(row["resolved"]),
                int(row["wins"]),
                None if row["mean"] is None else float(row["mean"]),
                None if row["std"] is None else float(row["std"]),
                horizon * timeframe_ns(row["timeframe"]),
            )
            items.append(
                {
                    "model_id": row["model_id"],
                    "pack_id": row["pack_id"],
                    "risk_profile": row["risk_profile"],
                    "metrics": metrics,
                }
            )
        items.sort(
            key=lambda i: (
                i["metrics"]["sharpe_live"] is None,
                -(i["metrics"]["sharpe_live"] or 0.0),
                -(i["metrics"]["success_rate"] or 0.0),
                i["model_id"],
            )
        )
        return items

    async def require_model(self, model_id: str) -> None:
        if not await repo.model_exists(self.pool, model_id):
            raise NotFound(f"model {model_id} not found")


def _check_window(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise BadRequest("end must be after start", field="end")
