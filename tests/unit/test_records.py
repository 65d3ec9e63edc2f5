"""Code tests of the clean game record: what makes a Game valid, and how id and season are derived."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from nbaml.games.records import Game, GameStatus, Stage, game_id_for, season_of


@pytest.mark.parametrize(
    ("day", "season"),
    [
        (dt.date(2022, 10, 18), 2022),
        (dt.date(2023, 4, 9), 2022),
        (dt.date(2023, 9, 30), 2022),
        (dt.date(2011, 12, 25), 2011),  # lockout season started at Christmas
        (dt.date(2020, 8, 14), 2019),  # bubble
        (dt.date(2020, 10, 11), 2019),  # bubble finals ran into October 2020
        (dt.date(2020, 12, 22), 2020),
    ],
)
def test_given_a_date_when_season_of_then_it_is_the_start_year(day: dt.date, season: int) -> None:
    assert season_of(day) == season


def test_given_date_and_teams_when_game_id_for_then_it_is_date_away_home() -> None:
    assert game_id_for(dt.date(2024, 1, 5), "BOS", "LAL") == "20240105-LAL-BOS"


def test_given_a_final_game_when_created_then_id_and_season_are_derived() -> None:
    game = Game.create(
        game_date=dt.date(2024, 1, 5), home="BOS", away="LAL", status=GameStatus.FINAL,
        source="file", home_score=110, away_score=101,
    )  # fmt: skip
    assert game.game_id == "20240105-LAL-BOS"
    assert game.season == 2023
    assert game.stage is Stage.REGULAR
    assert game.home_won is True


def test_given_a_scheduled_game_then_it_has_no_winner_yet() -> None:
    game = Game.create(game_date=dt.date(2024, 1, 5), home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="x")
    assert game.home_won is None
    assert not game.is_final


@pytest.mark.parametrize(
    "changes",
    [
        {"away": "BOS"},  # plays itself
        {"home_score": None},  # final without a score
        {"away_score": 110},  # tie
        {"home_score": -1},
        {"home": "XXX"},  # unknown team
    ],
)
def test_given_an_inconsistent_record_when_built_then_validation_fails(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "game_date": dt.date(2024, 1, 5), "home": "BOS", "away": "LAL", "status": GameStatus.FINAL,
        "source": "file", "home_score": 110, "away_score": 101,
    }  # fmt: skip
    fields.update(changes)
    with pytest.raises(ValidationError):
        Game.create(**fields)  # type: ignore[arg-type]


def test_given_a_season_or_id_not_derived_from_the_date_then_validation_fails() -> None:
    good = Game.create(game_date=dt.date(2024, 1, 5), home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="x")
    with pytest.raises(ValidationError):
        Game(**{**good.model_dump(), "season": 2024})
    with pytest.raises(ValidationError):
        Game(**{**good.model_dump(), "game_id": "20240105-BOS-LAL"})


def test_given_a_game_then_it_is_frozen() -> None:
    game = Game.create(game_date=dt.date(2024, 1, 5), home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="x")
    with pytest.raises(ValidationError):
        game.home_score = 3  # type: ignore[misc]


def _game(**fields: object) -> Game:
    return Game.create(
        game_date=dt.date(2024, 1, 5), home="LAL", away="BOS", status=GameStatus.SCHEDULED, source="t", **fields
    )


def test_given_a_tip_off_then_it_is_kept_in_utc_and_must_fall_on_the_games_eastern_date() -> None:
    # 19:30 Pacific on Jan 5 is 03:30 UTC on Jan 6, and still Jan 5 in the East
    pacific = dt.datetime(2024, 1, 5, 19, 30, tzinfo=ZoneInfo("America/Los_Angeles"))
    game = _game(tip_off=pacific)
    assert game.tip_off == dt.datetime(2024, 1, 6, 3, 30, tzinfo=dt.UTC) and game.tip_off.tzinfo is dt.UTC
    with pytest.raises(ValidationError, match="not on 2024-01-05"):
        _game(tip_off=dt.datetime(2024, 1, 6, 12, tzinfo=dt.UTC))
    with pytest.raises(ValidationError, match="time zone"):
        _game(tip_off=dt.datetime(2024, 1, 5, 19, 30))


def test_given_a_record_stored_before_tip_offs_then_it_still_reads_and_is_pending_until_final() -> None:
    old = _game().model_dump(mode="json")
    old.pop("tip_off")
    game = Game.model_validate(old)
    assert game.tip_off is None and game.is_pending and not game.is_final
    assert Game.model_validate_json(game.model_dump_json()) == game
