"""Training one candidate and judging it on the newest games beside the champion and two baselines."""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbaml.bundle import ModelBundle
from nbaml.features import FEATURE_NAMES
from nbaml.games.history import data_hash
from nbaml.games.records import Game
from nbaml.metrics import score
from nbaml.training.dataset import Split, feature_table, time_split
from nbaml.training.evaluate import holdout_scores, inference_latency_ms
from nbaml.training.gates import Gates, Verdict, judge
from nbaml.training.search import FittedModel, TrainConfig, fit

# The champion is compared only on holdout games it never trained on; fewer than this and the
# comparison is too noisy to decide anything, so the floors decide alone (and the verdict says so).
MIN_COMPARISON_GAMES = 100


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
    champion: ModelBundle | None = None,
    provenance: dict[str, Any] | None = None,
) -> Candidate:
    """Fit on all but the newest games, evaluate on those, compare with the champion, apply the gates."""
    config = config or TrainConfig()
    gates = gates or Gates()
    table = feature_table(games)
    split = time_split(table, FEATURE_NAMES)
    fitted = fit(split.X_train, split.y_train, config)
    draft = ModelBundle(
        version=version, model_json=fitted.model_json, scaler=fitted.scaler, feature_names=list(FEATURE_NAMES)
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

    champion_scores = None
    if champion is not None:
        unseen_after = dt.date.fromisoformat(
            champion.metadata.get("training_window", {}).get("train_end", "0001-01-01")
        )
        mask = np.asarray([d > unseen_after for d in _holdout_dates(table, split)])
        n = int(mask.sum())
        comparison: dict[str, Any] = {"version": champion.version, "n": n, "unseen_after": unseen_after.isoformat()}
        if n >= MIN_COMPARISON_GAMES and set(champion.feature_names) <= set(FEATURE_NAMES):
            rows = [r for r, keep in zip(split.holdout_rows, mask, strict=True) if keep]
            index = [FEATURE_NAMES.index(name) for name in champion.feature_names]
            p_champion = np.asarray(champion.predict_many([[r[i] for i in index] for r in rows]))
            y = split.y_holdout[mask]
            champion_scores = score(y, p_champion).as_dict()
            comparison |= {"champion": champion_scores, "candidate": score(y, p_candidate[mask]).as_dict()}
        else:
            comparison["skipped"] = f"only {n} holdout games unseen by {champion.version} (need {MIN_COMPARISON_GAMES})"
        evaluation["champion"] = comparison

    relative_candidate = (evaluation["champion"] or {}).get("candidate", evaluation["candidate"])
    verdict = judge(
        evaluation["candidate"] | {"log_loss": relative_candidate["log_loss"]}, champion_scores, gates, latency
    )
    metadata = {
        "version": version,
        "metrics": evaluation["candidate"],
        "baseline_accuracy": evaluation["candidate"]["accuracy"],
        "evaluation": evaluation,
        "gates": {"passed": verdict.passed, "reasons": verdict.reasons, "checks": verdict.checks},
        "hyperparameters": fitted.params,
        "search": {
            "kind": config.search,
            "fits": fitted.fits,
            "seconds": round(fitted.seconds, 3),
            "cv_log_loss": round(fitted.cv_log_loss, 6),
            "grid": config.grid,
        },
        "training_window": split.window,
        "n_train": len(split.y_train),
        "data_hash": data_hash(games),
        "feature_names": list(FEATURE_NAMES),
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
    )
    return Candidate(bundle=bundle, split=split, fitted=fitted, evaluation=evaluation, verdict=verdict)


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
