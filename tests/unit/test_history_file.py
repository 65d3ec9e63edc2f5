"""Data-contract tests of the historical CSV feed: every defect kind is found, counted and kept out.

The shared file's counts are pinned: if the file or the parser changes, this says exactly how.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from nbaml.games.defects import DefectKind, DefectReport
from nbaml.games.feeds.base import GameFeed, RawPayload
from nbaml.games.feeds.history_file import HistoryFileFeed, load_games, parse_rows
from nbaml.games.records import GameStatus, Stage
from nbaml.games.teams import league_time

SHARED_FILE = Path(__file__).resolve().parents[2].parent / "shared/data/nba_games_2009_2023.csv"
needs_shared_file = pytest.mark.skipif(not SHARED_FILE.exists(), reason=f"shared data file absent: {SHARED_FILE}")

HEADER = (
    "SEASON_ID,GAME_DATE,home.TEAM_ABBREVIATION,home.TEAM_NAME,home.PTS,"
    "away.TEAM_ABBREVIATION,away.TEAM_NAME,away.PTS,home.WL\n"
)
GOOD = "2023,2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,W\n"
OTHER = "2023,2024-01-05,MIA,Miami Heat,99.0,NYK,New York Knicks,104.0,L\n"

# The shared file, as found (see the module docstring of history_file for what each defect is).
PINNED_DEFECTS = {
    DefectKind.DUPLICATE_IDENTICAL: 1230,
    DefectKind.SEASON_LABEL_MISMATCH: 1230,
    DefectKind.MISSING_FIELD: 5,
    DefectKind.UNPLAYED_ZERO_SCORE: 1,
}
PINNED_ROWS = 17894
PINNED_CLEAN_GAMES = 16658


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "games.csv"
    path.write_text(HEADER + "".join(rows))
    return path


# --- the shared file ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_batch():
    return load_games(SHARED_FILE)


@needs_shared_file
def test_given_the_shared_file_when_loaded_then_defect_counts_match_the_pins(shared_batch) -> None:
    counts = {kind: n for kind, n in shared_batch.defects.counts.items() if n}
    assert counts == PINNED_DEFECTS
    assert len(shared_batch.games) == PINNED_CLEAN_GAMES


@needs_shared_file
def test_given_the_shared_file_then_every_row_is_a_clean_game_or_a_rejected_row(shared_batch) -> None:
    # Given: the file's data rows, and the row parser run over them with a report of its own
    rows = len(SHARED_FILE.read_text().splitlines()) - 1
    payload = RawPayload(source="test", key="games.csv", body=SHARED_FILE.read_bytes(), content_type="text/csv")
    row_defects = DefectReport()
    kept = parse_rows(payload, row_defects)
    # Then: each row was either kept (once, at its own line) or counted as a rejection by the parser; the label
    # defect keeps its rows (they are then repeats), so it is not a rejection
    rejected_rows = sum(n for kind, n in row_defects.counts.items() if kind is not DefectKind.SEASON_LABEL_MISMATCH)
    kept_lines = {where for _, where in kept}
    assert len(kept_lines) == len(kept)
    assert len(kept) + rejected_rows == rows == PINNED_ROWS
    # and each kept row is a clean game or counted by the cross-row checks (duplicates, a team twice on a date)
    cross_row = {kind: n - row_defects.count(kind) for kind, n in shared_batch.defects.counts.items()}
    dropped = sum(n for kind, n in cross_row.items() if kind is not DefectKind.SEASON_LABEL_MISMATCH)
    assert len(shared_batch.games) + dropped == len(kept)


@needs_shared_file
def test_given_the_shared_file_then_clean_seasons_have_their_real_sizes(shared_batch) -> None:
    per_season = Counter(g.season for g in shared_batch.games)
    # 82-game seasons, the 66-game lockout (2011), the bubble (2019), the 72-game 2020 season; 2012 lost
    # Celtics-Pacers (cancelled after the Boston Marathon bombing); 2022 appears once despite its copy.
    assert per_season == {
        **{s: 1230 for s in (2009, 2010, 2013, 2014, 2015, 2016, 2017, 2018, 2021, 2022)},
        2011: 990, 2012: 1229, 2019: 1059, 2020: 1080,
    }  # fmt: skip
    assert all(g.status is GameStatus.FINAL and g.stage is Stage.REGULAR for g in shared_batch.games)
    assert len({g.game_id for g in shared_batch.games}) == len(shared_batch.games)


@needs_shared_file
def test_given_the_shared_file_then_the_examples_point_at_the_rows(shared_batch) -> None:
    examples = shared_batch.defects.examples
    assert examples[DefectKind.UNPLAYED_ZERO_SCORE][0].where.endswith(":4665")
    assert "BOS 0-0 IND" in examples[DefectKind.UNPLAYED_ZERO_SCORE][0].reason
    assert examples[DefectKind.MISSING_FIELD][0].where.endswith(":17891")
    assert "SEASON_ID '2023'" in examples[DefectKind.SEASON_LABEL_MISMATCH][0].reason


@needs_shared_file
def test_given_a_window_when_fetched_and_parsed_then_only_its_rows_come_back_byte_for_byte() -> None:
    feed = HistoryFileFeed(SHARED_FILE)

    payloads = feed.fetch_raw(dt.date(2023, 4, 9), dt.date(2023, 4, 9))

    assert len(payloads) == 1
    lines = payloads[0].body.decode().splitlines(keepends=True)
    assert lines[0] == HEADER
    assert len(lines) == 1 + 2 * 15  # the day's 15 games, twice (the 2022 and the 2023 copy)
    assert all(line in SHARED_FILE.read_text() for line in lines)
    batch = feed.parse(payloads)
    assert len(batch.games) == 15
    assert batch.defects.count(DefectKind.DUPLICATE_IDENTICAL) == 15


@needs_shared_file
def test_given_a_real_day_when_scheduled_then_its_clean_games_come_unscored() -> None:
    feed = HistoryFileFeed(SHARED_FILE)
    assert isinstance(feed, GameFeed)

    before = feed.schedule(dt.date(2013, 4, 16))

    assert before, "2013-04-16 had games"
    assert all(g.status is GameStatus.SCHEDULED and g.home_score is None for g in before)
    assert "20130416-IND-BOS" not in {g.game_id for g in before}  # the game that was never played
    assert feed.schedule(dt.date(2013, 7, 1)) == []


# --- one tiny file per defect kind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        (",2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MISSING_FIELD),
        ("2023,,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MISSING_FIELD),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,\n", DefectKind.MISSING_FIELD),
        ("2023,2024-01-05,,,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MISSING_FIELD),
        ("2023,2024-01-05,BOS,Boston Celtics,,LAL,Los Angeles Lakers,,W\n", DefectKind.FINAL_WITHOUT_SCORE),
        ("2023,2024-01-05,SPR,Springfield Isotopes,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.UNKNOWN_TEAM),
        ("2023,2024-01-05,BOS,Miami Heat,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.UNKNOWN_TEAM),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0,BOS,Boston Celtics,101.0,W\n", DefectKind.SAME_TEAM_BOTH_SIDES),
        ("2023,2024-01-05,BOS,Boston Celtics,0.0,LAL,Los Angeles Lakers,0.0,\n", DefectKind.UNPLAYED_ZERO_SCORE),
        ("2023,2024-01-05,BOS,Boston Celtics,0.0,LAL,Los Angeles Lakers,98.0,L\n", DefectKind.UNPLAYED_ZERO_SCORE),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,L\n", DefectKind.WINNER_LABEL_MISMATCH),
        ("2023,05/01/2024,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,abc,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,110.5,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,101.0,LAL,Los Angeles Lakers,101.0,W\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,X\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0\n", DefectKind.MALFORMED),
        ("2023,2024-01-05,BOS,Boston Celtics,110.0,LAL,Los Angeles Lakers,101.0,W,extra\n", DefectKind.MALFORMED),
    ],
)
def test_given_a_bad_row_when_loaded_then_it_is_counted_under_its_kind_and_skipped(
    tmp_path: Path, row: str, kind: DefectKind
) -> None:
    batch = load_games(_csv(tmp_path, OTHER, row))

    assert [g.game_id for g in batch.games] == ["20240105-NYK-MIA"]
    assert {k: n for k, n in batch.defects.counts.items() if n} == {kind: 1}
    assert batch.defects.examples[kind][0].where.endswith(":3")


def test_given_an_identical_repeat_when_loaded_then_one_copy_is_kept(tmp_path: Path) -> None:
    batch = load_games(_csv(tmp_path, GOOD, OTHER, GOOD))

    assert len(batch.games) == 2
    assert batch.defects.counts == {DefectKind.DUPLICATE_IDENTICAL: 1}
    assert batch.defects.examples[DefectKind.DUPLICATE_IDENTICAL][0].where.startswith("file/games.csv:4")


def test_given_a_repeat_with_another_score_when_loaded_then_every_copy_is_dropped(tmp_path: Path) -> None:
    changed = GOOD.replace("110.0", "111.0")

    batch = load_games(_csv(tmp_path, GOOD, OTHER, changed))

    assert [g.home for g in batch.games] == ["MIA"]
    assert batch.defects.counts == {DefectKind.DUPLICATE_CONFLICTING: 2}


def test_given_a_team_in_two_games_on_one_date_when_loaded_then_both_are_dropped(tmp_path: Path) -> None:
    second = "2023,2024-01-05,LAL,Los Angeles Lakers,120.0,PHX,Phoenix Suns,101.0,W\n"

    batch = load_games(_csv(tmp_path, GOOD, OTHER, second))

    assert [g.home for g in batch.games] == ["MIA"]
    assert batch.defects.counts == {DefectKind.TEAM_TWICE_ON_DATE: 2}


def test_given_an_end_year_label_when_loaded_then_counted_but_kept_with_the_dates_season(tmp_path: Path) -> None:
    end_year = GOOD.replace("2023,", "2024,", 1)

    batch = load_games(_csv(tmp_path, end_year))

    assert [(g.game_id, g.season) for g in batch.games] == [("20240105-LAL-BOS", 2023)]
    assert batch.defects.counts == {DefectKind.SEASON_LABEL_MISMATCH: 1}


def test_given_historical_names_when_loaded_then_they_map_to_todays_franchises(tmp_path: Path) -> None:
    row = "2010,2011-01-05,NJN,New Jersey Nets,99.0,NOH,New Orleans Hornets,95.0,W\n"

    batch = load_games(_csv(tmp_path, row))

    assert [(g.home, g.away, g.home_score, g.away_score) for g in batch.games] == [("BKN", "NOP", 99, 95)]
    assert batch.defects.total == 0


def test_given_a_file_without_the_expected_columns_when_loaded_then_one_malformed_defect(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("date,home,away\n2024-01-05,BOS,LAL\n")

    batch = load_games(path)

    assert batch.games == []
    assert batch.defects.counts == {DefectKind.MALFORMED: 1}


def test_given_an_empty_or_binary_file_when_loaded_then_it_never_raises(tmp_path: Path) -> None:
    empty, binary = tmp_path / "empty.csv", tmp_path / "binary.csv"
    empty.write_bytes(b"")
    binary.write_bytes(HEADER.encode() + b"\xff\xfe\x00garbage,\x81\n")

    assert load_games(empty).games == []
    assert load_games(binary).defects.total == 1


def test_given_a_tiny_file_when_fetched_over_a_window_then_rows_outside_and_undated_are_left_out(
    tmp_path: Path,
) -> None:
    later = "2023,2024-01-07,MIA,Miami Heat,99.0,NYK,New York Knicks,104.0,L\n"
    undated = ",,,,,LAL,Los Angeles Lakers,99.0,\n"
    feed = HistoryFileFeed(_csv(tmp_path, GOOD, later, undated))

    (payload,) = feed.fetch_raw(dt.date(2024, 1, 5), dt.date(2024, 1, 6))

    assert payload.source == "file"
    assert payload.content_type == "text/csv"
    assert payload.key == "file/games/2024-01-05_2024-01-06.csv"
    assert payload.body == (HEADER + GOOD).encode()


def test_given_a_dates_only_file_then_each_game_starts_at_the_home_teams_local_1930(tmp_path: Path) -> None:
    warriors_home = "2023,2024-01-05,GSW,Golden State Warriors,120.0,DEN,Denver Nuggets,114.0,W\n"
    games = {g.home: g for g in load_games(_csv(tmp_path, GOOD, warriors_home)).games}
    assert games["BOS"].tip_off == dt.datetime(2024, 1, 6, 0, 30, tzinfo=dt.UTC)  # 19:30 Eastern
    assert games["GSW"].tip_off == dt.datetime(2024, 1, 6, 3, 30, tzinfo=dt.UTC)  # 19:30 Pacific, 22:30 Eastern
    assert all(g.game_date == dt.date(2024, 1, 5) for g in games.values())


def test_given_a_moment_of_the_night_when_fetched_then_games_not_ended_by_then_come_without_a_result(
    tmp_path: Path,
) -> None:
    # Given Boston (19:30 Eastern, final by 22:15) and Golden State at home (22:30 Eastern, final by 01:15)
    warriors_home = "2023,2024-01-05,GSW,Golden State Warriors,120.0,DEN,Denver Nuggets,114.0,W\n"
    feed = HistoryFileFeed(_csv(tmp_path, GOOD, warriors_home))
    day = dt.date(2024, 1, 5)
    # When asked at 23:00 Eastern, and at 03:00 Eastern the next morning
    (late,) = feed.fetch_raw(day, day, as_of=league_time(day, dt.time(23)))
    (morning,) = feed.fetch_raw(day, day, as_of=league_time(day + dt.timedelta(days=1), dt.time(3)))
    # Then the late game is listed without points nor W/L (and parses as scheduled, no defect); Boston's row
    # is the file's byte for byte; by the morning every row is
    assert late.body == (HEADER + GOOD + "2023,2024-01-05,GSW,Golden State Warriors,,DEN,Denver Nuggets,,\n").encode()
    batch = feed.parse([late])
    assert {g.home: g.status for g in batch.games} == {"BOS": GameStatus.FINAL, "GSW": GameStatus.SCHEDULED}
    assert batch.defects.total == 0
    assert morning.body == (HEADER + GOOD + warriors_home).encode()
