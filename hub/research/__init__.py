"""Research (Sigma Lab): models from templates, feature matrices, LightGBM training,
walk-forward backtests, sweeps and the leaderboard."""

from __future__ import annotations

from hub.domains import Domain
from hub.research import gql
from hub.research.jobs import BACKTEST, SWEEP, TRAIN
from hub.research.service import ResearchService

domain = Domain(
    name="research",
    service=ResearchService,
    jobs=(TRAIN, BACKTEST, SWEEP),
    query=gql.Query,
    mutation=gql.Mutation,
)
