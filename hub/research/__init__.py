"""Research (Sigma Lab): models from templates, feature matrices, LightGBM training,
walk-forward backtests, sweeps and the leaderboard."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from hub.domains import Domain
from hub.research import gql
from hub.research.jobs import BACKTEST, SWEEP, TRAIN
from hub.research.service import ResearchService

if TYPE_CHECKING:
    from hub.domains import Resources

log = logging.getLogger("tradehub.research")


def warm_feature_kernels() -> float:
    """Load (or compile, on a fresh machine) every feature kernel on a few bars."""
    import numpy as np

    from engine.features import FEATURES, feature_matrix, parse_features

    started = time.perf_counter()
    n = 128
    close = 100.0 + np.sin(np.arange(n) / 5.0)
    bars = {
        "ts": np.arange(n, dtype=np.int64) * 3_600_000_000_000,
        "open": close, "high": close + 1.0, "low": close - 1.0, "close": close,
        "volume": np.full(n, 10.0),
    }  # fmt: skip
    feature_matrix(bars, parse_features(list(FEATURES)), 5)
    return time.perf_counter() - started


async def start(resources: Resources) -> None:
    """Warm the feature kernels in a daemon thread: the hub builds matrices and the workers
    predict with them, and neither should wait for a first compile at start."""
    if resources.role not in ("hub", "worker"):
        return

    def run() -> None:
        try:
            log.info("feature kernels ready", extra={"seconds": round(warm_feature_kernels(), 2)})
        except Exception:
            log.exception("feature kernels failed to load")

    threading.Thread(target=run, name="research-warm-up", daemon=True).start()


domain = Domain(
    name="research",
    service=ResearchService,
    jobs=(TRAIN, BACKTEST, SWEEP),
    query=gql.Query,
    mutation=gql.Mutation,
    start=start,
)
