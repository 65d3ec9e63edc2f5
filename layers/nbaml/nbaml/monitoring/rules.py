"""Drift rules over a champion's resolved predictions. Pure functions, so the replay, the benchmark and the
tests can count how often each fires when nothing changed.

- ``seed_rule`` (DRIFT_RULE=seed): the seed's check, baseline accuracy minus the accuracy of the last 50
  predictions above 0.05. On 50 games the standard error of an accuracy near 0.65 is about 0.067, so a
  drop of 0.05 is inside the noise: on real seasons where nothing changed it fires often.
- ``sequential_rule`` (the default, DRIFT_RULE=sequential): two one-sided CUSUMs that need no reference
  from other games, so an easy or a hard season does not move them:

  * *surprise*: observed minus expected log-loss per game. A calibrated model that gives ``p`` expects
    ``-p ln p - (1-p) ln(1-p)`` (``metrics.expected_log_loss``) whatever the season; when the outcomes
    run against its probabilities more than that, the model is over-confident or wrong.
  * *sharpness*: the model's expected log-loss per game against its mean over the previous
    ``SHARPNESS_REFERENCE_GAMES`` games of the same version. A broken feed or a broken model first makes
    the model unsure (its probabilities fall toward the home-win rate), and a calibrated model that turns
    unsure is not surprised by outcomes, so the surprise arm alone misses it (measured:
    bench/bench_drift_rules.py). This arm uses no outcomes, so it has little noise; it is one-sided
    upward because the model grows sharper as a season goes on (season-to-date features firm up).

  Either arm over its limit fires. The caller restarts the evidence after a firing (``start``: the games
  after the one that fired), so a retrain that is rejected, or held as a canary or shadow, leaves the
  champion with a fresh statistic rather than one stuck over its limit, which would queue a retrain every
  week. The sharpness reference keeps reading the games before ``start``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbaml.games.records import Game, Stage
from nbaml.metrics import expected_log_loss, game_log_loss

# Chosen by bench/bench_drift_rules.py --tune on the seasons up to 2018 (the README has its table):
# allowances and thresholds in log-loss units (nats per game).
SURPRISE_ALLOWANCE = 0.0
SURPRISE_THRESHOLD = 12.5
SHARPNESS_ALLOWANCE = 0.005
SHARPNESS_THRESHOLD = 2.5
SHARPNESS_REFERENCE_GAMES = 500  # about ten weeks of the league's games
MIN_GAMES = 50  # games since the restart before the rule may fire
PSI_DAYS = 28  # feature drift: the last four weeks of requests against the four weeks before them
MIN_PSI_ROWS = 100  # below this many requests in a window, PSI is noise (most of its ten bins would be empty)
NORMAL_QUANTILE = 1.0  # a feature's alarm level: the highest PSI this check reached on the training weeks
# The feed's results: the mean home margin of the last week's games against the training window's, in
# standard errors. A season's mean home margin stayed within +0.9 (2020-21, empty arenas) to +3.2 points on
# 2009-2022 while scoring levels moved more, so the check reads the margin, not the points, and fires only far
# outside the seasons' spread (bench/bench_feature_drift.py). The week is the one drift_check's coverage reads.
RESULTS_DAYS = 7
MIN_RESULTS_GAMES = 30
RESULTS_Z = 4.0


@dataclass(frozen=True)
class RuleResult:
    rule: str
    fired: bool
    n: int
    statistic: float
    limit: float
    detail: str
    arms: list[dict[str, Any]] = field(default_factory=list)


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


@dataclass(frozen=True)
class SequentialConstants:
    surprise_allowance: float = SURPRISE_ALLOWANCE
    surprise_threshold: float = SURPRISE_THRESHOLD
    sharpness_allowance: float = SHARPNESS_ALLOWANCE
    sharpness_threshold: float = SHARPNESS_THRESHOLD
    reference_games: int = SHARPNESS_REFERENCE_GAMES
    min_games: int = MIN_GAMES


def sequential_statistics(
    outcomes: Sequence[tuple[float, bool]], start: int = 0, constants: SequentialConstants | None = None
) -> tuple[float, float]:
    """The two CUSUMs (surprise, sharpness) over ``outcomes[start:]`` ((probability, home_won), oldest first)."""
    c = constants or SequentialConstants()
    expected = [expected_log_loss(p) for p, _ in outcomes]
    running = [0.0]
    for value in expected:
        running.append(running[-1] + value)
    surprise = sharpness = 0.0
    for i in range(start, len(outcomes)):
        p, home_won = outcomes[i]
        surprise = max(0.0, surprise + game_log_loss(home_won, p) - expected[i] - c.surprise_allowance)
        first = max(0, i - c.reference_games)
        reference = (running[i] - running[first]) / (i - first) if i > first else expected[i]
        sharpness = max(0.0, sharpness + expected[i] - reference - c.sharpness_allowance)
    return surprise, sharpness


def sequential_rule(
    outcomes: Sequence[tuple[float, bool]], start: int = 0, constants: SequentialConstants | None = None
) -> RuleResult:
    """The default rule on a version's resolved games; evidence counted from ``start`` (module docstring)."""
    c = constants or SequentialConstants()
    surprise, sharpness = sequential_statistics(outcomes, start, c)
    n = len(outcomes) - start
    arms = [
        {"arm": "surprise", "statistic": round(surprise, 4), "limit": c.surprise_threshold},
        {"arm": "sharpness", "statistic": round(sharpness, 4), "limit": c.sharpness_threshold},
    ]
    for arm in arms:
        arm["fired"] = n >= c.min_games and arm["statistic"] > arm["limit"]
    # One number for the report and the metric: how far the nearer arm is toward its limit (1.0 = at it).
    statistic = max(surprise / c.surprise_threshold, sharpness / c.sharpness_threshold)
    if n < c.min_games:
        detail = f"only {n} of {c.min_games} games resolved since the evidence (re)started"
    else:
        observed = sum(game_log_loss(w, p) for p, w in outcomes[start:]) / n
        expected = sum(expected_log_loss(p) for p, _ in outcomes[start:]) / n
        detail = (
            f"log-loss {observed:.4f} observed vs {expected:.4f} expected over {n} games; CUSUM surprise "
            f"{surprise:.2f} of {c.surprise_threshold}, sharpness {sharpness:.2f} of {c.sharpness_threshold}"
        )
    return RuleResult("sequential", any(a["fired"] for a in arms), n, round(statistic, 4), 1.0, detail, arms)


def feature_drift(
    rows: Sequence[Sequence[float]],
    before: Sequence[Sequence[float]],
    names: Sequence[str],
    distribution: Mapping[str, Any],
    alarm: float,
) -> dict[str, Any]:
    """PSI of each feature of ``rows`` (the window's requests) against a reference that means normal.

    The reference is the requests of the four weeks ``before`` the window: the same teams, the same league,
    the same time of season, binned on the training deciles. With fewer than ``MIN_PSI_ROWS`` requests in
    either window (the first weeks of a season or of a deployment) there is no verdict: the training
    distribution is no stand-in, its early seasons hold few head-to-head meetings and its league other
    teams. A feature's alarm level is ``alarm`` or, if higher, its ``normal`` level: the PSI this same
    check reaches on the training seasons' own weeks (``NORMAL_QUANTILE``). Team-level features (points,
    ratings, win share) take about 30 distinct values a window, one per team, so their PSI is large even
    when nothing changed; one threshold for every feature rings every week.
    """
    values: dict[str, float] = {}
    limits: dict[str, float] = {}
    judged = len(rows) >= MIN_PSI_ROWS and len(before) >= MIN_PSI_ROWS
    if judged:
        for j, name in enumerate(names):
            ref = distribution.get(name)
            if ref:
                expected = shares(ref["edges"], [r[j] for r in before])
                values[name] = round(psi(expected, ref["edges"], [r[j] for r in rows]), 4)
                limits[name] = round(max(alarm, float(ref.get("normal", 0.0))), 4)
    return {
        "n": len(rows),
        "n_before": len(before),
        "judged": judged,
        "values": values,
        "limits": limits,
        "alarm": sorted(name for name, v in values.items() if v > limits[name]),
    }


def shares(edges: Sequence[float], values: Sequence[float]) -> list[float]:
    """The share of ``values`` in each bin of ``edges`` (counted as the training shares were: searchsorted right)."""
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect.bisect_right(edges, v)] += 1
    return [c / len(values) for c in counts] if values else [0.0] * len(counts)


def psi(expected_shares: Sequence[float], edges: Sequence[float], values: Sequence[float]) -> float:
    """Population stability index of ``values`` against ``expected_shares`` over the same bins."""
    if not values:
        return 0.0
    value = 0.0
    for expected, actual in zip(expected_shares, shares(edges, values), strict=True):
        e = max(expected, 1e-4)
        a = max(actual, 1e-4)
        value += (a - e) * math.log(a / e)
    return value


def home_margins(games: Iterable[Game], *, until: dt.date | None = None) -> list[float]:
    """Home minus away score of the final regular-season games (up to ``until``): what the results check reads."""
    return [
        float(g.home_score - g.away_score)  # type: ignore[operator]  # a final game has both scores
        for g in games
        if g.is_final and g.stage is Stage.REGULAR and (until is None or g.game_date <= until)
    ]


def results_reference(margins: Sequence[float]) -> dict[str, float | int]:
    """What the league's results look like in the training window: the home margin's mean and spread."""
    n = len(margins)
    if n < 2:
        return {}
    mean = sum(margins) / n
    sd = math.sqrt(sum((m - mean) ** 2 for m in margins) / (n - 1))
    return {"home_margin_mean": round(mean, 4), "home_margin_sd": round(sd, 4), "games": n}


def results_drift(margins: Sequence[float], reference: Mapping[str, Any], z_alarm: float = RESULTS_Z) -> dict[str, Any]:
    """The feed's results of a window (``margins``: home minus away score per final game) against ``reference``.

    A feed that loses or scales one side's points (a unit or parsing bug, home and away read the wrong way
    round for many games) moves the mean home margin by many standard errors at once, while features made
    relative to the league absorb a league-wide change and PSI cannot see a mislabelled venue. A model cannot
    fix that by retraining on the same feed, so the alarm asks for a person (``FeedResultsDrift``), not a
    retrain. No verdict below ``MIN_RESULTS_GAMES`` games or without a reference (bundles trained before it).
    """
    n = len(margins)
    mean = sum(margins) / n if n else None
    expected, sd = reference.get("home_margin_mean"), reference.get("home_margin_sd")
    judged = n >= MIN_RESULTS_GAMES and expected is not None and bool(sd)
    z = (mean - float(expected)) / (float(sd) / math.sqrt(n)) if judged and mean is not None else None
    return {
        "n": n,
        "home_margin": None if mean is None else round(mean, 3),
        "expected": expected,
        "z": None if z is None else round(z, 2),
        "limit": z_alarm,
        "judged": judged,
        "alarm": z is not None and abs(z) > z_alarm,
    }
