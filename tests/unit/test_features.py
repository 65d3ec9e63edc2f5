"""Data-contract and code tests of the one feature module: leakage, incremental = rebuild, storage, sanity."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbaml.features import (
    FEATURE_NAMES,
    REST_CAP,
    SEED_FEATURES,
    LeagueState,
    build_features,
    elo_probability,
    update_state,
)
from nbaml.games.records import Game, GameStatus, Stage
from nbaml.games.teams import TEAMS

SHARED_FILE = Path(__file__).resolve().parents[2].parent / "shared/data/nba_games_2009_2023.csv"
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def final(day: dt.date, home: str, away: str, home_score: int, away_score: int, stage: Stage = Stage.REGULAR) -> Game:
    return Game.create(
        game_date=day,
        home=home,
        away=away,
        status=GameStatus.FINAL,
        source="test",
        home_score=home_score,
        away_score=away_score,
        stage=stage,
    )


def synthetic_games(seasons: tuple[int, ...] = (2018, 2019), per_day: int = 5, days: int = 60) -> list[Game]:
    """Two short seasons of games between teams of fixed strength: every code path, no file needed."""
    rng = random.Random(7)
    strength = {team: rng.gauss(0, 6) for team in TEAMS}
    games = []
    for season in seasons:
        start = dt.date(season, 10, 20)
        for d in range(days):
            day = start + dt.timedelta(days=d)
            teams = rng.sample(TEAMS, per_day * 2)
            for home, away in zip(teams[::2], teams[1::2], strict=True):
                margin = round(strength[home] - strength[away] + 3 + rng.gauss(0, 12)) or 1
                base = rng.randint(95, 115)
                games.append(final(day, home, away, base + max(margin, 0), base + max(-margin, 0)))
    return games


def load_shared_games() -> list[Game]:
    """The real history, read as the brief says: skip rows with missing or zero values, dedupe by game."""
    games: dict[tuple[str, str, str], Game] = {}
    with SHARED_FILE.open(newline="") as f:
        for row in csv.DictReader(f):
            date, home, away = row["GAME_DATE"], row["home.TEAM_ABBREVIATION"], row["away.TEAM_ABBREVIATION"]
            try:
                home_pts, away_pts = int(float(row["home.PTS"])), int(float(row["away.PTS"]))
                day = dt.date.fromisoformat(date)
            except ValueError:
                continue
            if not home or not away or home_pts <= 0 or away_pts <= 0 or home_pts == away_pts:
                continue
            games[(date, home, away)] = final(day, home, away, home_pts, away_pts)
    return list(games.values())


@pytest.fixture(scope="module")
def shared_games() -> list[Game]:
    if not SHARED_FILE.exists():
        pytest.skip(f"shared history not found at {SHARED_FILE}")
    return load_shared_games()


@pytest.fixture(scope="module", params=["synthetic", "shared"])
def history(request: pytest.FixtureRequest) -> list[Game]:
    """Every leak test runs on synthetic games, and on the real history when it is beside the checkout."""
    if request.param == "synthetic":
        return synthetic_games()
    return request.getfixturevalue("shared_games")


def rows_by_id(games: list[Game]) -> dict[str, list[float]]:
    table = build_features(games)
    return dict(zip(table.game_ids, table.rows, strict=True))


def by_day(games: list[Game]) -> Iterator[tuple[dt.date, list[Game]]]:
    days: dict[dt.date, list[Game]] = {}
    for g in games:
        days.setdefault(g.game_date, []).append(g)
    yield from sorted(days.items())


# ---- names ----------------------------------------------------------------------------------------


def test_given_the_feature_lists_then_seed_has_19_and_names_add_elo_after_them() -> None:
    assert len(SEED_FEATURES) == 19
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES) > 19
    assert FEATURE_NAMES[:19] == SEED_FEATURES
    assert "elo_diff" in FEATURE_NAMES[19:]


# ---- leakage ----------------------------------------------------------------------------------------


def test_given_history_cut_at_several_dates_when_rebuilt_then_every_earlier_game_has_the_same_features(
    history: list[Game],
) -> None:
    full = rows_by_id(history)
    dates = sorted({g.game_date for g in history})
    for cut in (dates[len(dates) // 7], dates[len(dates) // 2], dates[-len(dates) // 5], dates[-1]):
        # When only the games before the cut exist
        prefix = rows_by_id([g for g in history if g.game_date < cut])
        # Then each of their features is exactly what the full build gave
        assert prefix
        for game_id, row in prefix.items():
            assert row == full[game_id], game_id


def test_given_a_changed_score_then_no_feature_on_or_before_its_date_changes_but_later_ones_do(
    history: list[Game],
) -> None:
    full = rows_by_id(history)
    ordered = sorted(history, key=lambda g: (g.game_date, g.game_id))
    for target in (ordered[len(ordered) // 3], ordered[2 * len(ordered) // 3]):
        # When the target game's result is flipped
        flipped = final(target.game_date, target.home, target.away, target.away_score, target.home_score)  # type: ignore[arg-type]
        changed = rows_by_id([flipped if g.game_id == target.game_id else g for g in history])
        # Then the game itself and everything on or before its date are unchanged ...
        for g in ordered:
            if g.game_date <= target.game_date:
                assert changed[g.game_id] == full[g.game_id], g.game_id
        # ... while the result does reach later games (the check above is not vacuous)
        assert any(changed[g.game_id] != full[g.game_id] for g in ordered if g.game_date > target.game_date)


def test_given_a_game_then_its_row_is_what_the_state_of_the_days_before_says() -> None:
    # Given a league history and one game in its middle
    games = synthetic_games(seasons=(2018,), days=10)
    target = games[27]
    # When its row is built with the whole history, and asked of a state holding only earlier dates
    with_it = rows_by_id(games)[target.game_id]
    state = build_features([g for g in games if g.game_date < target.game_date]).state
    assert state is not None
    # Then they are the same: the row cannot see the game itself, nor anything of its date
    assert with_it == state.features(target.home, target.away, target.game_date)


def test_given_two_games_on_the_same_date_then_neither_sees_the_other() -> None:
    day = dt.date(2021, 11, 1)
    first = final(day, "BOS", "LAL", 120, 90)
    second = final(day, "LAL", "MIA", 100, 99)  # LAL plays twice on one date: a feed defect
    table = build_features([first, second])
    assert table.rows[table.game_ids.index(second.game_id)] == LeagueState().features("LAL", "MIA", day)


# ---- incremental ----------------------------------------------------------------------------------------


def test_given_daily_batches_then_state_and_features_equal_one_rebuild() -> None:
    games = synthetic_games()
    full = build_features(games)
    state = LeagueState()
    rows: dict[str, list[float]] = {}
    for day, batch in by_day(games):
        # Given the state of every day before, the day's features are computed first
        for g in batch:
            rows[g.game_id] = state.features(g.home, g.away, day)
        # When the day's results arrive
        state = update_state(state, batch)
    # Then the stored state and every row match the rebuild
    assert full.state is not None
    assert state.to_dict() == full.state.to_dict()
    assert rows == dict(zip(full.game_ids, full.rows, strict=True))


def test_given_the_shared_history_in_daily_batches_across_a_season_boundary_then_state_equals_rebuild(
    shared_games: list[Game],
) -> None:
    games = [g for g in shared_games if g.season in (2019, 2020)]
    full = build_features(games)
    state = LeagueState()
    for _, batch in by_day(games):
        update_state(state, batch)
    assert full.state is not None
    assert state.to_dict() == full.state.to_dict()


def test_given_a_late_game_of_the_latest_date_then_state_equals_rebuild() -> None:
    games = synthetic_games(seasons=(2018,), days=5)
    last_day = max(g.game_date for g in games)
    late = next(g for g in games if g.game_date == last_day)
    # Given the state was updated without one game of its own date
    state = update_state(LeagueState(), [g for g in games if g is not late])
    # When that game arrives the next morning, with the whole day redelivered
    update_state(state, [g for g in games if g.game_date == last_day])
    # Then it counts once, exactly as if it had been there all along
    assert state.to_dict() == build_features(games).state.to_dict()  # type: ignore[union-attr]


def test_given_a_game_older_than_the_state_then_the_update_is_refused_and_the_state_untouched() -> None:
    games = synthetic_games(seasons=(2018,), days=5)
    state = build_features(games).state
    assert state is not None
    before = state.to_dict()
    older = final(dt.date(2018, 10, 21), "BOS", "LAL", 100, 90)
    newer = final(dt.date(2018, 12, 1), "BOS", "LAL", 100, 90)
    with pytest.raises(ValueError, match="older"):
        update_state(state, [newer, older])
    with pytest.raises(ValueError, match="older"):
        state.update(older)
    assert state.to_dict() == before


def test_given_a_game_not_final_then_update_refuses_it_and_update_state_skips_it() -> None:
    scheduled = Game.create(
        game_date=dt.date(2022, 1, 3), home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="test"
    )
    with pytest.raises(ValueError, match="final"):
        LeagueState().update(scheduled)
    assert update_state(LeagueState(), [scheduled]).to_dict() == LeagueState().to_dict()


# ---- storage ----------------------------------------------------------------------------------------


def test_given_a_built_state_when_stored_as_json_and_loaded_then_it_is_the_same_state() -> None:
    games = synthetic_games()
    state = build_features(games).state
    assert state is not None
    stored = json.dumps(state.to_dict())
    loaded = LeagueState.from_dict(json.loads(stored))
    assert loaded.to_dict() == state.to_dict()
    assert loaded.as_of == state.as_of
    day = dt.date(2020, 1, 2)
    for home, away in (("BOS", "LAL"), ("MIA", "DEN"), ("GSW", "CHA")):
        assert loaded.features(home, away, day) == state.features(home, away, day)
    # And it keeps updating exactly like the original
    more = [final(day, "BOS", "LAL", 101, 99)]
    assert update_state(loaded, more).to_dict() == update_state(state, more).to_dict()


def test_given_a_stored_state_of_an_unknown_format_then_loading_refuses_it() -> None:
    data = LeagueState().to_dict()
    data["format"] = 999
    with pytest.raises(ValueError, match="format"):
        LeagueState.from_dict(data)


# ---- sanity ----------------------------------------------------------------------------------------


def test_given_a_team_that_won_everything_then_its_win_pct_is_near_one() -> None:
    start = dt.date(2021, 10, 20)
    opponents = [t for t in TEAMS if t != "BOS"]
    games = [final(start + dt.timedelta(days=2 * i), "BOS", opponents[i % 29], 120, 100) for i in range(60)]
    state = build_features(games).state
    assert state is not None
    row = state.features("BOS", "LAL", dt.date(2022, 3, 1))
    assert row[COL["home_win_pct"]] > 0.9
    assert row[COL["home_last5_wins"]] == 5.0
    assert row[COL["home_ppg"]] > row[COL["home_papg"]]
    assert row[COL["home_ortg"]] > 100.0 > row[COL["home_drtg"]]


def test_given_a_new_season_then_the_first_game_is_not_extreme() -> None:
    # Given a team that won its only game of the season, and a team that lost its only one
    day = dt.date(2021, 10, 20)
    state = build_features([final(day, "BOS", "LAL", 130, 80)]).state
    assert state is not None
    row = state.features("BOS", "LAL", day + dt.timedelta(days=2))
    # Then the early-season blend keeps them well inside (0, 1)
    assert 0.5 < row[COL["home_win_pct"]] < 0.7
    assert 0.3 < row[COL["away_win_pct"]] < 0.5


def test_given_a_back_to_back_then_rest_is_one_and_a_season_opener_gets_the_cap() -> None:
    day = dt.date(2021, 11, 1)
    state = build_features([final(day, "BOS", "LAL", 100, 90), final(day - dt.timedelta(days=30), "MIA", "LAL", 1, 2)])
    row = state.state.features("BOS", "MIA", day + dt.timedelta(days=1))  # type: ignore[union-attr]
    assert row[COL["home_rest_days"]] == 1.0
    assert row[COL["away_rest_days"]] == REST_CAP
    # a team that has not played this season (its last game was last season) gets the cap too
    next_season = state.state.features("BOS", "LAL", dt.date(2022, 10, 19))  # type: ignore[union-attr]
    assert next_season[COL["home_rest_days"]] == next_season[COL["away_rest_days"]] == REST_CAP
    # and a long break inside a season is capped
    long_break = state.state.features("BOS", "MIA", day + dt.timedelta(days=12))  # type: ignore[union-attr]
    assert long_break[COL["home_rest_days"]] == REST_CAP == 7


def test_given_meetings_at_both_venues_then_h2h_is_seen_from_the_home_team() -> None:
    d = dt.date(2021, 11, 1)
    games = [
        final(d, "BOS", "LAL", 110, 100),  # BOS +10
        final(d + dt.timedelta(days=5), "LAL", "BOS", 104, 100),  # BOS -4
        final(d + dt.timedelta(days=9), "LAL", "BOS", 90, 102),  # BOS +12
        final(d + dt.timedelta(days=9), "MIA", "DEN", 90, 102),  # not a meeting
    ]
    state = build_features(games).state
    assert state is not None
    day = d + dt.timedelta(days=20)
    bos_home = state.features("BOS", "LAL", day)
    assert bos_home[COL["h2h_home_wins"]] == 2.0
    assert bos_home[COL["h2h_home_losses"]] == 1.0
    assert bos_home[COL["h2h_avg_margin"]] == pytest.approx(6.0)
    lal_home = state.features("LAL", "BOS", day)
    assert (lal_home[COL["h2h_home_wins"]], lal_home[COL["h2h_home_losses"]]) == (1.0, 2.0)
    assert lal_home[COL["h2h_avg_margin"]] == pytest.approx(-6.0)
    assert state.features("BOS", "MIA", day)[COL["h2h_home_wins"] : COL["h2h_avg_margin"] + 1] == [0.0, 0.0, 0.0]


def test_given_no_injury_source_then_injury_impact_is_neutral_and_a_provider_plugs_in() -> None:
    games = synthetic_games(seasons=(2018,), days=5)
    table = build_features(games)
    assert {row[COL["home_injury_impact"]] for row in table.rows} == {0.0}
    assert {row[COL["away_injury_impact"]] for row in table.rows} == {0.0}

    class OneInjury:
        def impact(self, team: str, day: dt.date) -> float:
            return 2.5 if team == "LAL" else 0.0

    row = LeagueState(injuries=OneInjury()).features("BOS", "LAL", dt.date(2022, 1, 1))
    assert (row[COL["home_injury_impact"]], row[COL["away_injury_impact"]]) == (0.0, 2.5)


def test_given_a_game_then_elo_is_zero_sum_and_the_winner_gains() -> None:
    day = dt.date(2021, 11, 1)
    state = LeagueState()
    state.update(final(day, "BOS", "LAL", 90, 100))
    after = dt.date(2021, 11, 2)
    bos, lal = state.elo("BOS", after), state.elo("LAL", after)
    assert bos + lal == pytest.approx(2 * 1505.0)
    assert lal > 1505.0 > bos
    assert state.features("BOS", "LAL", after)[COL["elo_diff"]] == pytest.approx(bos - lal)
    # And an even matchup favours the home team through the home advantage
    assert elo_probability(0.0) == pytest.approx(0.64, abs=0.005)


def test_given_a_new_season_then_elo_carries_three_quarters_over() -> None:
    state = LeagueState()
    state.update(final(dt.date(2021, 11, 1), "BOS", "LAL", 130, 90))
    gap = state.elo("BOS", dt.date(2022, 4, 1)) - 1505.0
    assert state.elo("BOS", dt.date(2022, 10, 20)) - 1505.0 == pytest.approx(0.75 * gap)


def test_given_a_playoff_game_then_it_moves_elo_and_rest_but_no_regular_season_figure_nor_row() -> None:
    day = dt.date(2022, 4, 20)
    regular = final(day - dt.timedelta(days=10), "BOS", "LAL", 100, 90)
    playoff = final(day, "LAL", "BOS", 120, 90, stage=Stage.PLAYOFFS)
    table = build_features([regular, playoff])
    assert table.game_ids == [regular.game_id]
    state = table.state
    assert state is not None
    only_regular = build_features([regular]).state
    assert only_regular is not None
    after, before = (
        state.features("BOS", "LAL", day + dt.timedelta(days=1)),
        only_regular.features("BOS", "LAL", day + dt.timedelta(days=1)),
    )
    assert after[COL["home_rest_days"]] == 1.0
    assert after[COL["elo_diff"]] < before[COL["elo_diff"]]
    for name in ("home_win_pct", "home_ppg", "home_ortg", "home_last5_wins", "h2h_home_wins", "h2h_avg_margin"):
        assert after[COL[name]] == before[COL[name]], name


def test_given_the_shared_history_then_features_are_finite_and_ratings_centre_on_100(
    shared_games: list[Game],
) -> None:
    table = build_features(shared_games)
    assert len(table.rows) == len({g.game_id for g in shared_games})
    assert all(len(row) == len(FEATURE_NAMES) for row in table.rows)
    assert all(v == v and abs(v) < 1e6 for row in table.rows for v in row)
    ortg = [row[COL["home_ortg"]] for row in table.rows]
    assert 95.0 < sum(ortg) / len(ortg) < 105.0
    assert table.labels == [
        1 if g.home_score > g.away_score else 0 for g in sorted(shared_games, key=lambda g: (g.game_date, g.game_id))
    ]  # type: ignore[operator]
