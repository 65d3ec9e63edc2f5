"""Whether a candidate may serve: against the champion, the recent champions and two baselines on the same
games, then the floors. A candidate that cannot be compared is held for an operator, never waved through.

Relative rules come first, each on games the other model never trained on:
- the champion: the candidate's log-loss may exceed the champion's by at most ``logloss_tolerance``;
- the recent champions (the versions that served before it, up to ``RECENT_VERSIONS``): the same bound
  against each, so tolerances cannot pile up over successive promotions (five promotions each 0.005
  worse would otherwise drift 0.025 from the best model);
- the baselines on the same holdout rows: the candidate must beat always-home and Elo on log-loss. Floors
  alone once let through candidates at 0.667-0.669 on holdouts where Elo reached 0.649-0.653.
A comparison that cannot be made is never dropped silently: no readable champion, a champion using a
feature the current code does not compute, or fewer than ``MIN_COMPARISON_GAMES`` games it never trained on
holds the candidate (the registry keeps it a candidate, with the reason, for an operator to promote or
not); only the very first model, with no champion at all, is judged on baselines and floors alone. A recent
champion that cannot be compared is noted in the checks, and the champion rule still applies.

Then the floors of the seed's checklist, with defaults set from what pre-game information achieves on real
NBA games (README, "Gates"): accuracy, ROC-AUC, calibration (ECE beyond its sampling noise) and single-row
inference p99.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbaml.metrics import ece_noise

MIN_COMPARISON_GAMES = 100  # fewer unseen games than this and a comparison is too noisy to decide
RECENT_VERSIONS = 3  # earlier champions the candidate is also held to


@dataclass(frozen=True)
class Gates:
    min_accuracy: float = 0.60
    min_roc_auc: float = 0.62
    max_ece: float = 0.05
    max_p99_ms: float = 500.0
    logloss_tolerance: float = 0.005


@dataclass(frozen=True)
class Comparison:
    """The candidate against another model on the holdout games that model never trained on.

    ``candidate`` and ``other`` are ``Scores.as_dict()`` on those games; ``unavailable`` says why there are
    none (unreadable bundle, unknown feature, too few unseen games).
    """

    version: str
    n: int = 0
    candidate: Mapping[str, Any] | None = None
    other: Mapping[str, Any] | None = None
    unavailable: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "n": self.n}
        if self.unavailable:
            out["unavailable"] = self.unavailable
        else:
            out |= {"candidate": dict(self.candidate or {}), "champion": dict(self.other or {})}
        return out


@dataclass
class Verdict:
    passed: bool = True
    held: bool = False  # could not be judged: kept a candidate for an operator (``passed`` is then False)
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, float | bool | str]] = field(default_factory=dict)

    def check(self, name: str, ok: bool, value: float, limit: float, rule: str) -> None:
        self.checks[name] = {"ok": ok, "value": round(value, 6), "limit": round(limit, 6), "rule": rule}
        if not ok:
            self.passed = False
            self.reasons.append(f"{name} {value:.4f} fails {rule} {limit:.4f}")

    def hold(self, name: str, why: str) -> None:
        self.checks[name] = {"ok": False, "held": True, "rule": why}
        self.passed, self.held = False, True
        self.reasons.append(f"held for an operator: {why}")

    def note(self, name: str, why: str) -> None:
        self.checks[name] = {"ok": True, "skipped": why}

    @property
    def outcome(self) -> str:
        """passed; rejected (a rule failed); or held (nothing failed, but a comparison could not be made)."""
        if self.passed:
            return "passed"
        failed = [c for c in self.checks.values() if not c.get("ok") and not c.get("held")]
        return "rejected" if failed else "held"


def judge(
    candidate: Mapping[str, Any],
    gates: Gates,
    latency: Mapping[str, float],
    *,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    champion: Comparison | None = None,
    recent: Sequence[Comparison] = (),
) -> Verdict:
    """The verdict on ``candidate`` (``Scores.as_dict()`` on its holdout).

    ``baselines`` maps a baseline's name (always_home, elo) to its scores on the same holdout rows;
    ``champion`` is None only when no model has ever served.
    """
    verdict = Verdict()
    if champion is not None:
        _relative(verdict, "log_loss_vs_champion", champion, gates, hold_if_unavailable=True)
    for earlier in recent:
        _relative(verdict, f"log_loss_vs_{earlier.version}", earlier, gates, hold_if_unavailable=False)
    for name, scores in (baselines or {}).items():
        limit = float(scores["log_loss"])
        verdict.check(f"log_loss_vs_{name}", candidate["log_loss"] < limit, candidate["log_loss"], limit, "<")
    verdict.check(
        "accuracy", candidate["accuracy"] >= gates.min_accuracy, candidate["accuracy"], gates.min_accuracy, ">="
    )
    verdict.check("roc_auc", candidate["roc_auc"] >= gates.min_roc_auc, candidate["roc_auc"], gates.min_roc_auc, ">=")
    ece_limit = gates.max_ece + ece_noise(candidate.get("calibration", []))
    verdict.check("ece", candidate["ece"] <= ece_limit, candidate["ece"], ece_limit, "<= max_ece + sampling noise")
    verdict.check("inference_p99_ms", latency["p99_ms"] <= gates.max_p99_ms, latency["p99_ms"], gates.max_p99_ms, "<=")
    return verdict


def _relative(verdict: Verdict, name: str, comparison: Comparison, gates: Gates, *, hold_if_unavailable: bool) -> None:
    if comparison.unavailable or comparison.candidate is None or comparison.other is None:
        why = f"no comparison with {comparison.version}: {comparison.unavailable or 'no scores'}"
        verdict.hold(name, why) if hold_if_unavailable else verdict.note(name, why)
        return
    value = float(comparison.candidate["log_loss"])
    limit = float(comparison.other["log_loss"]) + gates.logloss_tolerance
    verdict.check(name, value <= limit, value, limit, f"<= {comparison.version} on its {comparison.n} unseen games +")
