"""What a game is judged by: the last prediction before its tip-off, on complete data; slates refused while an
earlier day is incomplete; matchups off the schedule answered, logged with a TTL, never judged.

One night of the synthetic league on moto: the season's earlier days backfilled, collect at 03:00 Eastern on
the night's day (its games on the schedule, with their tip-offs), and the prediction API on a clock the test
moves (the predictor's ``now``, as the replay's simulated time moves it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nbaml.backfill import load
from nbaml.collect import collect_recent_games
from nbaml.config import CollectSettings, CommonSettings, PredictSettings, load_settings
from nbaml.games.feeds.base import FeedBatch
from nbaml.games.teams import league_time
from nbaml.serving.predictor import HYPOTHETICAL_TTL
from nbaml.storage.predictions import PredictionLog

ONE = dt.timedelta(days=1)


class Night:
    def __init__(self, client: TestClient, log: PredictionLog, day: dt.date, games: list, league: Any) -> None:
        self.client, self.log, self.day, self.games, self.league = client, log, day, games, league
        self.now = league_time(day, dt.time(12))

    def ask(self, games: list, day: dt.date | None = None) -> Any:
        body = {"games": [{"home": g.home, "away": g.away, "date": (day or self.day).isoformat()} for g in games]}
        return self.client.post("/predictions", json=body)

    def items(self, game_id: str) -> list[dict[str, Any]]:
        return self.log.for_game(game_id)

    def collect(self, day: dt.date) -> None:
        collect_recent_games(load_settings(CollectSettings), at=league_time(day, dt.time(3)), feed=self.league)


@pytest.fixture
def night(stack, loaded_history, registered_versions, league, monkeypatch) -> Night:
    monkeypatch.setenv("MODEL_PARAM_MAX_AGE_SECONDS", "0")
    season = league.games(2021)
    day = next(d for d in sorted({g.game_date for g in season})[5:] if d.weekday() < 5)  # an evening-only night
    # the season's earlier days loaded (a backfill vouches for them), then collect at 03:00 Eastern on the day
    earlier = [g for g in season if g.game_date < day]
    load(load_settings(CommonSettings), FeedBatch(games=earlier), source="generator", complete_through=day - ONE)
    collect_recent_games(load_settings(CollectSettings), at=league_time(day, dt.time(3)), feed=league)
    from nbaml.serving.api import create_app

    holder: dict[str, Night] = {}
    client = TestClient(create_app(now=lambda: holder["night"].now))
    night = Night(
        client, PredictionLog(load_settings(PredictSettings).predictions_table), day, league.schedule(day), league
    )
    holder["night"] = night
    return night


def test_given_a_complete_night_when_asked_twice_before_tip_off_then_the_later_prediction_is_the_judged_one(
    night: Night,
) -> None:
    # When: the slate is asked at noon, and again at 18:00
    first = night.ask(night.games)
    night.now = league_time(night.day, dt.time(18))
    again = night.ask(night.games)
    # Then: both answered, on the schedule, logged; the item of each game is the 18:00 one
    assert first.status_code == again.status_code == 200, first.text
    assert all(p["on_schedule"] and p["logged"] for p in again.json()["predictions"])
    game = night.games[0]
    (item,) = night.items(game.game_id)
    assert item["served_at"] == league_time(night.day, dt.time(18)).isoformat() and "expires_at" not in item
    # When: asked once more after the first game has started
    night.now = game.tip_off + dt.timedelta(minutes=1)
    late = night.ask([game])
    # Then: answered, but not logged: nothing after tip-off counts
    assert late.status_code == 200 and late.json()["predictions"][0]["logged"] is False
    assert night.items(game.game_id)[0]["served_at"] == item["served_at"]
    # When the morning after collects the night, the 18:00 prediction is the one joined to the outcome
    night.collect(night.day + ONE)
    (judged,) = night.items(game.game_id)
    assert judged["resolved_key"] and judged["served_at"] == item["served_at"]


def test_given_a_night_not_played_yet_when_the_next_days_slate_is_asked_then_409_names_its_games(
    night: Night,
) -> None:
    tomorrow = night.day + ONE
    refused = night.ask(night.league.schedule(tomorrow) or night.games[:1], tomorrow)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"] == "IncompleteDaysError"
    assert body["missing"] == [
        {"date": night.day.isoformat(), "collected": True, "pending": sorted(g.game_id for g in night.games)}
    ]
    assert night.games[0].game_id in body["detail"]
    assert night.log.on_date(tomorrow) == []  # refused before any work
    # and the OpenAPI document says so
    spec = night.client.get("/openapi.json").json()
    answer = spec["paths"]["/predictions"]["post"]["responses"]["409"]
    assert answer["content"]["application/json"]["schema"]["$ref"].endswith("/IncompleteDaysProblem")
    assert "missing" in spec["components"]["schemas"]["IncompleteDaysProblem"]["properties"]


def test_given_a_matchup_off_the_schedule_then_it_is_answered_logged_with_a_ttl_and_never_judged(
    night: Night,
) -> None:
    playing = {(g.home, g.away) for g in night.games}
    home, away = next((h.home, a.away) for h in night.games for a in night.games if (h.home, a.away) not in playing)
    from nbaml.games.records import Game, GameStatus

    made_up = Game.create(game_date=night.day, home=home, away=away, status=GameStatus.SCHEDULED, source="t")
    # When an anonymous caller asks for it
    answer = night.ask([made_up])
    # Then it is answered and logged as hypothetical, with a TTL
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["on_schedule"] is False
    (item,) = night.items(made_up.game_id)
    assert item["expires_at"] == int((night.now + HYPOTHETICAL_TTL).timestamp())
    # and it can never become a judged prediction: not joined, not in the indexes monitoring reads
    night.ask(night.games)
    night.collect(night.day + ONE)
    assert "resolved_key" not in night.items(made_up.game_id)[0]
    judged = {i["game_id"] for i in night.log.resolved(role="champion")}
    assert made_up.game_id not in judged and {g.game_id for g in night.games} <= judged


def test_given_s3_unreachable_after_the_night_then_the_next_slate_is_refused_as_of_the_state_in_memory(
    night: Night, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbaml.errors import StorageError
    from nbaml.storage.artifacts import ArtifactStore

    assert night.ask(night.games).status_code == 200  # the pair read at noon: the night still to be played
    # Given: the morning after collected the night, but the API cannot read S3 any more
    tomorrow = night.day + ONE
    night.collect(tomorrow)
    night.now = league_time(tomorrow, dt.time(12))
    read = ArtifactStore.get_bytes

    def unreachable(store: ArtifactStore, key: str) -> bytes:
        raise StorageError(f"cannot read s3://{store.bucket}/{key}: endpoint unreachable")

    monkeypatch.setattr(ArtifactStore, "get_bytes", unreachable)
    slate = night.league.schedule(tomorrow) or night.games[:1]
    # When the next day's slate is asked
    refused = night.ask(slate, tomorrow)
    # Then: refused, not predicted on the state in memory, and the refusal says the pair could not be re-read
    assert refused.status_code == 409, refused.text
    assert refused.json()["missing"][0]["date"] == night.day.isoformat()
    assert "could not be read again" in refused.json()["detail"]
    # and once S3 answers again, the collected night is seen: served
    monkeypatch.setattr(ArtifactStore, "get_bytes", read)
    assert night.ask(slate, tomorrow).status_code == 200
