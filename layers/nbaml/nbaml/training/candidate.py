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
from nbaml.monitoring import rules
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
        "feature_distribution": feature_distribution(
            split.X_train, FEATURE_NAMES, dates=table.dates[: len(split.y_train)]
        ),
        "results_reference": rules.results_reference(rules.home_margins(games, until=split.train_dates[1])),
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


def feature_distribution(
    X: np.ndarray, names: tuple[str, ...] | list[str], bins: int = 5, dates: Sequence[dt.date] | None = None
) -> dict[str, Any]:
    """Per-feature quintile edges and shares on the training rows: drift_check's PSI reference.

    Quintiles, not deciles: a team-level feature takes about 30 distinct values in a window of requests
    (one per team), and ten bins of three teams make PSI noise (bench/bench_feature_drift.py).

    With the rows' ``dates``, also each feature's ``normal`` PSI: drift_check's own check (a PSI_DAYS window
    against the PSI_DAYS before it, every Monday, ``rules.feature_drift``) replayed on the training rows,
    at ``rules.NORMAL_QUANTILE``.
    """
    result: dict[str, Any] = {}
    windows = _weekly_windows(dates) if dates is not None else []
    for j, name in enumerate(names):
        column = X[:, j]
        edges = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)[1:-1]))
        bin_of = np.searchsorted(edges, column, side="right")
        result[name] = {"edges": [round(float(e), 6) for e in edges], "shares": _shares(bin_of, len(edges) + 1)}
        if windows:
            levels = [_psi(bin_of[before], bin_of[now], len(edges) + 1) for now, before in windows]
            result[name]["normal"] = round(float(np.quantile(levels, rules.NORMAL_QUANTILE)), 4)
    return result


def _weekly_windows(dates: Sequence[dt.date]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(window, the window before) row masks for every Monday of ``dates`` where both hold enough rows."""
    ordinals = np.asarray([d.toordinal() for d in dates])
    first = dates[0] + dt.timedelta(days=(7 - dates[0].weekday()) % 7)
    days = rules.PSI_DAYS
    windows = []
    for monday in range(first.toordinal(), int(ordinals[-1]) + 8, 7):
        now = (ordinals >= monday - days) & (ordinals < monday)
        before = (ordinals >= monday - 2 * days) & (ordinals < monday - days)
        if now.sum() >= rules.MIN_PSI_ROWS and before.sum() >= rules.MIN_PSI_ROWS:
            windows.append((now, before))
    return windows


def _psi(expected_bins: np.ndarray, actual_bins: np.ndarray, bins: int) -> float:
    """``rules.psi`` on bin indices (the same floor of 1e-4 on both shares)."""
    e = np.maximum(np.bincount(expected_bins, minlength=bins) / len(expected_bins), 1e-4)
    a = np.maximum(np.bincount(actual_bins, minlength=bins) / len(actual_bins), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(bin_of: np.ndarray, bins: int) -> list[float]:
    counts = np.bincount(bin_of, minlength=bins)
    return [round(float(c) / len(bin_of), 6) for c in counts]
