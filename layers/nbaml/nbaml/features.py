"""The pre-game features of a game: one module, imported by training and by the predict Lambda alike.

Why one module: the classic way a served model goes wrong is features computed one way in training and
another way in serving. Here both read the same `LeagueState`, a small incremental record of every
team (running sums and fixed-size windows), so the daily update costs what the day's games cost and a
full rebuild of 14 seasons takes a fraction of a second. Pure standard library: the predict Lambda
stays lean (no numpy, no pandas).

Leak-free by construction: `LeagueState` only ever holds final games applied in date order, and
`build_features` computes every feature of a date before it applies any game of that date, so no
feature sees its own game nor another game played the same day.

Choices, and why (measured with XGBoost and a logistic regression trained on the seasons before the
validation ones, validated on 2017-2018 and on 2019-2020; the held-out seasons 2021-2022 chose nothing):

- **Scoring relative to the league** (`ppg`, `papg`). Points for and against per game are expressed as
  100 × the team's figure over the league's points per game to date in the same season (100 = average).
  NBA scoring rose from about 100 points a game around 2010 to about 115 in 2024: raw points of today
  never look like the training seasons', trees cannot extrapolate, and every team of a high-scoring
  season lands in the training data's top bins (and the feature-drift alarm never stops ringing). On the
  same scale, 2010 and 2025 are comparable; the model lost nothing on validation seasons by the change.
- **Ratings** (`ortg`, `drtg`). Our data has no possessions, so true offensive and defensive ratings
  (points per 100 possessions) cannot be computed. The proxy is opponent-adjusted: each game's points
  scored are divided by what the opponent allowed per game before that game's date (and points allowed
  by what the opponent scored per game), averaged over the season, ×100. About 100 is an average team;
  105 means the team scores 5 % more than its opponents usually allow. On validation it was level with
  the plain ratio to the league's points per game (within 0.001 log-loss, i.e. noise); it is kept
  because it carries the strength of schedule, which the plain ratio (a rescaled `ppg`) cannot.
- **Early season**. Season stats are shrunk toward a prior worth `_PRIOR_GAMES` (8) games:
  `(season_sum + k * prior) / (games + k)`. The prior is the team's previous-season figure regressed
  40 % of the way to the league mean (a team keeps part of its strength over the summer), or the league
  mean when the team has no previous season in the state. So the first game of a season carries last
  season's picture, not 0 % or 100 %.
- **Rest days**: days since the team's previous game, capped at `REST_CAP` (7); a team's first game of
  a season gets the cap. **last5_wins**: wins in the team's last five regular-season games, across the
  season boundary (the first games of a season see the end of the previous one, never a short window).
- **Head to head**: the two teams' last `_H2H_MEETINGS` (10, about three seasons) regular-season
  meetings, at either venue, from the home team's point of view; no meeting gives 0, 0, 0.0.
- **Elo** (`elo_diff` = home Elo minus away Elo): FiveThirtyEight's NBA Elo: K=20, home advantage 100,
  margin-of-victory multiplier `(mov + 3) ** 0.8 / (7.5 + 0.006 * winner_elo_edge)`, new teams at
  1505 and 3/4 carry-over toward 1505 between seasons. Zero-sum: the home gain is the away loss.
  K and the carry-over were near-best on validation; a home advantage of 70 makes the Elo-alone
  probability better calibrated (home advantage has declined), but it left the trained model unchanged
  (the model learns home advantage itself), so FiveThirtyEight's 100 stays. Elo was the one extra that
  earned its place: derived differences (net rating, margin, rest, win %) did not improve validation.
- **Margin rating** (`margin_rating_diff`): each team's strength in points, learned from point margins
  (capped at ±`MR_CAP`, so garbage time in a blowout teaches little) by a points Elo: the expected margin is
  home advantage + home rating − away rating, and after each game both ratings move by `MR_K` × the error
  (zero-sum), the league's home advantage by `MR_K_HOME` × the error. It is the online form of an
  exponentially weighted least-squares fit of margins (the two were level on validation, 0.6256 against
  0.6253 log-loss alone), at a constant cost per game. Between seasons a rating keeps `MR_CARRY` of its
  distance from average. The feature is the expected margin of the game. Alone it beats Elo (0.6256
  against 0.6307 on 2017-2020, a logistic fit on the seasons before); with the other features it earned
  its place in walk-forward on seasons before the test seasons (README, "Features", the ablation). The
  home advantage uses its value from before the day's games, so the order of a day's games never changes
  the state.
- **Playoffs**: training excludes playoff games (different dynamics), and the season aggregates,
  `last5_wins` and head-to-head describe the regular season only, so playoff games do not touch them.
  Playoff games do update Elo (as FiveThirtyEight's does: it is a strength rating) and the date of the
  team's last game (rest is physical). The shared history holds no playoff games, so training is the
  same either way.
- **Injuries**: we have no injury reports. `injury_impact` is a neutral 0.0, never invented, until a
  real source is plugged in through the `InjuryProvider` slot (`LeagueState(injuries=...)`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from nbaml.games.records import Game, Stage, season_of

_SIDE = ("win_pct", "ppg", "papg", "ortg", "drtg", "last5_wins", "rest_days", "injury_impact")
SEED_FEATURES: tuple[str, ...] = (
    *(f"home_{name}" for name in _SIDE),
    *(f"away_{name}" for name in _SIDE),
    "h2h_home_wins",
    "h2h_home_losses",
    "h2h_avg_margin",
)
EXTRA_FEATURES: tuple[str, ...] = ("elo_diff", "margin_rating_diff")
FEATURE_NAMES: tuple[str, ...] = SEED_FEATURES + EXTRA_FEATURES

STATE_FORMAT = 2
# The definitions of the features: bumped whenever one changes meaning (2: points relative to the league,
# the margin rating). A bundle records the version it was trained on; a bundle of another version is never
# served nor compared by this code, whose features would mean something else to it.
FEATURES_VERSION = 2
REST_CAP = 7
LAST_N = 5
ELO_START = 1505.0
ELO_K = 20.0
ELO_HOME = 100.0
ELO_CARRY = 0.75
# The margin rating, tuned on 2017-2020 with the seasons before (see the module docstring).
MR_K = 0.035
MR_K_HOME = 0.002
MR_CARRY = 0.6
MR_CAP = 20
MR_HOME_START = 3.0  # points of home advantage before any game is known

# Tuned on seasons before 2021 only (see the module docstring).
_PRIOR_GAMES = 8.0  # weight of the prior, in games, in the early-season blend
_PRIOR_KEEP = 0.6  # share of last season's distance from the league mean that a team keeps
_LEAGUE_PRIOR_GAMES = 60.0  # same blend for the league's points per game (team-games)
_DEFAULT_PPG = 100.0  # league points per game before any game is known
_H2H_MEETINGS = 10

# What each feature is: written beside its name in a bundle's features.txt.
FEATURE_DESCRIPTIONS: dict[str, str] = {
    **{
        f"{side}_{name}": f"{side} team: {text}"
        for side in ("home", "away")
        for name, text in {
            "win_pct": "win share this season, shrunk toward last season's early on",
            "ppg": "points scored per game, 100 x over the league's points per game to date this season",
            "papg": "points allowed per game, 100 x over the league's points per game to date this season",
            "ortg": "points scored over what its opponents usually allow, x 100 (opponent-adjusted)",
            "drtg": "points allowed over what its opponents usually score, x 100 (opponent-adjusted)",
            "last5_wins": "wins in its last five regular-season games",
            "rest_days": f"days since its previous game, capped at {REST_CAP}",
            "injury_impact": "injury impact score (0.0: no injury source is connected)",
        }.items()
    },
    "h2h_home_wins": "home team's wins in the pair's last meetings",
    "h2h_home_losses": "home team's losses in the pair's last meetings",
    "h2h_avg_margin": "home team's average margin in the pair's last meetings",
    "elo_diff": "home Elo minus away Elo (FiveThirtyEight's NBA Elo, home advantage not included)",
    "margin_rating_diff": "expected home margin in points: home advantage + home minus away margin rating",
}


class InjuryProvider(Protocol):
    """The slot where a real injury source plugs in: a score per team and date (0.0 = nobody missing).

    Positive means the team is weakened. It must only use information published before the game.
    """

    def impact(self, team: str, day: dt.date) -> float: ...


class NoInjuryData:
    """The default provider: we have no injury reports, so every team is neutral rather than invented."""

    def impact(self, team: str, day: dt.date) -> float:
        return 0.0


class _Team:
    """One team's running state: sums of the current season, its prior, its form window, its Elo."""

    __slots__ = (
        "dadj",
        "elo",
        "games",
        "last5",
        "last5_wins",
        "last_day",
        "margin_rating",
        "oadj",
        "pa",
        "pf",
        "prior",
        "season",
        "wins",
    )

    def __init__(self) -> None:
        self.season: int | None = None
        self.games = 0
        self.wins = 0
        self.pf = 0
        self.pa = 0
        self.oadj = 0.0  # sum of points scored / opponent's points allowed per game before that game
        self.dadj = 0.0  # sum of points allowed / opponent's points scored per game before that game
        # win_pct, ppg / league ppg, papg / league ppg, ortg, drtg; None = no previous season.
        self.prior: tuple[float, float, float, float, float] | None = None
        self.elo = ELO_START
        self.margin_rating = 0.0  # points above an average team (the margin rating)
        self.last_day: int | None = None  # proleptic ordinal of the last game
        self.last5: deque[int] = deque(maxlen=LAST_N)
        self.last5_wins = 0

    def add_result(self, won: int, scored: int, allowed: int) -> None:
        """One regular-season game into the season's sums and the form window (1 a win, 0 a loss)."""
        self.games += 1
        self.wins += won
        self.pf += scored
        self.pa += allowed
        if len(self.last5) == LAST_N:
            self.last5_wins -= self.last5[0]
        self.last5.append(won)
        self.last5_wins += won


def _margin_error(home: _Team, away: _Team, home_advantage: float, hs: int, as_: int) -> float:
    """The game's (capped) margin minus the margin the ratings expected."""
    margin = max(-MR_CAP, min(MR_CAP, hs - as_))
    return margin - (home_advantage + home.margin_rating - away.margin_rating)


def _update_elo(home: _Team, away: _Team, hs: int, as_: int) -> None:
    """FiveThirtyEight's NBA Elo step: home advantage, and a margin-of-victory multiplier damped by the edge."""
    edge = home.elo + ELO_HOME - away.elo
    expected = 1.0 / (1.0 + 10.0 ** (-edge / 400.0))
    home_won = hs > as_
    winner_edge = edge if home_won else -edge
    mult = (abs(hs - as_) + 3.0) ** 0.8 / (7.5 + 0.006 * winner_edge)
    shift = ELO_K * mult * ((1.0 if home_won else 0.0) - expected)
    home.elo += shift
    away.elo -= shift


# win_pct, ppg and papg relative to the league, ortg, drtg: a team with no previous season is average.
_NO_PRIOR = (0.5, 1.0, 1.0, 100.0, 100.0)


def _regress(value: float, mean: float) -> float:
    return mean + _PRIOR_KEEP * (value - mean)


@dataclass
class FeatureTable:
    """Features of every final regular-season game, one row each, with the state they ended in."""

    game_ids: list[str] = field(default_factory=list)
    dates: list[dt.date] = field(default_factory=list)
    seasons: list[int] = field(default_factory=list)
    rows: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    state: LeagueState | None = None
    names: tuple[str, ...] = FEATURE_NAMES


class LeagueState:
    """Everything features need, kept incrementally: update with each final game, ask for any matchup.

    Stored as JSON (`to_dict`) in S3 at state/league.json, so the daily job and the predict Lambda read
    the same state without pickle.
    """

    def __init__(self, injuries: InjuryProvider | None = None) -> None:
        """`injuries=None` behaves as `NoInjuryData` (neutral 0.0) without a call per team."""
        self.injuries = injuries
        self.as_of: dt.date | None = None
        self._applied_on_as_of: set[str] = set()
        self._teams: dict[str, _Team] = {}
        self._league: dict[int, list[int]] = {}  # season -> [team-games, points]
        self._h2h: dict[tuple[str, str], deque[int]] = {}  # (a, b) sorted -> margins seen by a
        self._h2h_sums: dict[tuple[str, str], list[int]] = {}  # (a, b) -> [a's wins, sum of margins]
        self._day: int | None = None  # ordinal of the last applied date, and the league's points per
        self._day_ppg = _DEFAULT_PPG  # game before that date's games (for the opponent adjustment)
        self.home_advantage = MR_HOME_START  # the margin rating's home advantage, in points
        self._day_home_advantage = MR_HOME_START  # its value before the last applied date's games

    # ---- reading -------------------------------------------------------------------------------

    def _league_ppg(self, season: int) -> float:
        """League points per game this season so far, shrunk toward last season's (or a default)."""
        prev = self._league.get(season - 1)
        base = prev[1] / prev[0] if prev and prev[0] else _DEFAULT_PPG
        cur = self._league.get(season)
        if not cur:
            return base
        return (cur[1] + _LEAGUE_PRIOR_GAMES * base) / (cur[0] + _LEAGUE_PRIOR_GAMES)

    def _team_view(self, team: str, season: int, league_ppg: float) -> tuple[float, float, float, float, float, float]:
        """win_pct, ppg, papg, ortg, drtg, elo of a team for a game of `season`, before that game."""
        t = self._teams.get(team)
        if t is None:
            return 0.5, league_ppg, league_ppg, 100.0, 100.0, ELO_START
        if t.season != season:
            # The team has not played this season yet: its prior is what it would roll over to.
            p = self._next_prior(t)
            elo = t.elo
            for _ in range(season - t.season):  # type: ignore[operator]
                elo = ELO_CARRY * elo + (1.0 - ELO_CARRY) * ELO_START
            return p[0], p[1] * league_ppg, p[2] * league_ppg, p[3], p[4], elo
        p = t.prior or _NO_PRIOR
        k = _PRIOR_GAMES
        n = t.games + k
        return (
            (t.wins + k * p[0]) / n,
            (t.pf + k * p[1] * league_ppg) / n,
            (t.pa + k * p[2] * league_ppg) / n,
            100.0 * (t.oadj + k * p[3] / 100.0) / n,
            100.0 * (t.dadj + k * p[4] / 100.0) / n,
            t.elo,
        )

    def _next_prior(self, t: _Team) -> tuple[float, float, float, float, float]:
        """A team's prior for a new season: last season's figures regressed toward the league mean.

        Points are kept relative to the league's points per game (1.0 = average), so a change in the
        league's scoring between seasons (pace, rules) moves every team's prior with it.
        """
        if not t.games:
            return t.prior or _NO_PRIOR
        g = t.games
        league = self._league.get(t.season)  # type: ignore[arg-type]
        lppg = league[1] / league[0] if league and league[0] else _DEFAULT_PPG
        return (
            _regress(t.wins / g, 0.5),
            _regress(t.pf / g / lppg, 1.0),
            _regress(t.pa / g / lppg, 1.0),
            _regress(100.0 * t.oadj / g, 100.0),
            _regress(100.0 * t.dadj / g, 100.0),
        )

    def features(self, home: str, away: str, day: dt.date) -> list[float]:
        """Features of `home` v `away` on `day`, in FEATURE_NAMES order, from the games in the state.

        The caller guarantees the state holds only games before `day` (rest days are counted to it).
        """
        season = season_of(day)
        return self._features(home, away, day, day.toordinal(), season, self._league_ppg(season))

    def _features(self, home: str, away: str, day: dt.date, ordinal: int, season: int, lppg: float) -> list[float]:
        h_wp, h_ppg, h_papg, h_or, h_dr, h_elo = self._team_view(home, season, lppg)
        a_wp, a_ppg, a_papg, a_or, a_dr, a_elo = self._team_view(away, season, lppg)
        relative = 100.0 / lppg
        expected_margin = self.home_advantage + self._margin_rating(home, season) - self._margin_rating(away, season)
        teams = self._teams
        th = teams.get(home)
        ta = teams.get(away)
        if th is not None and th.season == season and th.last_day is not None:
            h_rest = min(ordinal - th.last_day, REST_CAP)
        else:
            h_rest = REST_CAP
        if ta is not None and ta.season == season and ta.last_day is not None:
            a_rest = min(ordinal - ta.last_day, REST_CAP)
        else:
            a_rest = REST_CAP
        h_last5 = th.last5_wins if th is not None else 0
        a_last5 = ta.last5_wins if ta is not None else 0
        if self.injuries is None:
            h_inj = a_inj = 0.0
        else:
            h_inj = float(self.injuries.impact(home, day))
            a_inj = float(self.injuries.impact(away, day))
        if home < away:
            sums = self._h2h_sums.get((home, away))
            sign = 1
        else:
            sums = self._h2h_sums.get((away, home))
            sign = -1
        if sums is None:
            h2h_w = h2h_l = 0
            h2h_m = 0.0
        else:
            n = len(self._h2h[(home, away) if sign == 1 else (away, home)])
            first_wins, margin = sums
            if sign == 1:
                h2h_w, h2h_l = first_wins, n - first_wins
            else:
                h2h_w, h2h_l = n - first_wins, first_wins
            h2h_m = sign * margin / n
        return [
            h_wp,
            h_ppg * relative,
            h_papg * relative,
            h_or,
            h_dr,
            float(h_last5),
            float(h_rest),
            h_inj,
            a_wp,
            a_ppg * relative,
            a_papg * relative,
            a_or,
            a_dr,
            float(a_last5),
            float(a_rest),
            a_inj,
            float(h2h_w),
            float(h2h_l),
            h2h_m,
            h_elo - a_elo,
            expected_margin,
        ]

    def _margin_rating(self, team: str, season: int) -> float:
        """A team's margin rating for a game of ``season`` (carried over if it has not played it yet)."""
        t = self._teams.get(team)
        if t is None:
            return 0.0
        if t.season is not None and t.season != season:
            return t.margin_rating * MR_CARRY ** (season - t.season)
        return t.margin_rating

    def elo(self, team: str, day: dt.date) -> float:
        """A team's Elo for a game on `day` (with the between-season carry-over if it has not played yet)."""
        season = season_of(day)
        return self._team_view(team, season, self._league_ppg(season))[5]

    # ---- writing -------------------------------------------------------------------------------

    def update(self, game: Game) -> None:
        """Apply one final game. Games come in date order; several games of the same date are fine.

        A game already applied on the latest date is skipped, so a redelivered day does not count twice.
        """
        if game.status != "final" or game.home_score is None or game.away_score is None:
            raise ValueError(f"only final games update the state: {game.game_id} is {game.status}")
        day = game.game_date
        if self.as_of is not None:
            if day < self.as_of:
                raise ValueError(f"game {game.game_id} of {day} is older than the state's date {self.as_of}")
            if day == self.as_of:
                if game.game_id in self._applied_on_as_of:
                    return
            else:
                self._applied_on_as_of = set()
        else:
            self._applied_on_as_of = set()
        self._apply(game.home, game.away, game.home_score, game.away_score, day.toordinal(), game.season, game.stage)
        self._applied_on_as_of.add(game.game_id)
        self.as_of = day

    def _roll(self, t: _Team, season: int) -> None:
        """Start a team's new season: last season becomes its prior, Elo carries 3/4 over."""
        if t.season is not None:
            t.prior = self._next_prior(t)
            for _ in range(season - t.season):
                t.elo = ELO_CARRY * t.elo + (1.0 - ELO_CARRY) * ELO_START
            t.margin_rating *= MR_CARRY ** (season - t.season)
        t.season = season
        t.games = t.wins = t.pf = t.pa = 0
        t.oadj = t.dadj = 0.0

    def _apply(self, home: str, away: str, hs: int, as_: int, ordinal: int, season: int, stage: str) -> None:
        th, ta = self._team_in(home, season), self._team_in(away, season)
        # Opponent adjustment uses each side's figures from before this game's date, so the order of a
        # day's games (or a game of the day that arrives late) does not change the state.
        if ordinal != self._day:
            self._day = ordinal
            self._day_ppg = self._league_ppg(season)
            self._day_home_advantage = self.home_advantage
        _update_elo(th, ta, hs, as_)  # regular season and playoffs, as the margin rating
        error = _margin_error(th, ta, self._day_home_advantage, hs, as_)
        th.margin_rating += MR_K * error
        ta.margin_rating -= MR_K * error
        self.home_advantage += MR_K_HOME * error
        th.last_day = ta.last_day = ordinal
        if stage != Stage.REGULAR:
            return
        self._add_regular_game(home, away, hs, as_, season)
        self._add_meeting(home, away, hs, as_)

    def _team_in(self, team: str, season: int) -> _Team:
        """A team's state, rolled over to ``season`` if it was last seen in an earlier one."""
        t = self._teams.get(team)
        if t is None:
            t = self._teams[team] = _Team()
        if t.season != season:
            self._roll(t, season)
        return t

    def _add_regular_game(self, home: str, away: str, hs: int, as_: int, season: int) -> None:
        """Box-score sums, opponent-adjusted ratings, form and the league's scoring, from one regular game."""
        th, ta = self._teams[home], self._teams[away]
        _, h_ppg, h_papg, _, _, _ = self._team_view(home, season, self._day_ppg)
        _, a_ppg, a_papg, _, _, _ = self._team_view(away, season, self._day_ppg)
        th.oadj += hs / a_papg
        th.dadj += as_ / a_ppg
        ta.oadj += as_ / h_papg
        ta.dadj += hs / h_ppg
        hw = 1 if hs > as_ else 0
        th.add_result(hw, hs, as_)
        ta.add_result(1 - hw, as_, hs)
        league = self._league.get(season)
        if league is None:
            league = self._league[season] = [0, 0]
        league[0] += 2
        league[1] += hs + as_

    def _add_meeting(self, home: str, away: str, hs: int, as_: int) -> None:
        """The head-to-head window of the pair (margins seen by the alphabetically first team) and its sums."""
        key, margin = ((home, away), hs - as_) if home < away else ((away, home), as_ - hs)
        window = self._h2h.get(key)
        if window is None:
            window = self._h2h[key] = deque(maxlen=_H2H_MEETINGS)
            self._h2h_sums[key] = [0, 0]
        sums = self._h2h_sums[key]
        if len(window) == _H2H_MEETINGS:
            old = window[0]
            sums[0] -= old > 0
            sums[1] -= old
        window.append(margin)
        sums[0] += margin > 0
        sums[1] += margin

    # ---- storage -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe picture of the state (floats round-trip exactly through JSON)."""
        return {
            "format": STATE_FORMAT,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "applied_on_as_of": sorted(self._applied_on_as_of),
            "league_ppg_before_as_of": self._day_ppg if self._day is not None else None,
            "home_advantage": self.home_advantage,
            "home_advantage_before_as_of": self._day_home_advantage if self._day is not None else None,
            "league": {str(season): list(v) for season, v in sorted(self._league.items())},
            "teams": {
                name: {
                    "season": t.season,
                    "games": t.games,
                    "wins": t.wins,
                    "points_for": t.pf,
                    "points_against": t.pa,
                    "off_adjusted": t.oadj,
                    "def_adjusted": t.dadj,
                    "prior": list(t.prior) if t.prior is not None else None,
                    "elo": t.elo,
                    "margin_rating": t.margin_rating,
                    "last_game": dt.date.fromordinal(t.last_day).isoformat() if t.last_day else None,
                    "last5": list(t.last5),
                }
                for name, t in sorted(self._teams.items())
            },
            "h2h": {f"{a}|{b}": list(window) for (a, b), window in sorted(self._h2h.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], injuries: InjuryProvider | None = None) -> LeagueState:
        """Rebuild a state stored by `to_dict`; refuses a format it does not know rather than guess."""
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"unknown league state format {data.get('format')!r}, expected {STATE_FORMAT}")
        state = cls(injuries=injuries)
        state.as_of = dt.date.fromisoformat(data["as_of"]) if data["as_of"] else None
        state._applied_on_as_of = set(data["applied_on_as_of"])
        if state.as_of is not None and data["league_ppg_before_as_of"] is not None:
            state._day = state.as_of.toordinal()
            state._day_ppg = float(data["league_ppg_before_as_of"])
            state._day_home_advantage = float(data["home_advantage_before_as_of"])
        state.home_advantage = float(data["home_advantage"])
        state._league = {int(season): [int(v[0]), int(v[1])] for season, v in data["league"].items()}
        for name, d in data["teams"].items():
            t = _Team()
            t.season = d["season"]
            t.games, t.wins, t.pf, t.pa = d["games"], d["wins"], d["points_for"], d["points_against"]
            t.oadj, t.dadj = float(d["off_adjusted"]), float(d["def_adjusted"])
            t.prior = tuple(float(x) for x in d["prior"]) if d["prior"] is not None else None  # type: ignore[assignment]
            t.elo = float(d["elo"])
            t.margin_rating = float(d["margin_rating"])
            t.last_day = dt.date.fromisoformat(d["last_game"]).toordinal() if d["last_game"] else None
            t.last5.extend(int(x) for x in d["last5"])
            t.last5_wins = sum(t.last5)
            state._teams[name] = t
        for pair, margins in data["h2h"].items():
            a, b = pair.split("|")
            window: deque[int] = deque((int(m) for m in margins), maxlen=_H2H_MEETINGS)
            state._h2h[(a, b)] = window
            state._h2h_sums[(a, b)] = [sum(1 for m in window if m > 0), sum(window)]
        return state


def incompatibility(bundle_metadata: Mapping[str, Any]) -> str | None:
    """Why a bundle's model cannot be fed this code's features (another FEATURES_VERSION), or None if it can."""
    version = bundle_metadata.get("features_version", 1)
    if version == FEATURES_VERSION:
        return None
    return f"trained on features version {version}, and this code computes version {FEATURES_VERSION}"


def elo_probability(elo_diff: float) -> float:
    """Home win probability from Elo alone (home advantage included): the baseline any model must beat."""
    return 1.0 / (1.0 + math.pow(10.0, -(elo_diff + ELO_HOME) / 400.0))


def _sorted_final(games: Iterable[Game]) -> list[Game]:
    """Final games in date order, one per game id (the last copy wins), ties broken by id for determinism."""
    unique = {g.game_id: g for g in games if g.status == "final"}
    return sorted(unique.values(), key=lambda g: (g.game_date, g.game_id))


def build_features(games: Iterable[Game], injuries: InjuryProvider | None = None) -> FeatureTable:
    """Features of every final regular-season game from scratch, each from the games before its date.

    Playoff games get no row (training excludes them) but still update Elo and rest.
    """
    state = LeagueState(injuries=injuries)
    table = FeatureTable(state=state)
    ordered = _sorted_final(games)
    ids, dates, seasons, rows, labels = table.game_ids, table.dates, table.seasons, table.rows, table.labels
    feats = state._features
    apply = state._apply
    regular = Stage.REGULAR
    i = 0
    total = len(ordered)
    while i < total:
        day = ordered[i].game_date
        j = i
        while j < total and ordered[j].game_date == day:
            j += 1
        batch = ordered[i:j]
        ordinal = day.toordinal()
        season = season_of(day)
        lppg = state._league_ppg(season)
        for g in batch:  # every feature of the day first ...
            if g.stage == regular:
                ids.append(g.game_id)
                dates.append(day)
                seasons.append(season)
                rows.append(feats(g.home, g.away, day, ordinal, season, lppg))
                labels.append(1 if g.home_score > g.away_score else 0)  # type: ignore[operator]
        for g in batch:  # ... then the day's results
            apply(g.home, g.away, g.home_score, g.away_score, ordinal, g.season, g.stage)  # type: ignore[arg-type]
        state.as_of = day
        state._applied_on_as_of = {g.game_id for g in batch}
        i = j
    return table


def update_state(state: LeagueState, new_games: Iterable[Game]) -> LeagueState:
    """The daily update: apply the new final games to the stored state, in place, and return it.

    Costs what the new games cost, and gives the state a rebuild from scratch would give. A batch with a
    game older than the state raises ValueError before any of its games is applied.
    Games of the state's own date that were already applied are skipped (a redelivered day is harmless).
    """
    ordered = _sorted_final(new_games)  # oldest first: a too-old game fails before anything is applied
    for game in ordered:
        state.update(game)
    return state
