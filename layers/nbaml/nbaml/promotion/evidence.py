"""The canary's statistics: champion and canary on the same resolved games, judged by a confidence sequence.

Each resolved game both roles scored gives one paired difference, ``d = log-loss(canary) - log-loss(champion)``
(``nbaml.metrics.game_log_loss``, so the same clipping as every other score): positive when the canary did
worse on that game. Pairing removes the game's own difficulty, which is most of the variance of either
log-loss alone.

The test is an always-valid confidence sequence for the mean difference ``mu``: Robbins' normal mixture,
with the standard deviation plugged in from the data (the asymptotic confidence sequence of Waudby-Smith,
Arbour, Sinha, Kennedy and Ramdas, 2021). Its bounds hold at every sample size at once, so looking at them
every week, for as many weeks as a canary runs, does not inflate the error rates:

- **advance** when the upper bound at ``alpha_promote`` is below the non-inferiority ``margin``: the canary
  is not worse by the margin or more. If it is (``mu >= margin``), the chance it is ever advanced is at most
  ``alpha_promote``, over every check of its life (the costly error, so the smaller number);
- **abort** when the lower bound at ``alpha_abort`` is above 0: the canary is worse than the champion. If it
  is not (``mu <= 0``), the chance it is ever aborted is at most ``alpha_abort``;
- **hold** otherwise, and before ``min_games`` pairs (the plug-in deviation needs that many);
- **futile** when ``max_games`` pairs have not shown it non-inferior: a canary has that many games to prove
  itself, then it is aborted too (``nbaml.promotion.canary``). This is what removes a worse model quickly:
  on real seasons the champion's whole edge over always-home is about 0.01-0.02 log-loss per game while
  the paired differences of two unlike models spread by 0.17-0.31, so proving harm takes thousands of
  games, whereas a real retrain (spread about 0.015) proves non-inferiority in 50. The price is that an
  equal model whose predictions differ a lot from the champion's is aborted too: no harm either way.

With the deviation known the bounds are exact for Gaussian or sub-Gaussian differences; with it estimated
they hold asymptotically, and ``tests/unit/test_canary.py`` measures the rates by simulation on heavy-tailed
differences too. Everything here is a pure function of numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from nbaml.metrics import DIGITS, game_log_loss

Decision = Literal["advance", "hold", "abort", "futile"]


@dataclass(frozen=True)
class SequentialTest:
    """The canary rule's numbers (template: CANARY_MARGIN, CANARY_ALPHA_PROMOTE, ...)."""

    margin: float = 0.01  # log-loss per game the canary may be worse by and still advance
    alpha_promote: float = 0.01  # P(ever advanced | worse by the margin or more)
    alpha_abort: float = 0.05  # P(ever aborted | no worse than the champion)
    min_games: int = 50  # pairs before any decision (and before each later step)
    max_games: int = 100  # pairs a canary has to show non-inferiority (about two weeks of a season)
    planned_games: int = 100  # the mixture is tightest here
    sd_floor: float = 0.005  # two near-identical models must not look certain after a handful of games

    def __post_init__(self) -> None:
        if not (0 < self.alpha_promote < 1 and 0 < self.alpha_abort < 1):
            raise ValueError("the canary's alphas must be in (0, 1)")
        if self.margin <= 0 or self.sd_floor <= 0:
            raise ValueError("the canary's margin and deviation floor must be positive")
        if not 2 <= self.min_games <= self.max_games or self.planned_games < 1:
            raise ValueError("the canary needs 2 <= min_games <= max_games and planned_games >= 1")


@dataclass(frozen=True)
class Evidence:
    """One look at the pairs: the estimate, both bounds, and what the rule makes of them."""

    n: int
    mean: float | None
    sd: float | None
    lower: float | None  # the abort side: canary worse than the champion when above 0
    upper: float | None  # the advance side: canary not worse by the margin when below it
    margin: float
    decision: Decision
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.mean is None:
            return f"n={self.n}: {self.reason}"
        return (
            f"n={self.n} mean d={self.mean:+.4f} (canary - champion log-loss per game), "
            f"bounds [{self.lower:+.4f}, {self.upper:+.4f}], margin {self.margin}: {self.reason}"
        )


def paired_differences(pairs: Iterable[tuple[bool, float, float]]) -> list[float]:
    """``(home_won, champion p, canary p)`` per game -> canary minus champion log-loss, game by game."""
    return [game_log_loss(y, p_canary) - game_log_loss(y, p_champion) for y, p_champion, p_canary in pairs]


def mixture_rho2(alpha: float, planned: int) -> float:
    """The mixture's variance that makes the boundary tightest at ``planned`` samples (Howard et al. 2021)."""
    two_log = -2 * math.log(alpha)
    return (two_log + math.log(two_log + 1)) / planned


def half_width(n: int, sd: float, alpha: float, planned: int) -> float:
    """Radius of the two-sided normal-mixture confidence sequence for a mean after ``n`` samples.

    From Ville's inequality on the mixture martingale: with probability at least 1 - alpha, for every n,
    ``|sum(d - mu)| <= sd * sqrt((n + 1/rho2) * (2 log(1/alpha) + log(1 + n rho2)))``.
    """
    rho2 = mixture_rho2(alpha, planned)
    return sd * math.sqrt((n + 1 / rho2) * (2 * math.log(1 / alpha) + math.log1p(n * rho2))) / n


def decide(differences: Sequence[float], test: SequentialTest) -> Evidence:
    """What the pairs so far say: advance, hold or abort (see the module's docstring for the rule)."""
    n = len(differences)
    if n < 2:
        return Evidence(n, None, None, None, None, test.margin, "hold", f"fewer than {test.min_games} paired games")
    mean = math.fsum(differences) / n
    sd = max(math.sqrt(math.fsum((d - mean) ** 2 for d in differences) / (n - 1)), test.sd_floor)
    lower = mean - half_width(n, sd, test.alpha_abort, test.planned_games)
    upper = mean + half_width(n, sd, test.alpha_promote, test.planned_games)
    decision: Decision
    if n < test.min_games:
        decision, reason = "hold", f"fewer than {test.min_games} paired games"
    elif lower > 0:
        decision, reason = "abort", f"worse than the champion (lower bound {lower:+.4f} > 0)"
    elif upper < test.margin:
        decision, reason = "advance", f"not worse by the margin (upper bound {upper:+.4f} < {test.margin})"
    elif n >= test.max_games:
        decision, reason = "futile", f"not shown non-inferior in {test.max_games} paired games"
    else:
        decision, reason = "hold", "not enough evidence either way"
    return Evidence(
        n=n,
        mean=round(mean, DIGITS),
        sd=round(sd, DIGITS),
        lower=round(lower, DIGITS),
        upper=round(upper, DIGITS),
        margin=test.margin,
        decision=decision,
        reason=reason,
    )
