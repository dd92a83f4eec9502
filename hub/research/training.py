"""LightGBM on feature matrices, apart from I/O: which columns are features, a trained
booster, walk-forward predictions (each fold predicted by a model trained on the past only)
and the predictor a trained version becomes.

A model predicts the probability that the forward return (the matrix's ``target``) is
positive: a binary LightGBM classifier, so thresholds are probabilities (0.5 is "no view").
Training is deterministic (one thread, fixed seeds): the same rows give the same trees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NOT_FEATURES = ("ts", "target")
MIN_TRAIN_ROWS = 20


def feature_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c not in NOT_FEATURES]


def design(matrix: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """The feature columns as one float64 array, a row per bar (NaN kept: LightGBM routes
    missing values itself)."""
    return np.column_stack([np.asarray(matrix[c], dtype=np.float64) for c in features])


def lgb_params(learning_rate: float, num_leaves: int, min_data_in_leaf: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_data_in_leaf,
        "num_threads": 1,
        "deterministic": True,
        "force_col_wise": True,
        "seed": 7,
        "verbosity": -1,
    }


def train_booster(x: np.ndarray, target: np.ndarray, params: dict[str, Any], rounds: int) -> Any:
    """A booster fitted on the rows whose target is known (label: target above 0)."""
    import lightgbm as lgb

    known = np.isfinite(target)
    if int(known.sum()) < MIN_TRAIN_ROWS:
        raise ValueError(
            f"{int(known.sum())} rows with a known target; training needs at least {MIN_TRAIN_ROWS}"
        )
    data = lgb.Dataset(x[known], label=(target[known] > 0).astype(np.float64), free_raw_data=True)
    return lgb.train(params, data, num_boost_round=rounds)


def fold_bounds(n: int, splits: int) -> np.ndarray:
    """``splits + 2`` row boundaries: block 0 only trains, blocks 1..splits are predicted."""
    return np.linspace(0, n, splits + 2).astype(np.int64)


@dataclass(frozen=True)
class WalkForward:
    rows: np.ndarray  # the predicted rows' indices in the matrix
    fold: np.ndarray  # each one's fold, 1..splits
    prediction: np.ndarray  # probability that the forward return is positive


def walk_forward(
    x: np.ndarray,
    target: np.ndarray,
    *,
    splits: int,
    horizon: int,
    params: dict[str, Any],
    rounds: int,
    trainable: np.ndarray | None = None,
) -> WalkForward:
    """Predict fold ``k`` with a model trained on the rows before it only, less the last
    ``horizon`` of them (their targets reach into fold ``k``): no fold is ever trained on what
    it predicts. ``trainable`` masks rows out of training (hours not allowed)."""
    n = x.shape[0]
    bounds = fold_bounds(n, splits)
    rows, folds, predictions = [], [], []
    for k in range(1, splits + 1):
        start, stop = int(bounds[k]), int(bounds[k + 1])
        if stop <= start:
            continue
        end_train = max(0, start - horizon)
        label = target[:end_train].copy()
        if trainable is not None:
            label[~trainable[:end_train]] = np.nan
        try:
            booster = train_booster(x[:end_train], label, params, rounds)
        except ValueError as exc:
            raise ValueError(f"fold {k} (rows {start}..{stop - 1}): {exc}") from None
        rows.append(np.arange(start, stop))
        folds.append(np.full(stop - start, k, dtype=np.int64))
        predictions.append(booster.predict(x[start:stop]))
    if not rows:
        raise ValueError(f"{n} rows make no fold of {splits}")
    return WalkForward(np.concatenate(rows), np.concatenate(folds), np.concatenate(predictions))


@dataclass
class Predictor:
    """A trained version, loaded: ``predict_latest(bars)`` computes the matrix's features on
    ``bars`` (enough of them to warm the indicators) and predicts the last one."""

    model_id: str
    version_id: str
    features: list[str]  # as requested when the matrix was built
    columns: list[str]  # the booster's feature columns, in order
    horizon: int
    booster: Any

    def predict(self, rows: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.booster.predict(np.atleast_2d(rows))
        return out

    def predict_latest(self, bars: Mapping[str, np.ndarray]) -> float:
        from engine.features import feature_matrix, parse_features

        matrix = feature_matrix(bars, parse_features(self.features), self.horizon)
        return float(self.predict(design(matrix, self.columns)[-1:])[0])


def load_booster(text: bytes) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=text.decode())
