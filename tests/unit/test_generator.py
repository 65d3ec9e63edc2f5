"""Tests of the synthetic league: its schedule is a real NBA schedule's shape, its results the real
league's statistics (held against the shared file), and it is a deterministic function of its seed."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nbaml.games.defects import DefectKind
from nbaml.games.feeds.base import GameFeed, RawPayload
from nbaml.games.feeds.generator import SyntheticLeague, season_window
from nbaml.games.feeds.history_file import load_games
from nbaml.games.records import GAME_LENGTH, Game, GameStatus
from nbaml.games.teams import HOME_TIMEZONE, LEAGUE_TIMEZONE, TEAMS, league_time

SHARED_FILE = Path(__file__).resolve().parents[2].parent / "shared/data/nba_games_2009_2023.csv"
SEASONS = range(2019, 2024)
# Full 82-game seasons of the era the generator imitates (2019-20 and 2020-21 were bent by the pandemic).
REAL_SEASONS = (2018, 2021, 2022)


@pytest.fixture(scope="module")
def league() -> SyntheticLeague:
    return SyntheticLeague(seed=2024, first_season=2019)


@pytest.fixture(scope="module")
def synthetic(league: SyntheticLeague) -> list[Game]:
    return [g for season in SEASONS for g in league.games(season)]


def season_stats(games: list[Game]) -> dict[str, float]:
    """The statistics a winner model is sensitive to, computed the same way for both leagues."""
    margins = [g.home_score - g.away_score for g in games]  # type: ignore[operator]
    days: dict[tuple[int, str], list[dt.date]] = defaultdict(list)
    for g in games:
        days[(g.season, g.home)].append(g.game_date)
        days[(g.season, g.away)].append(g.game_date)
    gaps = Counter((b - a).days for dates in days.values() for a, b in itertools.pairwise(sorted(dates)))
    n_gaps = sum(gaps.values())
    return {
        "home_win_rate": sum(m > 0 for m in margins) / len(margins),
        "margin_std": statistics.pstdev(margins),
        "points_per_team": sum(g.home_score + g.away_score for g in games) / (2 * len(games)),  # type: ignore[operator]
        "back_to_back_share": gaps[1] / n_gaps,
        "one_day_rest_share": gaps[2] / n_gaps,
    }


# --- determinism and speed -------------------------------------------------------------------------


def test_given_the_same_seed_when_generated_twice_then_the_games_are_identical() -> None:
    assert SyntheticLeague(seed=7).games(2020) == SyntheticLeague(seed=7).games(2020)


def test_given_another_seed_when_generated_then_the_games_differ() -> None:
    assert SyntheticLeague(seed=7).games(2020) != SyntheticLeague(seed=8).games(2020)


def test_given_the_global_random_state_changes_then_the_league_does_not() -> None:
    import random

    random.seed(1)
    first = SyntheticLeague(seed=3).games(2019)
    random.seed(2)
    assert SyntheticLeague(seed=3).games(2019) == first


def test_given_a_season_before_the_first_when_asked_then_value_error() -> None:
    with pytest.raises(ValueError, match="starts in 2019"):
        SyntheticLeague(first_season=2019).games(2018)


# --- schedule shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize("season", SEASONS)
def test_given_a_season_then_each_team_plays_82_games_41_at_home(league: SyntheticLeague, season: int) -> None:
    games = league.games(season)

    assert len(games) == 1230
    assert Counter(g.home for g in games) == {team: 41 for team in TEAMS}
    assert Counter(g.away for g in games) == {team: 41 for team in TEAMS}


@pytest.mark.parametrize("season", SEASONS)
def test_given_a_season_then_each_pair_meets_two_to_four_times(league: SyntheticLeague, season: int) -> None:
    meetings = Counter(frozenset((g.home, g.away)) for g in league.games(season))

    assert len(meetings) == 435
    assert set(meetings.values()) == {2, 3, 4}


def test_given_the_schedule_then_no_team_plays_twice_on_a_date(synthetic: list[Game]) -> None:
    busy = Counter((g.game_date, team) for g in synthetic for team in (g.home, g.away))
    assert max(busy.values()) == 1


@pytest.mark.parametrize("season", SEASONS)
def test_given_a_season_then_it_runs_from_october_to_april_with_the_usual_days_off(
    league: SyntheticLeague, season: int
) -> None:
    dates = {g.game_date for g in league.games(season)}
    opening, closing = season_window(season)

    assert min(dates) == opening and opening.month == 10 and 18 <= opening.day <= 24
    assert max(dates) <= closing + dt.timedelta(days=3) and max(dates).month == 4
    assert dt.date(season, 12, 24) not in dates
    assert dt.date(season, 12, 25) in dates
    february = [d for d in sorted(dates) if d.month == 2 and d.year == season + 1]
    longest_pause = max((b - a).days for a, b in itertools.pairwise(february))
    assert longest_pause >= 6, "the All-Star break"


def test_given_the_games_then_all_are_final_without_ties_and_in_their_season(synthetic: list[Game]) -> None:
    assert all(g.status is GameStatus.FINAL for g in synthetic)
    assert all(g.home_score != g.away_score for g in synthetic)
    assert all(60 <= g.home_score <= 175 and 60 <= g.away_score <= 175 for g in synthetic)  # type: ignore[operator]
    assert len({g.game_id for g in synthetic}) == len(synthetic)


# --- the hidden truth -------------------------------------------------------------------------------


def test_given_the_ratings_then_stronger_teams_win_more(league: SyntheticLeague) -> None:
    for season in SEASONS:
        ratings = league.ratings(season)
        wins = Counter(g.home if g.home_won else g.away for g in league.games(season))
        ranked = sorted(TEAMS, key=ratings.__getitem__)
        assert sum(wins[t] for t in ranked[-10:]) > sum(wins[t] for t in ranked[:10]) + 150


def test_given_consecutive_seasons_then_strength_carries_over_but_regresses(league: SyntheticLeague) -> None:
    pairs = [(league.ratings(s)[t], league.ratings(s + 1)[t]) for s in range(2019, 2023) for t in TEAMS]
    correlation = statistics.correlation([a for a, _ in pairs], [b for _, b in pairs])

    assert 0.3 < correlation < 0.9
    assert all(abs(sum(league.ratings(s).values())) < 1e-9 for s in SEASONS)


# --- statistics against the real league -------------------------------------------------------------

# Tolerances: sampling noise of ~1230-game seasons plus season-to-season variation of the real league.
TOLERANCE = {
    "home_win_rate": 0.03,
    "margin_std": 1.0,
    "points_per_team": 3.0,
    "back_to_back_share": 0.03,
    "one_day_rest_share": 0.05,
}


@pytest.fixture(scope="module")
def real_stats() -> dict[str, float]:
    if not SHARED_FILE.exists():
        pytest.skip(f"shared data file absent: {SHARED_FILE}")
    return season_stats([g for g in load_games(SHARED_FILE).games if g.season in REAL_SEASONS])


@pytest.mark.parametrize("statistic", sorted(TOLERANCE))
def test_given_the_real_file_then_synthetic_statistics_are_within_tolerance(
    synthetic: list[Game], real_stats: dict[str, float], statistic: str
) -> None:
    ours, theirs = season_stats(synthetic)[statistic], real_stats[statistic]

    assert abs(ours - theirs) <= TOLERANCE[statistic], f"{statistic}: synthetic {ours:.3f}, real {theirs:.3f}"


# --- as a GameFeed ----------------------------------------------------------------------------------


def test_given_a_window_when_fetched_and_parsed_then_the_games_round_trip(league: SyntheticLeague) -> None:
    assert isinstance(league, GameFeed)
    start, end = dt.date(2024, 1, 5), dt.date(2024, 1, 7)

    payloads = league.fetch_raw(start, end)
    batch = league.parse(payloads)

    assert [p.key for p in payloads] == [f"generator/2024-01-0{d}.json" for d in (5, 6, 7)]
    assert all(p.content_type == "application/json" and p.source == "generator" for p in payloads)
    expected = [g for g in league.games(2023) if start <= g.game_date <= end]
    assert batch.games == expected and expected
    assert batch.defects.total == 0


def test_given_a_day_outside_any_season_when_fetched_then_empty_payloads(league: SyntheticLeague) -> None:
    payloads = league.fetch_raw(dt.date(2010, 1, 1), dt.date(2010, 1, 1)) + league.fetch_raw(
        dt.date(2023, 7, 1), dt.date(2023, 7, 1)
    )
    assert [json.loads(p.body)["games"] for p in payloads] == [[], []]


def test_given_a_game_day_when_scheduled_then_the_games_come_without_scores(league: SyntheticLeague) -> None:
    day = league.games(2023)[100].game_date

    before = league.schedule(day)

    assert {g.game_id for g in before} == {g.game_id for g in league.games(2023) if g.game_date == day}
    assert all(g.status is GameStatus.SCHEDULED and g.home_score is None for g in before)


def test_given_a_season_then_every_game_has_a_realistic_tip_off_on_its_eastern_date(league: SyntheticLeague) -> None:
    games = league.games(2023)
    eastern = [g.tip_off.astimezone(ZoneInfo(LEAGUE_TIMEZONE)) for g in games]  # type: ignore[union-attr]
    local = [g.tip_off.astimezone(ZoneInfo(HOME_TIMEZONE[g.home])) for g in games]  # type: ignore[union-attr]
    assert all(e.date() == g.game_date for e, g in zip(eastern, games, strict=True))
    # evenings on the home arena's clock, afternoons only at weekends; never later than 22:30 Eastern
    evenings = [t for t in local if t.hour >= 19]
    assert {t.strftime("%H:%M") for t in evenings} == {"19:00", "19:30", "20:00"}
    assert all(t.weekday() >= 5 for t in local if t.hour < 19)
    assert 0.05 < sum(t.hour < 19 for t in local) / len(local) < 0.12  # a quarter of weekend games
    assert max(e.time() for e in eastern) == dt.time(22, 30) and min(e.time() for e in eastern) >= dt.time(13)
    # West Coast home games start last: about three hours after the East's
    west = [e.hour for e, g in zip(eastern, games, strict=True) if g.home in ("LAL", "GSW", "POR") and e.hour >= 19]
    assert west and min(west) >= 22


def test_given_a_moment_of_a_game_night_when_fetched_then_only_games_ended_by_then_are_final(
    league: SyntheticLeague,
) -> None:
    # Given a night with early and late games, asked at 22:00 Eastern
    day = next(d for d in sorted({g.game_date for g in league.games(2023)}) if len(league.schedule(d)) >= 8)
    asked = league_time(day, dt.time(22))
    # When
    batch = league.parse(league.fetch_raw(day, day, as_of=asked))
    truth = {g.game_id: g for g in league.games(2023) if g.game_date == day}
    # Then: a game is final GAME_LENGTH after its tip-off, in progress from tip-off, scheduled before it
    for game in batch.games:
        started, ended = truth[game.game_id].tip_off, truth[game.game_id].tip_off + GAME_LENGTH  # type: ignore[operator]
        expected = (
            GameStatus.FINAL if asked >= ended else GameStatus.IN_PROGRESS if asked >= started else GameStatus.SCHEDULED
        )
        assert game.status is expected, game
        assert (game.home_score is None) == (expected is not GameStatus.FINAL)
        assert game.tip_off == truth[game.game_id].tip_off
    assert {g.status for g in batch.games} >= {GameStatus.FINAL, GameStatus.IN_PROGRESS}
    # and at 03:00 Eastern the next morning every game of the night is final, as collect sees it
    morning = league.parse(league.fetch_raw(day, day, as_of=league_time(day + dt.timedelta(days=1), dt.time(3))))
    assert morning.games == sorted(truth.values(), key=lambda g: g.game_id)


def test_given_damaged_payloads_when_parsed_then_each_problem_is_a_counted_defect(league: SyntheticLeague) -> None:
    good = league.games(2023)[0].model_dump(mode="json")
    items = [
        good,
        good,
        {**good, "home": "XYZ"},
        {**good, "away": good["home"]},
        {**good, "home_score": None},
        {k: v for k, v in good.items() if k != "game_date"},
        {**good, "season": 1999},
        "not an object",
    ]
    payloads = [
        RawPayload("generator", "generator/a.json", json.dumps({"games": items}).encode(), "application/json"),
        RawPayload("generator", "generator/b.json", b'{"games": [', "application/json"),
        RawPayload("generator", "generator/c.json", b'{"other": 1}', "application/json"),
    ]

    batch = league.parse(payloads)

    assert [g.game_id for g in batch.games] == [good["game_id"]]
    assert {k: n for k, n in batch.defects.counts.items() if n} == {
        DefectKind.DUPLICATE_IDENTICAL: 1,
        DefectKind.UNKNOWN_TEAM: 1,
        DefectKind.SAME_TEAM_BOTH_SIDES: 1,
        DefectKind.FINAL_WITHOUT_SCORE: 1,
        DefectKind.MISSING_FIELD: 1,
        DefectKind.MALFORMED: 4,
    }
