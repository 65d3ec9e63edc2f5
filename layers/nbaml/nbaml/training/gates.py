"""Whether a candidate may serve: first against the champion on the same games, then the floors.

The primary rule is relative: the candidate's holdout log-loss must not be worse than the champion's
on the same games by more than a tolerance. Then the floors of the seed's checklist, with defaults set
from what pre-game information achieves on real NBA games (README, "Gates"): accuracy, ROC-AUC,
calibration (ECE) and single-row inference p99.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.60
    min_roc_auc: float = 0.62
    max_ece: float = 0.05
    max_p99_ms: float = 500.0
    logloss_tolerance: float = 0.005


@dataclass
class Verdict:
    passed: bool = True
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, float | bool | str]] = field(default_factory=dict)

    def check(self, name: str, ok: bool, value: float, limit: float, rule: str) -> None:
        self.checks[name] = {"ok": ok, "value": round(value, 6), "limit": round(limit, 6), "rule": rule}
        if not ok:
            self.passed = False
            self.reasons.append(f"{name} {value:.4f} fails {rule} {limit:.4f}")


def ece_noise(curve: Sequence[dict[str, float]]) -> float:
    """The ECE a perfectly calibrated model shows on these bins from sampling alone.

    In a bin of n games with true rate p, the observed rate is off by sqrt(2/pi) * sqrt(p(1-p)/n) on
    average; weighted over the bins it is the floor ECE cannot go below on this many games (about 0.045
    on 370 games, 0.018 on 2,460). The calibration gate asks for ``max_ece`` beyond that noise.
    """
    total = sum(b["n"] for b in curve)
    if not total:
        return 0.0
    noise = 0.0
    for b in curve:
        p = min(max(b["mean_probability"], 1e-6), 1 - 1e-6)
        noise += b["n"] / total * math.sqrt(2 / math.pi) * math.sqrt(p * (1 - p) / b["n"])
    return noise


def judge(candidate: dict, champion: dict | None, gates: Gates, latency: dict[str, float]) -> Verdict:
    """``candidate`` and ``champion`` are Scores.as_dict() on the same holdout games (champion None if none)."""
    verdict = Verdict()
    if champion is not None:
        limit = champion["log_loss"] + gates.logloss_tolerance
        verdict.check("log_loss_vs_champion", candidate["log_loss"] <= limit, candidate["log_loss"], limit, "<=")
    verdict.check(
        "accuracy", candidate["accuracy"] >= gates.min_accuracy, candidate["accuracy"], gates.min_accuracy, ">="
    )
    verdict.check("roc_auc", candidate["roc_auc"] >= gates.min_roc_auc, candidate["roc_auc"], gates.min_roc_auc, ">=")
    ece_limit = gates.max_ece + ece_noise(candidate.get("calibration", []))
    verdict.check("ece", candidate["ece"] <= ece_limit, candidate["ece"], ece_limit, "<= max_ece + sampling noise")
    verdict.check("inference_p99_ms", latency["p99_ms"] <= gates.max_p99_ms, latency["p99_ms"], gates.max_p99_ms, "<=")
    return verdict
