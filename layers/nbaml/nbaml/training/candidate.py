"""Training one candidate and judging it on the newest games beside the champion, the recent champions and two
baselines (the rules are ``nbaml.training.gates``)."""

from __future__ import annotations

import datetime as dt
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbaml.bundle import ModelBundle
from nbaml.features import FEATURE_DESCRIPTIONS, FEATURE_NAMES, FEATURES_VERSION, incompatibility
from nbaml.games.history import data_hash
from nbaml.games.records import Game
from nbaml.metrics import score
from nbaml.training.dataset import Split, feature_table, time_split
from nbaml.training.evaluate import holdout_scores, inference_latency_ms
from nbaml.training.gates import MIN_COMPARISON_GAMES, Comparison, Gates, Verdict, judge
from nbaml.training.search import FittedModel, TrainConfig, fit


@dataclass
class Candidate:
    bundle: ModelBundle
    split: Split
    fitted: FittedModel
    evaluation: dict[str, Any]
    verdict: Verdict


def _library_versions() -> dict[str, str]:
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
    }


def train_candidate(
    games: list[Game],
    *,
    version: str,
    config: TrainConfig | None = None,
    gates: Gates | None = None,
    champion: ModelBundle | str | None = None,
    recent: Sequence[ModelBundle | tuple[str, str]] = (),
    provenance: dict[str, Any] | None = None,
) -> Candidate:
    """Fit on all but the newest games, evaluate on those, compare with the champions, apply the gates.

    ``champion`` is the serving model's bundle, or the reason it cannot be read (then the candidate is held),
    or None when no model has ever served. ``recent`` are the champions before it (a bundle, or
    ``(version, why it cannot be read)``).
    """
    config = config or TrainConfig()
    gates = gates or Gates()
    table = feature_table(games)
    split = time_split(table, FEATURE_NAMES)
    fitted = fit(split.X_train, split.y_train, config, FEATURE_NAMES)
    draft = ModelBundle(
        version=version,
        model_json=fitted.model_json,
        scaler=fitted.scaler,
        feature_names=list(FEATURE_NAMES),
        calibration=fitted.calibration,
    )
    # Score with the engine that serves (the pure-Python evaluator), not with xgboost.
    p_candidate = np.asarray(draft.predict_many(split.holdout_rows))
    latency = inference_latency_ms(draft.predict_proba, split.holdout_rows)
    evaluation: dict[str, Any] = {
        "holdout": split.window | {"n": len(split.y_holdout)},
        **holdout_scores(split, p_candidate),
        "inference": latency,
        "champion": None,
    }

    def compared(other: ModelBundle | tuple[str, str] | str) -> Comparison:
        if isinstance(other, str):
            return Comparison("champion", unavailable=other)
        if isinstance(other, tuple):
            return Comparison(other[0], unavailable=other[1])
        return _compare(other, table, split, p_candidate)

    comparison = compared(champion) if champion is not None else None
    earlier = [compared(bundle) for bundle in recent]
    evaluation["champion"] = comparison.as_dict() if comparison else None
    evaluation["recent_champions"] = [c.as_dict() for c in earlier]
    verdict = judge(
        evaluation["candidate"],
        gates,
        latency,
        baselines={name: evaluation[name] for name in ("always_home", "elo")},
        champion=comparison,
        recent=earlier,
    )
    metadata = {
        "version": version,
        "metrics": evaluation["candidate"],
        "baseline_accuracy": evaluation["candidate"]["accuracy"],
        "evaluation": evaluation,
        "gates": {
            "passed": verdict.passed,
            "outcome": verdict.outcome,
            "reasons": verdict.reasons,
            "checks": verdict.checks,
        },
        "hyperparameters": fitted.params,
        "search": {
            "kind": config.search,
            "fits": fitted.fits,
            "seconds": round(fitted.seconds, 3),
            "cv_log_loss": round(fitted.cv_log_loss, 6),
            "grid": config.grid,
        },
        "calibration": fitted.calibration_check,
        "training_window": split.window,
        "n_train": len(split.y_train),
        "data_hash": data_hash(games),
        "feature_names": list(FEATURE_NAMES),
        "features_version": FEATURES_VERSION,
        "feature_descriptions": {name: FEATURE_DESCRIPTIONS[name] for name in FEATURE_NAMES},
        "feature_distribution": feature_distribution(split.X_train, FEATURE_NAMES),
        "libraries": _library_versions(),
        "seed": config.seed,
        **(provenance or {}),
    }
    bundle = ModelBundle(
        version=version,
        model_json=fitted.model_json,
        scaler=fitted.scaler,
        feature_names=list(FEATURE_NAMES),
        metadata=metadata,
        calibration=fitted.calibration,
    )
    return Candidate(bundle=bundle, split=split, fitted=fitted, evaluation=evaluation, verdict=verdict)


def _compare(other: ModelBundle, table: Any, split: Split, p_candidate: np.ndarray) -> Comparison:
    """The candidate and ``other`` on the holdout games ``other`` never trained on, if this code can say."""
    version = other.version
    incompatible = incompatibility(other.metadata)
    if incompatible:
        return Comparison(version, unavailable=incompatible)
    missing = [name for name in other.feature_names if name not in FEATURE_NAMES]
    if missing:
        return Comparison(version, unavailable=f"it uses features this code does not compute: {', '.join(missing)}")
    unseen_after = dt.date.fromisoformat(other.metadata.get("training_window", {}).get("train_end", "0001-01-01"))
    mask = np.asarray([d > unseen_after for d in _holdout_dates(table, split)])
    n = int(mask.sum())
    if n < MIN_COMPARISON_GAMES:
        why = f"only {n} holdout games after its training ended on {unseen_after} (need {MIN_COMPARISON_GAMES})"
        return Comparison(version, n, unavailable=why)
    rows = [r for r, keep in zip(split.holdout_rows, mask, strict=True) if keep]
    index = [FEATURE_NAMES.index(name) for name in other.feature_names]
    p_other = np.asarray(other.predict_many([[r[i] for i in index] for r in rows]))
    y = split.y_holdout[mask]
    return Comparison(version, n, candidate=score(y, p_candidate[mask]).as_dict(), other=score(y, p_other).as_dict())


def _holdout_dates(table: Any, split: Split) -> list[dt.date]:
    return table.dates[len(table.dates) - len(split.y_holdout) :]


def feature_distribution(X: np.ndarray, names: tuple[str, ...] | list[str], bins: int = 10) -> dict[str, Any]:
    """Per-feature decile edges and shares on the training rows: drift_check's PSI reference."""
    result: dict[str, Any] = {}
    for j, name in enumerate(names):
        column = X[:, j]
        edges = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]))
        counts = np.bincount(np.searchsorted(edges, column, side="right"), minlength=len(edges) + 1)
        result[name] = {
            "edges": [round(float(e), 6) for e in edges],
            "shares": [round(float(c) / len(column), 6) for c in counts],
        }
    return result
