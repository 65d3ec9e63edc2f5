"""How good home-win probabilities were, once the games ended: the one place every score is computed.

The training gates, the drift check and its report, the season replay and the benchmarks all score here,
so the same games give the same number everywhere. Standard library only: the drift_check function ships
no numpy, and numpy arrays are accepted wherever a sequence is.

Conventions, each stated once:
- ``y`` is whether the home team won (bools or 0/1), ``p`` the home-win probability; (y, p) in that order
  as scikit-learn orders them. Any other label, or a probability outside [0, 1], is a ValueError.
- A prediction picks the home team when p >= 0.5 (accuracy, and the ``correct`` of the prediction log).
- Log-loss clips p into [``CLIP``, 1 - ``CLIP``]: a model that says 0 or 1 and is wrong costs
  -ln(1e-7) = 16.1, not infinity. 1e-7 is about float32's resolution near 1, and XGBoost's probabilities
  are float32, so nothing finer is information. Only log-loss clips; Brier and ECE use p as given.
- Calibration bins are ``ECE_BINS`` equal-width bins with edges at i * (1 / bins), closed on the right:
  bin b holds edges[b] < p <= edges[b + 1], and bin 0 also holds p = 0. It is scikit-learn's
  ``calibration_curve(strategy="uniform")`` rule, so its reliability curve is ours. ECE is the
  games-weighted mean of |mean p - win rate| over the bins that hold games.
- Scores are rounded to ``DIGITS`` places only when written out (``Scores.as_dict``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nbaml.features import elo_probability

CLIP = 1e-7
ECE_BINS = 10
DIGITS = 6
PICK_HOME_AT = 0.5


@dataclass(frozen=True)
class Scores:
    """Every score of one set of games; ``calibration`` is the reliability curve (non-empty bins only)."""

    n: int
    log_loss: float
    accuracy: float
    brier: float
    ece: float
    roc_auc: float  # nan when every game had the same winner side: AUC is undefined then
    calibration: list[dict[str, float]]

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, DIGITS),
            "roc_auc": round(self.roc_auc, DIGITS),
            "brier": round(self.brier, DIGITS),
            "log_loss": round(self.log_loss, DIGITS),
            "ece": round(self.ece, DIGITS),
            "calibration": self.calibration,
        }


# ---------------------------------------------------------------- one game
def picks_home(p: float) -> bool:
    return p >= PICK_HOME_AT


def game_log_loss(y: bool | int, p: float) -> float:
    """The log-loss of one game (p clipped into [CLIP, 1 - CLIP])."""
    q = min(max(float(p), CLIP), 1 - CLIP)
    return -math.log(q if y else 1 - q)


def expected_log_loss(p: float) -> float:
    """The log-loss a calibrated forecaster expects on a game it gives ``p``, outcome unseen: its entropy."""
    q = min(max(float(p), CLIP), 1 - CLIP)
    return -(q * math.log(q) + (1 - q) * math.log(1 - q))


# ---------------------------------------------------------------- many games
def log_loss(y: Iterable[bool | int], p: Iterable[float]) -> float:
    labels, probabilities = _checked(y, p)
    return math.fsum(game_log_loss(t, q) for t, q in zip(labels, probabilities, strict=True)) / len(labels)


def accuracy(y: Iterable[bool | int], p: Iterable[float]) -> float:
    labels, probabilities = _checked(y, p)
    return sum(picks_home(q) == bool(t) for t, q in zip(labels, probabilities, strict=True)) / len(labels)


def brier(y: Iterable[bool | int], p: Iterable[float]) -> float:
    labels, probabilities = _checked(y, p)
    return math.fsum((q - t) ** 2 for t, q in zip(labels, probabilities, strict=True)) / len(labels)


def roc_auc(y: Iterable[bool | int], p: Iterable[float]) -> float:
    """The probability that a random home win got a higher p than a random home loss (ties count half)."""
    labels, probabilities = _checked(y, p)
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return math.nan
    rank_sum = math.fsum(r for r, t in zip(_average_ranks(probabilities), labels, strict=True) if t)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def calibration(
    y: Iterable[bool | int], p: Iterable[float], bins: int = ECE_BINS
) -> tuple[float, list[dict[str, float]]]:
    """ECE and the reliability curve: per non-empty bin, its edges, games, mean p and home-win rate."""
    labels, probabilities = _checked(y, p)
    interior = _interior_edges(bins)
    counts, p_sums, wins = [0] * bins, [0.0] * bins, [0] * bins
    for t, q in zip(labels, probabilities, strict=True):
        b = bisect.bisect_left(interior, q)  # the right-closed rule of the module docstring
        counts[b] += 1
        p_sums[b] += q
        wins[b] += t
    edges = [0.0, *interior, 1.0]
    ece = 0.0
    curve: list[dict[str, float]] = []
    for b in range(bins):
        if not counts[b]:
            continue
        mean_p, rate = p_sums[b] / counts[b], wins[b] / counts[b]
        ece += counts[b] / len(labels) * abs(mean_p - rate)
        curve.append(
            {
                "bin": b,
                "lower": edges[b],
                "upper": edges[b + 1],
                "n": counts[b],
                "mean_probability": round(mean_p, DIGITS),
                "win_rate": round(rate, DIGITS),
            }
        )
    return ece, curve


def ece_noise(curve: Sequence[dict[str, float]]) -> float:
    """The ECE a perfectly calibrated model shows on these bins from sampling alone.

    In a bin of n games with true rate p, the observed rate is off by sqrt(2/pi) * sqrt(p(1-p)/n) on
    average; weighted over the bins it is the floor ECE cannot go below on this many games (about 0.045
    on 370 games, 0.018 on 2,460). The training gate asks for ``max_ece`` beyond that noise, and the drift
    report prints it beside the live ECE. ``curve`` is ``calibration``'s.
    """
    total = sum(b["n"] for b in curve)
    if not total:
        return 0.0
    noise = 0.0
    for b in curve:
        p = min(max(b["mean_probability"], 1e-6), 1 - 1e-6)
        noise += b["n"] / total * math.sqrt(2 / math.pi) * math.sqrt(p * (1 - p) / b["n"])
    return noise


def score(y: Iterable[bool | int], p: Iterable[float]) -> Scores:
    """Every score at once, each computed exactly as its own function computes it."""
    labels, probabilities = _checked(y, p)
    ece, curve = calibration(labels, probabilities)
    return Scores(
        n=len(labels),
        log_loss=log_loss(labels, probabilities),
        accuracy=accuracy(labels, probabilities),
        brier=brier(labels, probabilities),
        ece=ece,
        roc_auc=roc_auc(labels, probabilities),
        calibration=curve,
    )


# ---------------------------------------------------------------- baselines a model must beat
def home_win_rate(outcomes: Iterable[bool | int]) -> float:
    """Share of home wins: the always-home baseline's probability, from the games a model learned from."""
    labels = [_label(t) for t in outcomes]
    if not labels:
        raise ValueError("no games to take a home-win rate from")
    return sum(labels) / len(labels)


def always_home(train_outcomes: Iterable[bool | int], n: int) -> list[float]:
    """Always the home team, at the training games' home-win rate, for ``n`` games."""
    return [home_win_rate(train_outcomes)] * n


def elo_baseline(rows: Iterable[Sequence[float]], names: Sequence[str]) -> list[float]:
    """Elo alone (home advantage included) for feature rows laid out as ``names``."""
    column = list(names).index("elo_diff")
    return [elo_probability(float(row[column])) for row in rows]


# ---------------------------------------------------------------- latency
def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (the value below which a share ``q`` of the values fall); nan if none."""
    if not len(values):
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- input checks
def _label(t: object) -> int:
    if t in (0, 1):  # True/False, 0/1 and numpy's integer and bool scalars compare equal to these
        return int(t)  # type: ignore[call-overload]
    raise ValueError(f"outcome {t!r} is not a home win (1/True) or loss (0/False)")


def _checked(y: Iterable[bool | int], p: Iterable[float]) -> tuple[list[int], list[float]]:
    labels = [_label(t) for t in y]
    probabilities = [float(q) for q in p]
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} outcomes but {len(probabilities)} probabilities")
    if not labels:
        raise ValueError("no games to score")
    bad = next((q for q in probabilities if not 0.0 <= q <= 1.0), None)  # nan fails this too
    if bad is not None:
        raise ValueError(f"probability {bad!r} is outside [0, 1]")
    return labels, probabilities


def _interior_edges(bins: int) -> list[float]:
    if bins < 1:
        raise ValueError(f"calibration needs at least one bin, not {bins}")
    width = 1.0 / bins
    return [i * width for i in range(1, bins)]


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks
