"""The collect job on moto: archive before parse, idempotent upserts, state equal to a rebuild, outcomes joined."""

from __future__ import annotations

import datetime as dt

import pytest

from nbaml import layout
from nbaml.collect import collect_recent_games
from nbaml.config import CollectSettings, load_settings
from nbaml.errors import FeedError
from nbaml.features import build_features
from nbaml.games.feeds.base import FeedBatch, RawPayload
from nbaml.games.history import GameHistory
from nbaml.games.teams import league_time
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
from nbaml.storage.predictions import PredictionLog
from tests.conftest import prediction_of


def run_date_after(games, days_into_season: int) -> dt.date:
    return games[0].game_date + dt.timedelta(days=days_into_season)


def collect(settings, run_date: dt.date, feed):
    """collect as its schedule runs it: 03:00 Eastern on ``run_date``."""
    return collect_recent_games(settings, at=league_time(run_date, dt.time(3)), feed=feed)


def test_given_a_day_when_collected_twice_then_the_second_run_changes_nothing(stack, league) -> None:
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    run_date = run_date_after(season, 10)
    first = collect(settings, run_date, league)
    again = collect(settings, run_date, league)
    window = [g for g in season if run_date - dt.timedelta(days=7) <= g.game_date < run_date]
    today = [g for g in season if g.game_date == run_date]
    assert first.final_games == len(window) > 0 and today
    assert first.upserts["inserted"] == len(window) + len(today)  # today's schedule too, not final yet
    assert again.upserts == {"inserted": 0, "updated": 0, "unchanged": len(window) + len(today)}
    assert again.training_added == 0 and again.state == "unchanged"
    assert first.payloads == 8
    raw = list(ArtifactStore(stack.bucket).keys(layout.raw_prefix(layout.collect_batch(run_date))))
    assert len(raw) == 8, "every payload is archived before parsing"


def test_given_daily_collects_when_compared_with_a_rebuild_then_the_state_is_the_same(stack, league) -> None:
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    start = run_date_after(season, 1)
    for offset in range(0, 21):
        collect(settings, start + dt.timedelta(days=offset), league)
    history = GameHistory(ArtifactStore(stack.bucket))
    stored = history.games()
    expected = [g for g in season if g.game_date < start + dt.timedelta(days=20)]
    assert [g.game_id for g in stored] == [g.game_id for g in expected]
    assert history.load_state().to_dict() == build_features(expected).state.to_dict()


def test_given_a_state_stored_in_an_older_format_when_collected_then_it_is_rebuilt_from_the_stored_games(
    stack, league
) -> None:
    # Given: a collected window, then its stored state rewritten as an older release left it
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    run_date = run_date_after(season, 10)
    collect_recent_games(settings, at=league_time(run_date, dt.time(3)), feed=league)
    store = ArtifactStore(stack.bucket)
    old = {**store.get_json(layout.LEAGUE_STATE), "format": 1}
    store.put_json(layout.LEAGUE_STATE, old)
    # When: the next day is collected
    report = collect_recent_games(settings, at=league_time(run_date + dt.timedelta(days=1), dt.time(3)), feed=league)
    # Then: the state is rebuilt (not a crash, not a merge into a state whose numbers mean something else)
    history = GameHistory(store)
    assert report.state == "rebuilt"
    assert history.load_state().to_dict() == build_features(history.games()).state.to_dict()


def test_given_predictions_when_their_games_are_collected_then_outcomes_are_joined(stack, league) -> None:
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    game = season[0]
    log = PredictionLog(settings.predictions_table)
    log.record(prediction_of(game, 0.8))
    report = collect(settings, game.game_date + dt.timedelta(days=1), league)
    assert report.predictions_resolved == 1
    (item,) = log.for_game(game.game_id)
    assert item["home_won"] is game.home_won and item["correct"] is (game.home_won is True)


class BrokenFeed:
    name = "broken"

    def fetch_raw(self, start, end, as_of=None):
        raise FeedError("feed answered 503 after 4 attempts")

    def parse(self, payloads):  # pragma: no cover - never reached
        return FeedBatch()

    def schedule(self, day):  # pragma: no cover
        return []


def test_given_a_failing_feed_when_collect_runs_then_it_raises_and_writes_nothing(stack) -> None:
    settings = load_settings(CollectSettings)
    with pytest.raises(FeedError):
        collect(settings, dt.date(2020, 1, 10), BrokenFeed())
    assert list(ArtifactStore(stack.bucket).keys("")) == []
    assert GameStore(settings.games_table).on_date(dt.date(2020, 1, 9)) == []


class DirtyFeed:
    """A feed whose payload holds one good game and one unknown team: the defect is counted, the game kept."""

    name = "dirty"

    def __init__(self, league) -> None:
        self.league = league

    def fetch_raw(self, start, end, as_of=None):
        return [RawPayload("dirty", "dirty/day.json", b'{"anything": true}', "application/json")]

    def parse(self, payloads):
        from nbaml.games.defects import DefectKind, DefectReport

        defects = DefectReport()
        defects.add(DefectKind.UNKNOWN_TEAM, "dirty/day.json#2", "unknown team 'Seattle Pilots'")
        return FeedBatch(games=self.league.games(2019)[:1], defects=defects)

    def schedule(self, day):  # pragma: no cover
        return []


def test_given_a_bad_row_when_collected_then_it_is_reported_skipped_and_the_raw_payload_kept(stack, league) -> None:
    settings = load_settings(CollectSettings)
    report = collect(settings, dt.date(2019, 11, 1), DirtyFeed(league))
    assert report.defects["counts"]["unknown_team"] == 1
    assert report.final_games == 1
    assert (
        ArtifactStore(stack.bucket).get_bytes(layout.raw_key("2019-11-01", "dirty/day.json")) == b'{"anything": true}'
    )
