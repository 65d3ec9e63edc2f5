"""A candidate on its holdout: its scores beside always-home and Elo on the same games, and its latency.

The scores themselves (log-loss, accuracy, Brier, ECE, ROC-AUC) and both baselines are ``nbaml.metrics``,
shared with the drift check and the replay. Baselines, on the same games: always the home team (at the
training games' home-win rate), and Elo alone (FiveThirtyEight style, from the state's ratings). A model
that cannot beat Elo on log-loss has not earned its complexity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from nbaml.metrics import always_home, elo_baseline, percentile, score
from nbaml.training.dataset import Split


def holdout_scores(split: Split, p_candidate: Sequence[float]) -> dict[str, dict[str, Any]]:
    """``Scores.as_dict()`` of the candidate and of both baselines on the holdout games."""
    return {
        "candidate": score(split.y_holdout, p_candidate).as_dict(),
        "always_home": score(split.y_holdout, always_home(split.y_train, len(split.y_holdout))).as_dict(),
        "elo": score(split.y_holdout, elo_baseline(split.X_holdout, split.names)).as_dict(),
    }


def inference_latency_ms(
    predict_one: Callable[[list[float]], float], rows: Sequence[list[float]], repeat: int = 2000
) -> dict[str, float]:
    """Single-row inference p50/p99 in milliseconds, as the predict function evaluates a bundle."""
    samples = []
    for i in range(repeat):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        predict_one(row)
        samples.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(samples, 0.5), 4), "p99_ms": round(percentile(samples, 0.99), 4)}
