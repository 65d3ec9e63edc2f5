"""Game data on the deployed stack: backfill of the shared file, and collect invoked on a scheduled event
through the local runtime (the twin of `sam local invoke`) for each of the three feeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from infra import runtime
from nbaml import layout
from nbaml.backfill import backfill
from nbaml.config import CommonSettings, load_settings
from nbaml.games.feeds.base import RawPayload
from nbaml.games.feeds.history_file import HistoryFileFeed
from nbaml.games.history import GameHistory
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
from tests.conftest import scheduled_event

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"


def scheduled(day: dt.date) -> dict:
    return scheduled_event(day)


@pytest.fixture
def cold(local_stack):
    """Each test configures collect's feed differently: cold-start the function, as a new deploy would."""
    runtime.forget_warm_modules()
    yield
    runtime.forget_warm_modules()


@pytest.mark.skipif(not SHARED.exists(), reason="the shared NBA results are not beside the checkout")
def test_given_the_shared_file_when_backfilled_then_defects_are_counted_and_clean_games_loaded(
    local_stack, cold
) -> None:
    feed = HistoryFileFeed(SHARED)
    payload = RawPayload("file", f"file/{SHARED.name}", feed.read_bytes(), "text/csv")
    with runtime.function_environment(local_stack.operator_env("collect")):  # `nbaml backfill`: an operator's tool
        settings = load_settings(CommonSettings)
        report = backfill(settings, feed, dt.date(2009, 10, 1), dt.date(2023, 4, 30), payloads=[payload])
        history = GameHistory(ArtifactStore(settings.nbaml_bucket))
        stored = history.games()
        raw_keys = [k for k in ArtifactStore(settings.nbaml_bucket).keys(layout.RAW) if k.endswith(SHARED.name)]
    counts = report.defects.as_dict()["counts"]
    assert {k: v for k, v in counts.items() if v} == {
        "duplicate_identical": 1230,
        "season_label_mismatch": 1230,
        "missing_field": 5,
        "unplayed_zero_score": 1,
    }
    assert report.final_games == len(stored) == 16658
    assert report.state_as_of == dt.date(2023, 4, 9)
    assert raw_keys, "the raw file is archived before it is parsed"


def test_given_the_generator_when_collect_is_invoked_on_a_scheduled_event_then_the_days_games_land(
    local_stack, cold
) -> None:
    day = dt.date(2022, 11, 15)
    result = runtime.invoke(local_stack, "collect", scheduled(day), extra_env={"FEED_SOURCE": "generator"})
    assert result["feed"] == "generator" and result["final_games"] > 0
    again = runtime.invoke(local_stack, "collect", scheduled(day), extra_env={"FEED_SOURCE": "generator"})
    assert again["upserts"]["inserted"] == 0 and again["upserts"]["updated"] == 0, "a replayed event changes nothing"


@pytest.mark.skipif(not SHARED.exists(), reason="the shared NBA results are not beside the checkout")
def test_given_the_file_feed_when_collect_is_invoked_then_that_week_of_real_games_lands(local_stack, cold) -> None:
    day = dt.date(2023, 1, 10)
    env = {"FEED_SOURCE": "file", "FEED_FILE": str(SHARED)}
    result = runtime.invoke(local_stack, "collect", scheduled(day), extra_env=env)
    with runtime.function_environment(local_stack.operator_env("collect")):
        games = GameStore(load_settings(CommonSettings).games_table).on_date(dt.date(2023, 1, 9))
    assert result["final_games"] >= 30 and games and all(g.source == "file" for g in games)


def test_given_api_basketball_when_collect_is_invoked_then_it_reads_the_key_and_ingests_the_day(
    local_stack, cold, feed_server, local_tls, aws
) -> None:
    key_param = local_stack.env_for("collect")["FEED_KEY_PARAM"]
    aws("ssm").put_parameter(Name=key_param, Value="local-test-key", Type="SecureString", Overwrite=True)
    item = {
        "id": 4242,
        "date": "2023-01-10T00:30:00+00:00",
        "timezone": "UTC",
        "status": {"long": "Game Finished", "short": "FT"},
        "league": {"id": 12, "season": "2022-2023"},
        "teams": {"home": {"id": 1, "name": "Boston Celtics"}, "away": {"id": 2, "name": "New Jersey Nets"}},
        "scores": {"home": {"total": 110}, "away": {"total": 101}},
    }
    for offset in range(0, 8):  # the seven days before and today's schedule
        day = dt.date(2023, 1, 10) - dt.timedelta(days=offset)
        body = {
            "get": "games",
            "errors": [],
            "results": 1 if offset == 1 else 0,
            "response": [item] if offset == 1 else [],
        }
        feed_server.expect_request(
            "/games",
            query_string={
                "league": "12",
                "season": "2022-2023",
                "date": day.isoformat(),
                "timezone": "America/New_York",
            },
            headers={"x-rapidapi-key": "local-test-key"},
        ).respond_with_json(body)
    env = {
        "FEED_SOURCE": "api-basketball",
        "FEED_BASE_URL": feed_server.url_for("").rstrip("/"),
        "SSL_CERT_FILE": str(local_tls.ca_file),  # the function trusts the local server's certificate
    }
    result = runtime.invoke(local_stack, "collect", scheduled(dt.date(2023, 1, 10)), extra_env=env)
    assert result["feed"] == "api-basketball" and result["final_games"] == 1 and result["payloads"] == 8
    with runtime.function_environment(local_stack.operator_env("collect")):
        game = GameStore(load_settings(CommonSettings).games_table).get("20230109-BKN-BOS")
    assert (game.home, game.away, game.home_score, game.away_score, game.source) == (
        "BOS",
        "BKN",
        110,
        101,
        "api-basketball",
    )
    assert game.tip_off == dt.datetime(2023, 1, 10, 0, 30, tzinfo=dt.UTC)  # its start, 19:30 Eastern on the 9th
    assert result["days"]["2023-01-09"] == {"final": 1, "postponed": 0, "cancelled": 0, "pending": []}
