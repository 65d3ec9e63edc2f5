"""How good a model is on the holdout: the seed's metrics plus calibration, latency and two baselines.

Baselines, on the same games: always the home team (its probability is the training set's home win
rate), and Elo alone (FiveThirtyEight style, from the state's ratings). A model that cannot beat Elo on
log-loss has not earned its complexity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from nbaml.features import elo_probability

ECE_BINS = 10


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float
    roc_auc: float
    brier: float
    log_loss: float
    ece: float
    calibration: list[dict[str, float]]

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 6),
            "roc_auc": round(self.roc_auc, 6),
            "brier": round(self.brier, 6),
            "log_loss": round(self.log_loss, 6),
            "ece": round(self.ece, 6),
            "calibration": self.calibration,
        }


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error over equal-width bins, and the reliability curve (mean p vs win rate)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    ece = 0.0
    curve: list[dict[str, float]] = []
    for b in range(bins):
        mask = which == b
        count = int(mask.sum())
        if not count:
            continue
        mean_p, rate = float(p[mask].mean()), float(y[mask].mean())
        ece += count / len(p) * abs(mean_p - rate)
        curve.append(
            {
                "bin": b,
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "n": count,
                "mean_probability": round(mean_p, 6),
                "win_rate": round(rate, 6),
            }
        )
    return float(ece), curve


def score(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> Scores:
    y_arr = np.asarray(y, dtype=np.int64)
    p_arr = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    ece, curve = calibration_bins(y_arr, p_arr)
    auc = float(roc_auc_score(y_arr, p_arr)) if len(set(y_arr.tolist())) > 1 else float("nan")
    return Scores(
        n=len(y_arr),
        accuracy=float(accuracy_score(y_arr, p_arr >= 0.5)),
        roc_auc=auc,
        brier=float(brier_score_loss(y_arr, p_arr)),
        log_loss=float(log_loss(y_arr, p_arr, labels=[0, 1])),
        ece=ece,
        calibration=curve,
    )


def home_baseline(y_train: np.ndarray, n: int) -> np.ndarray:
    """Always the home team, at the training set's home win rate."""
    return np.full(n, float(np.mean(y_train)))


def elo_baseline(rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    column = list(names).index("elo_diff")
    return np.asarray([elo_probability(float(d)) for d in rows[:, column]])


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
    samples.sort()
    return {"p50_ms": round(samples[len(samples) // 2], 4), "p99_ms": round(samples[int(len(samples) * 0.99)], 4)}
