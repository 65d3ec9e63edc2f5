"""Fitting the model: the seed's StandardScaler in front of an XGBoost classifier (hist), its
hyperparameters chosen by a time-series cross-validated search.

The default search is **staged** ("tree count for free"). A plain grid search treats ``n_estimators`` as
one more axis and fits 150, 300 and 600 trees as three separate models, although the 150-tree model is the
first 150 trees of the 600-tree one. Here every tree *shape* (depth, min_child_weight, reg_lambda,
learning rate) is fitted once per fold up to the largest ``n_estimators`` of the grid, and XGBoost reports
the fold's validation log-loss after every tree; the grid's ``n_estimators`` values are the checkpoints
read off that curve. So the search scores shapes × checkpoints candidates at the cost of shapes × folds
fits. bench/bench_retrain.py measures it against the plain ``GridSearchCV`` (``search="grid"`` over
``BASELINE_GRID``, 240 fits) on the shared history, for time and for held-out quality.

Why this grid: on the real seasons before 2021 (validation on 2017-18 to 2020-21, each trained on the
seasons before it; the held-out 2021-22 and 2022-23 chose nothing) deep trees overfit a signal that is
close to additive (Elo difference and win percentages), and the cross-validated choice was depth 1-2 with
a few hundred trees at a low learning rate, which matched or beat a logistic regression on the same
features. Monotone constraints (win % and Elo) and recency weighting of older seasons were tried there
and did not help, so they are not in the grid.

Folds come from ``TimeSeriesSplit``: each fold trains on the past and validates on the games after it,
never shuffled. The dataset is not balanced: the home team wins about 58 % of games and that home
advantage is real signal the model must learn, not a bias to remove.

Fixed seeds and one XGBoost thread per fit make the same data and config give byte-identical model files
(the search runs folds in parallel processes, which does not change any single fit).

Calibration (``calibrate``): a forest fitted on seasons before is often over-confident on the next one.
After the search, the chosen shape is fitted again on the train part of the last ``CALIBRATION_FOLDS``
time-ordered folds, and Platt scaling (two numbers, ``nbaml.bundle.PlattCalibration``) is fitted on what
those fits predicted of their validation games, which their trees never saw. It is kept only if a
calibrator fitted on the older of those folds improves the log-loss of the newer one, so a retrain never
ships a calibrator that did not help on games after the ones it was fitted on.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from nbaml.bundle import ELO_FEATURE, PlattCalibration, StandardScalerParams
from nbaml.features import elo_probability

SEARCHES = ("staged", "grid")

DEFAULT_GRID: dict[str, list[Any]] = {
    "max_depth": [1, 2, 3],
    "learning_rate": [0.03],
    "n_estimators": list(range(50, 401, 50)),  # checkpoints of one fit per shape and fold (staged search)
    "min_child_weight": [10],
    "reg_lambda": [1.0, 30.0],
}

# The plain exhaustive search the staged one is measured against: 48 candidates x 5 folds = 240 fits.
BASELINE_GRID: dict[str, list[Any]] = {
    "max_depth": [2, 3, 4],
    "learning_rate": [0.03, 0.06],
    "n_estimators": [150, 300],
    "min_child_weight": [1, 10],
    "reg_lambda": [1.0, 10.0],
}

_DEFAULT_TREES = 100  # when a grid names no n_estimators


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    cv_splits: int = 5
    search: str = "staged"  # or "grid" (plain GridSearchCV, every grid point a separate fit: the baseline)
    grid: dict[str, list[Any]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_GRID.items()})
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    n_jobs: int = 2  # search processes; each XGBoost fit uses one thread (determinism)
    # The champion's hyperparameters, scored beside the grid (staged search): a retrain that cannot find
    # anything better on today's folds still keeps what served well.
    warm_start: dict[str, Any] | None = None
    calibrate: bool = True  # Platt scaling after the trees, kept only where it helps (module docstring)

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search {self.search!r}: use one of {SEARCHES}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "cv_splits": self.cv_splits,
            "search": self.search,
            "grid": self.grid,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "warm_start": self.warm_start,
            "calibrate": self.calibrate,
        }


@dataclass(frozen=True)
class FittedModel:
    model_json: bytes
    scaler: StandardScalerParams
    params: dict[str, Any]
    cv_log_loss: float
    fits: int  # model fits made by the cross-validation (the final refit on all rows not counted)
    seconds: float
    pipeline: Pipeline
    candidates: int = 0  # hyperparameter settings scored (staged: shapes x checkpoints)
    search_seconds: float = 0.0
    refit_seconds: float = 0.0
    calibration: PlattCalibration | None = None
    calibration_check: dict[str, Any] = field(default_factory=dict)
    elo_column: int | None = None  # where elo_diff sits in X, for the calibrator's Elo term

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """What the bundle serves: the pipeline's probability, then the calibrator when there is one."""
        elo = X[:, self.elo_column] if self.elo_column is not None else None
        return calibrated(self.pipeline.predict_proba(X)[:, 1], self.calibration, elo)


def _classifier(config: TrainConfig, **params: Any) -> XGBClassifier:
    return XGBClassifier(
        objective="binary:logistic",
        tree_method="hist",
        eval_metric="logloss",
        subsample=config.subsample,
        colsample_bytree=config.colsample_bytree,
        random_state=config.seed,
        n_jobs=1,
        **params,
    )


def _estimator(config: TrainConfig, **params: Any) -> Pipeline:
    return Pipeline([("scaler", StandardScaler()), ("model", _classifier(config, **params))])


def fit(
    X: np.ndarray, y: np.ndarray, config: TrainConfig | None = None, feature_names: Sequence[str] | None = None
) -> FittedModel:
    """Search with time-ordered folds, refit the best on all of ``X``, and export it as data.

    ``feature_names`` (the columns of ``X``) lets the calibrator probe its Elo term when elo_diff is one.
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    if config.search == "grid":
        params, cv_log_loss, fits, candidates = _grid_search(X, y, config)
    else:
        params, cv_log_loss, fits, candidates = _staged_search(X, y, config)
    searched = time.perf_counter()
    best = refit(X, y, params, config)
    elo = elo_column(feature_names)
    calibration, check = fit_calibration(X, y, params, config, elo) if config.calibrate else (None, {"kept": False})
    finished = time.perf_counter()
    return FittedModel(
        model_json=bytes(best.named_steps["model"].get_booster().save_raw(raw_format="json")),
        scaler=StandardScalerParams.from_sklearn(best.named_steps["scaler"]),
        params={
            **params,
            "subsample": config.subsample,
            "colsample_bytree": config.colsample_bytree,
            "tree_method": "hist",
            "seed": config.seed,
        },
        cv_log_loss=cv_log_loss,
        fits=fits,
        seconds=finished - started,
        pipeline=best,
        candidates=candidates,
        search_seconds=searched - started,
        refit_seconds=finished - searched,
        calibration=calibration,
        calibration_check=check,
        elo_column=elo,
    )


def refit(X: np.ndarray, y: np.ndarray, params: dict[str, Any], config: TrainConfig) -> Pipeline:
    """The scaler and the classifier with fixed hyperparameters on all rows (also the monthly walk-forward refit)."""
    model_params = {k: v for k, v in params.items() if k not in _FIXED}
    return _estimator(config, **model_params).fit(X, y)


CALIBRATION_FOLDS = 2


def calibrated(p: np.ndarray, calibration: PlattCalibration | None, elo_diff: np.ndarray | None = None) -> np.ndarray:
    """``p`` through the calibrator (vectorised twin of PlattCalibration.apply; ``elo_diff`` the raw column)."""
    if calibration is None:
        return np.asarray(p, dtype=np.float64)
    z = calibration.a * _logits(p) + calibration.b
    if calibration.elo:
        if elo_diff is None:
            raise ValueError("this calibrator has an Elo term: it needs the elo_diff column")
        z = z + calibration.elo * _elo_logits(elo_diff)
    return 1.0 / (1.0 + np.exp(-z))


def _logits(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


def _elo_logits(elo_diff: np.ndarray) -> np.ndarray:
    return _logits(np.asarray([elo_probability(float(d)) for d in np.nan_to_num(elo_diff)]))


def _platt(p: np.ndarray, y: np.ndarray, elo_diff: np.ndarray | None = None) -> PlattCalibration | None:
    """Platt scaling of ``p`` (with an Elo term when ``elo_diff`` is given); None if the fit would reverse p."""
    from sklearn.linear_model import LogisticRegression

    columns = [_logits(p)] if elo_diff is None else [_logits(p), _elo_logits(elo_diff)]
    fitted = LogisticRegression(C=1e6, max_iter=1000).fit(np.column_stack(columns), y)
    coef = [float(c) for c in fitted.coef_[0]]
    if coef[0] <= 0:
        return None
    return PlattCalibration(a=coef[0], b=float(fitted.intercept_[0]), elo=coef[1] if elo_diff is not None else 0.0)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    from nbaml.metrics import log_loss

    return log_loss(y, p)


def elo_column(feature_names: Sequence[str] | None) -> int | None:
    """Where the raw elo_diff sits in a feature matrix (None if the feature set has none)."""
    names = list(feature_names or ())
    return names.index(ELO_FEATURE) if ELO_FEATURE in names else None


def fit_calibration(
    X: np.ndarray, y: np.ndarray, params: dict[str, Any], config: TrainConfig, elo: int | None = None
) -> tuple[PlattCalibration | None, dict[str, Any]]:
    """A calibrator from the last folds' unseen games, or None where it did not help (module docstring).

    Two forms are probed, plain Platt and Platt with an Elo term (when column ``elo`` of ``X`` is elo_diff):
    each fitted on the older fold and scored on the newer; the better one is kept if it beats no calibrator.
    """
    folds = list(TimeSeriesSplit(n_splits=config.cv_splits).split(X))[-CALIBRATION_FOLDS:]
    unseen = [(refit(X[tr], y[tr], params, config).predict_proba(X[va])[:, 1], y[va], va) for tr, va in folds]
    (p_old, y_old, i_old), (p_new, y_new, i_new) = unseen[0], unseen[-1]

    def column(index: np.ndarray, with_elo: bool) -> np.ndarray | None:
        return X[index, elo] if with_elo and elo is not None else None

    before = _log_loss(y_new, p_new)
    best: tuple[float, bool] | None = None
    for with_elo in (False, True) if elo is not None else (False,):
        probe = _platt(p_old, y_old, column(i_old, with_elo))
        if probe is not None:
            after = _log_loss(y_new, calibrated(p_new, probe, column(i_new, with_elo)))
            if best is None or after < best[0]:
                best = (after, with_elo)
    check = {"fold_games": [len(y_old), len(y_new)], "log_loss_before": round(before, 6)}
    if best is None or best[0] >= before:
        return None, check | {"after": round(best[0], 6) if best else None, "kept": False}
    after, with_elo = best
    everything = np.concatenate([i for _, _, i in unseen])
    calibration = _platt(np.concatenate([p for p, _, _ in unseen]), y[everything], column(everything, with_elo))
    if calibration is None:
        return None, check | {"after": round(after, 6), "kept": False}
    kept = {"kept": True, "a": round(calibration.a, 6), "b": round(calibration.b, 6), "elo": round(calibration.elo, 6)}
    return calibration, check | {"after": round(after, 6)} | kept


# Parameters set from the config, never searched (kept out of a refit's keyword arguments).
_FIXED = ("subsample", "colsample_bytree", "tree_method", "seed")


def _grid_search(X: np.ndarray, y: np.ndarray, config: TrainConfig) -> tuple[dict[str, Any], float, int, int]:
    """The baseline: scikit-learn's GridSearchCV, every grid point (tree counts included) a separate fit."""
    grid = {f"model__{name}": values for name, values in config.grid.items()}
    search = GridSearchCV(
        _estimator(config),
        grid,
        scoring="neg_log_loss",
        cv=TimeSeriesSplit(n_splits=config.cv_splits),
        refit=False,  # the refit is ours, the same for both searches
        n_jobs=config.n_jobs,
        error_score="raise",
    )
    search.fit(X, y)
    candidates = len(search.cv_results_["params"])
    params = {name.removeprefix("model__"): value for name, value in search.best_params_.items()}
    return params, float(-search.best_score_), candidates * config.cv_splits, candidates


def _shapes(config: TrainConfig) -> tuple[list[dict[str, Any]], list[int]]:
    """Every combination of the grid's non-tree-count values, in grid order, and the sorted checkpoints."""
    axes = {k: v for k, v in config.grid.items() if k != "n_estimators"}
    shapes = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    checkpoints = sorted({int(n) for n in config.grid.get("n_estimators", [_DEFAULT_TREES])})
    if config.warm_start:
        champion = {k: v for k, v in config.warm_start.items() if k not in _FIXED and k != "n_estimators"}
        if champion and champion not in shapes:
            shapes.append(champion)
        if "n_estimators" in config.warm_start:
            checkpoints = sorted({*checkpoints, int(config.warm_start["n_estimators"])})
    return shapes, checkpoints


def _fold_curve(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    shape: dict[str, Any],
    trees: int,
    config: TrainConfig,
) -> np.ndarray:
    """Validation log-loss after each tree of one fit, scaled as the served pipeline scales."""
    scaler = StandardScaler().fit(X_train)
    model = _classifier(config, n_estimators=trees, **shape)
    model.fit(scaler.transform(X_train), y_train, eval_set=[(scaler.transform(X_valid), y_valid)], verbose=False)
    return np.asarray(model.evals_result()["validation_0"]["logloss"], dtype=np.float64)


def _staged_search(X: np.ndarray, y: np.ndarray, config: TrainConfig) -> tuple[dict[str, Any], float, int, int]:
    shapes, checkpoints = _shapes(config)
    trees = checkpoints[-1]
    folds = list(TimeSeriesSplit(n_splits=config.cv_splits).split(X))
    jobs = [(s, f) for s in range(len(shapes)) for f in range(len(folds))]
    curves = Parallel(n_jobs=config.n_jobs)(
        delayed(_fold_curve)(X[tr], y[tr], X[va], y[va], shapes[s], trees, config)
        for s, f in jobs
        for tr, va in [folds[f]]
    )
    at = np.asarray(checkpoints) - 1
    best: tuple[float, int, int] | None = None  # (mean log-loss, shape index, trees)
    for s in range(len(shapes)):
        mean = np.mean([curves[j][at] for j, (shape, _) in enumerate(jobs) if shape == s], axis=0)
        k = int(np.argmin(mean))  # first minimum: on a tie the fewer trees win, deterministically
        if best is None or mean[k] < best[0]:
            best = (float(mean[k]), s, checkpoints[k])
    assert best is not None
    cv_log_loss, s, n = best
    return {**shapes[s], "n_estimators": n}, cv_log_loss, len(jobs), len(shapes) * len(checkpoints)
