"""Code tests of defect accounting and of the cross-row checks every feed shares."""

from __future__ import annotations

import datetime as dt
import json

from nbaml.games.defects import DefectKind, DefectReport
from nbaml.games.feeds.base import FeedBatch, GameFeed, RawPayload, day_range, reconcile, unscored
from nbaml.games.records import Game, GameStatus


def _game(day: int, home: str, away: str, home_score: int | None = 100, away_score: int | None = 90, **kw) -> Game:
    status = GameStatus.FINAL if home_score is not None else GameStatus.SCHEDULED
    return Game.create(
        game_date=dt.date(2024, 1, day), home=home, away=away, status=status, source="test",
        home_score=home_score, away_score=away_score, **kw,
    )  # fmt: skip


def test_given_the_brief_then_every_required_kind_exists() -> None:
    required = {
        "duplicate_identical", "duplicate_conflicting", "missing_field", "unknown_team", "team_twice_on_date",
        "unplayed_zero_score", "season_label_mismatch", "final_without_score", "malformed", "same_team_both_sides",
    }  # fmt: skip
    assert required <= {kind.value for kind in DefectKind}


def test_given_defects_when_added_then_counted_per_kind_with_capped_examples() -> None:
    report = DefectReport(max_examples=2)
    for row in range(5):
        report.add(DefectKind.MISSING_FIELD, f"row {row}", "empty GAME_DATE")
    report.add("unknown_team", 7, "unknown team 'XYZ'")

    assert report.count(DefectKind.MISSING_FIELD) == 5
    assert report.count("unknown_team") == 1
    assert report.total == 6
    assert [e.where for e in report.examples[DefectKind.MISSING_FIELD]] == ["row 0", "row 1"]
    assert report.examples[DefectKind.UNKNOWN_TEAM][0].where == "7"


def test_given_garbage_when_added_then_it_never_raises_and_is_counted_as_malformed() -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    report = DefectReport()
    report.add("no_such_kind", Unprintable(), "why")
    report.add(DefectKind.MALFORMED, None, "x", count="many")  # type: ignore[arg-type]
    report.add(DefectKind.MALFORMED, "w", "x", count=0)

    assert report.count(DefectKind.MALFORMED) == 2
    assert report.count("no_such_kind") == 0
    assert "no_such_kind" in report.examples[DefectKind.MALFORMED][0].reason
    assert "unprintable" in report.examples[DefectKind.MALFORMED][0].where


def test_given_two_reports_when_merged_then_counts_add_and_examples_stay_capped() -> None:
    first, second = DefectReport(max_examples=3), DefectReport()
    first.add(DefectKind.MALFORMED, "a", "x")
    first.add(DefectKind.MALFORMED, "b", "x")
    for where in "cde":
        second.add(DefectKind.MALFORMED, where, "y")
    second.add(DefectKind.UNKNOWN_TEAM, "f", "z")

    merged = first.merge(second)

    assert merged is first
    assert merged.count(DefectKind.MALFORMED) == 5
    assert merged.total == 6
    assert [e.where for e in merged.examples[DefectKind.MALFORMED]] == ["a", "b", "c"]


def test_given_a_report_when_as_dict_then_json_ready_with_every_kind_and_round_trips() -> None:
    report = DefectReport()
    report.add(DefectKind.UNPLAYED_ZERO_SCORE, "file:4665", "BOS 0-0 IND")

    data = json.loads(json.dumps(report.as_dict()))

    assert data["total"] == 1
    assert set(data["counts"]) == {kind.value for kind in DefectKind}
    assert data["counts"]["unplayed_zero_score"] == 1
    assert data["examples"] == {"unplayed_zero_score": [{"where": "file:4665", "reason": "BOS 0-0 IND"}]}
    assert DefectReport.from_dict(data).as_dict() == report.as_dict()
    assert DefectReport.from_dict({"counts": "nonsense", "examples": [1]}).total == 0


def test_given_a_report_when_table_then_each_kind_has_a_row_and_a_total() -> None:
    report = DefectReport()
    report.add(DefectKind.DUPLICATE_IDENTICAL, "r", "x", count=1230)

    lines = report.table().splitlines()

    assert any(line.split() == ["duplicate_identical", "1230"] for line in lines)
    assert any(line.split() == ["malformed", "0"] for line in lines)
    assert lines[-1].split() == ["total", "1230"]


def test_given_identical_copies_when_reconciled_then_one_is_kept_and_extras_counted() -> None:
    defects = DefectReport()
    game = _game(5, "BOS", "LAL")
    copy = _game(5, "BOS", "LAL", source_id="other-row")  # the source's row id does not make it different

    clean = reconcile([game, copy, _game(5, "MIA", "NYK"), game], defects)

    assert [g.game_id for g in clean] == ["20240105-LAL-BOS", "20240105-NYK-MIA"]
    assert defects.count(DefectKind.DUPLICATE_IDENTICAL) == 2
    assert defects.total == 2


def test_given_copies_with_different_scores_when_reconciled_then_all_copies_are_dropped() -> None:
    defects = DefectReport()

    clean = reconcile(
        [_game(5, "BOS", "LAL", 100, 90), _game(5, "BOS", "LAL", 90, 100), _game(6, "BOS", "LAL")], defects
    )

    assert [g.game_date.day for g in clean] == [6]
    assert defects.count(DefectKind.DUPLICATE_CONFLICTING) == 2
    assert "100-90" in defects.examples[DefectKind.DUPLICATE_CONFLICTING][0].reason


def test_given_a_team_twice_on_a_date_when_reconciled_then_both_its_games_are_dropped() -> None:
    defects = DefectReport()

    clean = reconcile([_game(5, "BOS", "LAL"), _game(5, "MIA", "BOS"), _game(5, "NYK", "CHI")], defects)

    assert [g.game_id for g in clean] == ["20240105-CHI-NYK"]
    assert defects.count(DefectKind.TEAM_TWICE_ON_DATE) == 2
    assert "BOS" in defects.examples[DefectKind.TEAM_TWICE_ON_DATE][0].reason


def test_given_games_in_any_order_when_reconciled_then_sorted_by_date_then_id() -> None:
    games = [_game(7, "BOS", "LAL"), _game(5, "MIA", "NYK"), _game(5, "BOS", "CHI")]

    clean = reconcile(reversed(games), DefectReport())

    assert [g.game_id for g in clean] == ["20240105-CHI-BOS", "20240105-NYK-MIA", "20240107-LAL-BOS"]


def test_given_a_final_game_when_unscored_then_it_is_scheduled_with_the_same_identity() -> None:
    game = _game(5, "BOS", "LAL", source_id="42")

    before = unscored(game)

    assert before.status is GameStatus.SCHEDULED
    assert (before.home_score, before.away_score) == (None, None)
    assert (before.game_id, before.source_id, before.stage) == (game.game_id, "42", game.stage)


def test_given_a_window_when_day_range_then_it_is_inclusive() -> None:
    assert list(day_range(dt.date(2024, 1, 30), dt.date(2024, 2, 1))) == [
        dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1),
    ]  # fmt: skip
    assert list(day_range(dt.date(2024, 2, 1), dt.date(2024, 1, 31))) == []


def test_given_an_object_with_the_feed_methods_then_it_satisfies_game_feed() -> None:
    class Minimal:
        name = "minimal"

        def fetch_raw(self, start: dt.date, end: dt.date) -> list[RawPayload]:
            return []

        def parse(self, payloads: list[RawPayload]) -> FeedBatch:
            return FeedBatch()

        def schedule(self, day: dt.date) -> list[Game]:
            return []

    assert isinstance(Minimal(), GameFeed)
    assert not isinstance(object(), GameFeed)
