"""The embedded default data source: a synthetic NBA league that needs no file, no network and no key.

It exists so the whole pipeline (collect, drift check, retrain, serve, replay) runs anywhere, and so the
model has something with a known truth to learn. It is built to look like the real league of the 2018-19
to 2022-23 era on the statistics a game-winner model is sensitive to (checked against the real file in
``tests/unit/test_generator.py``):

- schedule: the 30 real teams in their real divisions, 82 games each (41 at home) under the NBA's
  formula (4 games against division rivals, 3 or 4 against the rest of the conference, 2 against the
  other conference); a calendar from the Tuesday of Oct 18-24 to the Sunday of Apr 9-15, with no games
  on Thanksgiving, Christmas Eve and the All-Star break, about 3.3 games a team a week, back-to-backs
  about 16% of a team's games;
- results: a hidden strength per team (points better than average) that drifts during a season (random
  walk) and regresses to the mean between seasons, plus a form that comes and goes (injuries, hot and
  cold spells: a daily AR(1) with a half-life of about a week), minus 2 points on the second night of a
  back-to-back; home advantage 2.7 points; margin noise such that
  the margin's spread (about 14) and the home win rate (about 58%) match the real league; about 112
  points per team per game; no ties (tied games go to overtime);
- tip-offs: evenings on the home arena's clock (19:00-20:00 in the East and Centre, 19:00 or 19:30 in the
  Mountain and Pacific zones, so 19:00 to 22:30 Eastern), a quarter of weekend games in the afternoon;
  as a feed the league answers as of a moment, and a game is final GAME_LENGTH after its tip-off.

Every season is a normal 82-game season (no lockout or pandemic shapes). Everything is a pure function
of the seed: one ``random.Random`` per season, never the global generator.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections import defaultdict
from collections.abc import Iterable

from pydantic import ValidationError

from nbaml.games.defects import DefectKind, DefectReport
from nbaml.games.feeds.base import FeedBatch, RawPayload, as_known_at, batch_of, day_range, unscored
from nbaml.games.records import Game, GameStatus, season_of
from nbaml.games.teams import HOME_TIMEZONE, TEAMS, local_time

SOURCE = "generator"
CONTENT_TYPE = "application/json"
DEFAULT_SEED = 2024
DEFAULT_FIRST_SEASON = 2019
"""Five seasons of history (2019-20 to 2023-24) before the 2024-25 season a replay usually plays."""

# Conference -> divisions, as the league is organised since 2004-05.
CONFERENCES: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("BOS", "BKN", "NYK", "PHI", "TOR"), ("CHI", "CLE", "DET", "IND", "MIL"), ("ATL", "CHA", "MIA", "ORL", "WAS")),
    (("DEN", "MIN", "OKC", "POR", "UTA"), ("GSW", "LAC", "LAL", "PHX", "SAC"), ("DAL", "HOU", "MEM", "NOP", "SAS")),
)

# Results model, in points. Strength spread 4.5, form 2.5 and noise 12.5 give a margin std of 14.8 (2018-23: 14.5).
HOME_ADVANTAGE = 2.7
STRENGTH_SPREAD = 4.5
SEASON_CARRY_OVER = 0.6
"""Correlation of a team's strength from one season to the next (regression to the mean)."""
BACK_TO_BACK_PENALTY = 2.0
"""Points a team loses on the second night of a back-to-back (tired legs; measured at 1.5-2.5 in the NBA):
information that a team's strength, and so Elo, does not carry, as in the real league."""
DAILY_DRIFT = 0.1
"""Random-walk step per day of the lasting strength: about 1.4 points over a season (trades, development)."""
FORM_PERSISTENCE = 0.9
FORM_SPREAD = 2.5
"""A team's form: points above its strength that decay by FORM_PERSISTENCE a day (half-life 6.6 days) with
spread FORM_SPREAD, as injuries and streaks come and go. Season-long figures see through it where a
short-memory rating such as Elo chases it: with a pure random walk (the first version) Elo was the data's
own model and no feature set could beat it, which the real league does not look like (README, Gates)."""
MARGIN_NOISE = 12.5
POINTS_PER_TEAM = 112.0
TOTAL_NOISE = 20.0
OVERTIME_POINTS = 10.0

# Calendar: how ready a team is to play, as a multiple of its need (games left / days left), by days since its
# last game. Tuned so back-to-backs are about 16% of games and one day of rest about 62%, as in 2018-23.
_READINESS_AFTER_REST = {1: 0.12, 2: 1.4}
_READINESS_LONG_REST = 2.0
_SPARE_DAYS = 2
"""Plan as if the season ended this many days early, so stragglers rarely spill past the closing Sunday."""

# Start times, local to the home arena (``tip_off``).
_EVENING = (dt.time(19), dt.time(19, 30), dt.time(20))
_EVENING_WEIGHTS = (0.45, 0.40, 0.15)
_EVENING_WEST = (dt.time(19), dt.time(19, 30))
_EVENING_WEST_WEIGHTS = (0.6, 0.4)
_AFTERNOON = (dt.time(13), dt.time(15), dt.time(15, 30))
_AFTERNOON_SHARE = 0.25


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def season_window(season: int) -> tuple[dt.date, dt.date]:
    """Opening night (the Tuesday of Oct 18-24) and the last scheduled day (the Sunday of Apr 9-15)."""
    opening = dt.date(season, 10, 18)
    opening += dt.timedelta(days=(1 - opening.weekday()) % 7)
    closing = dt.date(season + 1, 4, 9)
    closing += dt.timedelta(days=(6 - closing.weekday()) % 7)
    return opening, closing


def _days_off(season: int) -> set[dt.date]:
    """Thanksgiving, Christmas Eve, and the All-Star break (Friday to Wednesday around its Sunday)."""
    thanksgiving = _nth_weekday(season, 11, 3, 4)
    all_star_sunday = _nth_weekday(season + 1, 2, 6, 3)
    break_days = {all_star_sunday + dt.timedelta(days=k) for k in range(-2, 4)}
    return {thanksgiving, dt.date(season, 12, 24), *break_days}


def _matchups(rng: random.Random) -> list[tuple[str, str]]:
    """The season's 1230 (home, away) pairs, 82 per team, 41 at home.

    Within a conference, teams sit on a 15-cycle with division = position mod 3; offsets 3 and 6 are
    division rivals (4 games), offsets 1 and 2 the 3-game opponents (the lower position hosts twice) and
    offsets 4, 5 and 7 the other 4-game opponents. Shuffling the divisions changes who plays whom 3 times.
    """
    pairs: list[tuple[str, str]] = []
    for conference in CONFERENCES:
        divisions = [rng.sample(division, len(division)) for division in conference]
        cycle = [divisions[i % 3][i // 3] for i in range(15)]
        for i, team in enumerate(cycle):
            for offset in range(1, 8):
                other = cycle[(i + offset) % 15]
                pairs += [(team, other), (other, team)]
                if offset in (1, 2):
                    pairs.append((team, other))
                else:
                    pairs += [(team, other), (other, team)]
    for east in (t for division in CONFERENCES[0] for t in division):
        for west in (t for division in CONFERENCES[1] for t in division):
            pairs += [(east, west), (west, east)]
    return pairs


def _calendar(pairs: list[tuple[str, str]], season: int, rng: random.Random) -> list[tuple[dt.date, str, str]]:
    """Give every pair a date: teams need (games left / days left) decides who plays, rest tempers it.

    Greedy day by day; a team that must play every remaining day is always ready. Games that do not fit
    by the closing Sunday spill into the following days (rare, a day or two), like a real make-up game.
    """
    opening, closing = season_window(season)
    off = _days_off(season)
    days = [d for d in day_range(opening, closing) if d not in off]
    left: dict[str, list[int]] = defaultdict(list)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    for index in order:
        home, away = pairs[index]
        left[home].append(index)
        left[away].append(index)
    last: dict[str, dt.date] = {}
    placed: list[tuple[dt.date, str, str]] = []
    day_number = 0
    while any(left.values()):
        if day_number < len(days):
            day, days_left = days[day_number], len(days) - day_number
        else:
            day, days_left = days[-1] + dt.timedelta(days=day_number - len(days) + 1), 1
        day_number += 1
        ready = _ready_teams(left, last, day, days_left, rng)
        willing = {team for _, team in ready}
        busy: set[str] = set()
        for _, team in ready:
            if team in busy:
                continue
            for index in left[team]:
                home, away = pairs[index]
                other = away if home == team else home
                if other in willing and other not in busy:
                    placed.append((day, home, away))
                    busy.update((home, away))
                    last[home] = last[away] = day
                    left[home].remove(index)
                    left[away].remove(index)
                    break
    return placed


def _ready_teams(
    left: dict[str, list[int]], last: dict[str, dt.date], day: dt.date, days_left: int, rng: random.Random
) -> list[tuple[float, str]]:
    """The teams willing to play on ``day``, most in need first: a team that must play every day left always is."""
    ready: list[tuple[float, str]] = []
    for team in TEAMS:
        need = len(left[team]) / max(days_left - _SPARE_DAYS, 1)
        if need == 0:
            continue
        rest = (day - last[team]).days if team in last else 9
        chance = need * _READINESS_AFTER_REST.get(rest, _READINESS_LONG_REST)
        if need >= 1 or rng.random() < chance:
            ready.append((need + rng.random() * 0.1, team))
    ready.sort(reverse=True)
    return ready


class SyntheticLeague:
    """A deterministic synthetic league: ``games(season)`` for history, and the ``GameFeed`` methods."""

    name = SOURCE

    def __init__(self, seed: int = DEFAULT_SEED, first_season: int = DEFAULT_FIRST_SEASON) -> None:
        self.seed = seed
        self.first_season = first_season
        self._games: dict[int, list[Game]] = {}
        self._ratings: dict[int, dict[str, float]] = {}
        self._final_ratings: dict[int, dict[str, float]] = {}
        self._by_date: dict[dt.date, list[Game]] = {}

    def games(self, season: int) -> list[Game]:
        """Every game of the season, final, sorted by date then id (generated once, then cached)."""
        if season < self.first_season:
            raise ValueError(f"the league starts in {self.first_season}; no season {season}")
        for year in range(self.first_season, season + 1):
            if year not in self._games:
                self._generate(year)
        return list(self._games[season])

    def ratings(self, season: int) -> dict[str, float]:
        """Each team's true strength on opening night (points above average): the truth a model should find."""
        self.games(season)
        return dict(self._ratings[season])

    def _generate(self, season: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + season)
        if season == self.first_season:
            start = {team: rng.gauss(0.0, STRENGTH_SPREAD) for team in TEAMS}
        else:
            previous = self._final_ratings[season - 1]
            fresh = STRENGTH_SPREAD * math.sqrt(1 - SEASON_CARRY_OVER**2)
            start = {team: SEASON_CARRY_OVER * previous[team] + rng.gauss(0.0, fresh) for team in TEAMS}
        mean = sum(start.values()) / len(start)
        strength = {team: value - mean for team, value in start.items()}
        self._ratings[season] = dict(strength)

        fixtures = _calendar(_matchups(rng), season, rng)
        starts = random.Random(f"{self.seed}/{season}/tip-offs")  # its own stream: the results stay as they were
        games: list[Game] = []
        current_day: dt.date | None = None
        last_played: dict[str, dt.date] = {}
        form = dict.fromkeys(TEAMS, 0.0)
        form_step = FORM_SPREAD * math.sqrt(1 - FORM_PERSISTENCE**2)  # keeps the form's spread at FORM_SPREAD
        for number, (day, home, away) in enumerate(fixtures):
            if day != current_day:
                if current_day is not None:
                    for _ in range((day - current_day).days):
                        for team in TEAMS:
                            strength[team] += rng.gauss(0.0, DAILY_DRIFT)
                            form[team] = FORM_PERSISTENCE * form[team] + rng.gauss(0.0, form_step)
                current_day = day
            tired = {team: last_played.get(team) == day - dt.timedelta(days=1) for team in (home, away)}
            gap = strength[home] + form[home] - strength[away] - form[away]
            gap -= BACK_TO_BACK_PENALTY * (tired[home] - tired[away])
            home_score, away_score = _score(gap, rng)
            last_played[home] = last_played[away] = day
            games.append(
                Game.create(
                    game_date=day,
                    home=home,
                    away=away,
                    status=GameStatus.FINAL,
                    source=SOURCE,
                    home_score=home_score,
                    away_score=away_score,
                    source_id=f"{season}-{number:04d}",
                    tip_off=tip_off(day, home, starts),
                )
            )
        games.sort(key=lambda g: (g.game_date, g.game_id))
        self._games[season] = games
        self._final_ratings[season] = strength
        for game in games:
            self._by_date.setdefault(game.game_date, []).append(game)

    def _day(self, day: dt.date) -> list[Game]:
        season = season_of(day)
        if season < self.first_season:
            return []
        self.games(season)
        return list(self._by_date.get(day, []))

    def fetch_raw(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None) -> list[RawPayload]:
        """One JSON payload per date of the window (empty days too, like the live feed), every game as the
        league reports it at ``as_of`` (``as_known_at``: final GAME_LENGTH after tip-off, in progress or
        scheduled before, without scores); as it ended when ``as_of`` is None."""
        payloads = []
        for day in day_range(start, end):
            body = {
                "source": SOURCE,
                "seed": self.seed,
                "date": day.isoformat(),
                "games": [as_known_at(game, as_of).model_dump(mode="json") for game in self._day(day)],
            }
            payloads.append(
                RawPayload(
                    source=SOURCE,
                    key=f"{SOURCE}/{day:%Y-%m-%d}.json",
                    body=json.dumps(body, separators=(",", ":")).encode(),
                    content_type=CONTENT_TYPE,
                )
            )
        return payloads

    def parse(self, payloads: list[RawPayload]) -> FeedBatch:
        """Games back from JSON payloads; an unreadable payload or item is a counted defect, never an error."""
        defects = DefectReport()
        rows = (
            (_game_from_item(item, f"{payload.key}#{position}", defects), f"{payload.key}#{position}")
            for payload in payloads
            for position, item in _items(payload, defects)
        )
        return batch_of(rows, defects)

    def schedule(self, day: dt.date) -> list[Game]:
        """The day's games before tip-off: scheduled, unscored (the results stay hidden until fetched)."""
        return [unscored(game) for game in self._day(day)]


def tip_off(day: dt.date, home: str, rng: random.Random) -> dt.datetime:
    """A realistic start for a game at ``home``'s arena: an evening on the home team's clock, some weekend
    afternoons. Eastern and Central arenas start at 19:00, 19:30 or 20:00 local, Mountain and Pacific ones at
    19:00 or 19:30 (so the latest start is 22:30 Eastern); on Saturdays and Sundays a game in four starts in
    the afternoon (13:00, 15:00 or 15:30 local)."""
    zone = HOME_TIMEZONE[home]
    if day.weekday() >= 5 and rng.random() < _AFTERNOON_SHARE:
        wall = rng.choice(_AFTERNOON)
    else:
        late = zone.startswith(("America/Denver", "America/Phoenix", "America/Los_Angeles"))
        wall = rng.choices(_EVENING_WEST if late else _EVENING, _EVENING_WEST_WEIGHTS if late else _EVENING_WEIGHTS)[0]
    return local_time(day, wall, zone)


def _score(strength_gap: float, rng: random.Random) -> tuple[int, int]:
    margin = strength_gap + HOME_ADVANTAGE + rng.gauss(0.0, MARGIN_NOISE)
    total = rng.gauss(2 * POINTS_PER_TEAM, TOTAL_NOISE)
    home, away = round((total + margin) / 2), round((total - margin) / 2)
    while home == away:  # overtime until someone wins
        home += round(rng.gauss(OVERTIME_POINTS, 3.0))
        away += round(rng.gauss(OVERTIME_POINTS, 3.0))
    return max(home, 1), max(away, 1)


def _items(payload: RawPayload, defects: DefectReport) -> Iterable[tuple[int, object]]:
    try:
        document = json.loads(payload.body)
    except (ValueError, UnicodeDecodeError) as exc:
        defects.add(DefectKind.MALFORMED, payload.key, f"not JSON: {exc}")
        return []
    items = document.get("games") if isinstance(document, dict) else None
    if not isinstance(items, list):
        defects.add(DefectKind.MALFORMED, payload.key, "no 'games' list")
        return []
    return enumerate(items)


def _game_from_item(item: object, where: str, defects: DefectReport) -> Game | None:
    """Name the defect precisely when the cause is plain; anything else pydantic rejects is malformed."""
    if not isinstance(item, dict):
        defects.add(DefectKind.MALFORMED, where, f"item is a {type(item).__name__}, not an object")
        return None
    home, away = item.get("home"), item.get("away")
    if home is None or away is None or item.get("game_date") is None or item.get("status") is None:
        defects.add(DefectKind.MISSING_FIELD, where, "home, away, game_date and status are required")
        return None
    if home not in TEAMS or away not in TEAMS:
        defects.add(DefectKind.UNKNOWN_TEAM, where, f"teams {home!r} and {away!r}")
        return None
    if home == away:
        defects.add(DefectKind.SAME_TEAM_BOTH_SIDES, where, f"{home} on both sides")
        return None
    if item.get("status") == GameStatus.FINAL and (item.get("home_score") is None or item.get("away_score") is None):
        defects.add(DefectKind.FINAL_WITHOUT_SCORE, where, "final game without both scores")
        return None
    try:
        return Game.model_validate(item)
    except ValidationError as exc:
        defects.add(DefectKind.MALFORMED, where, f"invalid game: {exc.errors()[0].get('msg', 'invalid')}")
        return None
