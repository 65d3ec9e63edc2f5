"""Drift rules over a champion's resolved predictions. Pure functions, so the replay and tests can count
how often each fires when nothing changed.

- ``seed_rule``: the seed's check, baseline accuracy minus the accuracy of the last 50 predictions above
  0.05. On 50 games the standard error of an accuracy near 0.65 is about 0.067, so a drop of 0.05 is
  inside the noise: on a replay of real seasons where nothing changed it fires often.
- ``cusum_rule`` (the default, DRIFT_RULE=sequential): Page's CUSUM on per-game log-loss against the
  model's own holdout log-loss. It accumulates evidence over every resolved prediction of the version
  and fires only when log-loss has stayed above baseline + allowance long enough to pass the threshold.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from nbaml.metrics import game_log_loss, log_loss

# Tuned on real seasons with no change (bench/bench_drift_rules.py): allowance and threshold in log-loss units.
CUSUM_ALLOWANCE = 0.03
CUSUM_THRESHOLD = 4.0


@dataclass(frozen=True)
class RuleResult:
    rule: str
    fired: bool
    n: int
    statistic: float
    limit: float
    detail: str


def seed_rule(
    correct: Sequence[bool], baseline_accuracy: float, threshold: float = 0.05, window: int = 50
) -> RuleResult:
    """The seed's rule on the newest ``window`` predictions (``correct`` newest last)."""
    recent = list(correct)[-window:]
    if len(recent) < window:
        return RuleResult(
            "seed", False, len(recent), float("nan"), threshold, f"only {len(recent)} of {window} resolved"
        )
    accuracy = sum(recent) / len(recent)
    drop = baseline_accuracy - accuracy
    return RuleResult(
        "seed",
        drop > threshold,
        len(recent),
        drop,
        threshold,
        f"accuracy {accuracy:.3f} on the last {window} vs baseline {baseline_accuracy:.3f}",
    )


def cusum_rule(
    outcomes: Sequence[tuple[float, bool]],
    baseline_log_loss: float,
    allowance: float = CUSUM_ALLOWANCE,
    threshold: float = CUSUM_THRESHOLD,
    min_games: int = 50,
) -> RuleResult:
    """Page's CUSUM of (game log-loss - baseline - allowance) over (probability, home_won), oldest first."""
    statistic, peak = 0.0, 0.0
    for probability, home_won in outcomes:
        statistic = max(0.0, statistic + game_log_loss(home_won, probability) - baseline_log_loss - allowance)
        peak = max(peak, statistic)
    n = len(outcomes)
    if n < min_games:
        return RuleResult("sequential", False, n, statistic, threshold, f"only {n} of {min_games} resolved")
    mean = log_loss([w for _, w in outcomes], [p for p, _ in outcomes])
    return RuleResult(
        "sequential",
        statistic > threshold,
        n,
        statistic,
        threshold,
        f"log-loss {mean:.4f} over {n} games vs baseline {baseline_log_loss:.4f}; "
        f"CUSUM {statistic:.2f} (peak {peak:.2f})",
    )


def psi(expected_shares: Sequence[float], edges: Sequence[float], values: Sequence[float]) -> float:
    """Population stability index of ``values`` against the training shares over the same bins."""
    if not values:
        return 0.0
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_right(edges, v)] += 1  # as the training shares were counted (searchsorted right)
    total = len(values)
    value = 0.0
    for expected, count in zip(expected_shares, counts, strict=True):
        e = max(expected, 1e-4)
        a = max(count / total, 1e-4)
        value += (a - e) * math.log(a / e)
    return value
