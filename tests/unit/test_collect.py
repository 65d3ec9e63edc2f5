"""The collect job on moto: archive before parse, idempotent upserts, state equal to a rebuild, outcomes joined."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

import pytest
from werkzeug.wrappers import Request, Response

from nbaml import layout
from nbaml.collect import collect_recent_games
from nbaml.config import CollectSettings, load_settings
from nbaml.errors import FeedError
from nbaml.features import build_features
from nbaml.games.feeds.api_basketball import ApiBasketballFeed
from nbaml.games.feeds.base import FeedBatch, RawPayload
from nbaml.games.history import GameHistory
from nbaml.games.records import Game, GameStatus
from nbaml.games.teams import league_time
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
from nbaml.storage.predictions import PredictionLog
from tests.conftest import prediction_of
from tests.unit.test_api_basketball import api_body, api_item


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


# ---------------------------------------------------------------- the live feed failing, from a real HTTPS server
RUN_DATE = dt.date(2024, 1, 12)  # the window: Jan 5 to Jan 11, and Jan 12's schedule
OUTAGE_DAY = dt.date(2024, 1, 9)
ATTEMPTS, BACKOFF_BASE, BACKOFF_CAP, TIMEOUT = 3, 0.05, 0.2, 0.3


class FeedServer:
    """API-Basketball's /games on the local HTTPS server: one game a day at 19:00 Eastern, ``outage`` days
    answered otherwise.

    The API answers as of the moment it is asked: ``now`` stands for it (the run's scheduled time), so a game
    that has not started by then is answered not started ("NS", no score), as the real feed would.
    """

    def __init__(self, server) -> None:
        self.server = server
        self.outage: dict[dt.date, Callable[[], Response]] = {}
        self.asked: list[dt.date] = []
        self.now = league_time(RUN_DATE, dt.time(3))
        server.expect_request("/games").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        day = dt.date.fromisoformat(request.args["date"])
        self.asked.append(day)
        if day in self.outage:
            return self.outage[day]()
        start = f"{day.isoformat()}T19:00:00-05:00"
        if dt.datetime.fromisoformat(start) > self.now:
            item = api_item(game_id=day.toordinal(), start=start, status="NS", home_total=None, away_total=None)
        else:
            item = api_item(game_id=day.toordinal(), start=start, home_total=100 + day.day, away_total=99)
        return Response(json.dumps(api_body(item)), content_type="application/json")

    def feed(self, local_tls) -> ApiBasketballFeed:
        """The production client, with the retry schedule shortened (real sleeps, real sockets)."""
        return ApiBasketballFeed(
            lambda: "sk-test-key",
            base_url=self.server.url_for("/"),
            ssl_context=local_tls.client_context(),
            max_attempts=ATTEMPTS,
            backoff_base=BACKOFF_BASE,
            backoff_cap=BACKOFF_CAP,
            timeout=TIMEOUT,
            deadline=TIMEOUT,
        )


def backoff_ceiling() -> float:
    """The longest the client can sleep between its attempts of one day (full jitter under each ceiling)."""
    return sum(min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (n - 1)) for n in range(1, ATTEMPTS))


def assert_nothing_written(stack, settings) -> None:
    assert list(ArtifactStore(stack.bucket).keys("")) == []
    games = GameStore(settings.games_table)
    assert [g for day in range(8) for g in games.on_date(RUN_DATE - dt.timedelta(days=day))] == []
    assert PredictionLog(settings.predictions_table).all()[0].get("resolved_key") is None


@pytest.fixture
def live_feed(feed_server) -> FeedServer:
    return FeedServer(feed_server)


@pytest.fixture
def waiting_prediction(stack):
    """A prediction of the outage day's game, waiting for its outcome."""
    settings = load_settings(CollectSettings)
    game = Game.create(game_date=OUTAGE_DAY, home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="test")
    PredictionLog(settings.predictions_table).record(prediction_of(game, 0.7))
    return game


@pytest.mark.parametrize(
    ("fault", "answer", "error"),
    [
        ("503", lambda: Response("upstream down", status=503), "HTTP 503"),
        ("429", lambda: Response("slow down", status=429, headers={"Retry-After": "0"}), "HTTP 429"),
        ("timeout", lambda: (time.sleep(TIMEOUT * 2), Response("{}", content_type="application/json"))[1], "Timeout"),
    ],
    ids=["503", "429", "timeout"],
)
def test_given_the_feed_fails_one_day_when_collect_runs_then_it_gives_up_in_bounded_time_and_writes_nothing(
    stack, live_feed: FeedServer, local_tls, waiting_prediction, fault, answer, error
) -> None:
    settings = load_settings(CollectSettings)
    live_feed.outage[OUTAGE_DAY] = answer
    started = time.monotonic()
    with pytest.raises(FeedError, match=f"{OUTAGE_DAY}: gave up after {ATTEMPTS} attempts, last status: .*{error}"):
        collect(settings, RUN_DATE, live_feed.feed(local_tls))
    elapsed = time.monotonic() - started
    # Then: the client asked the failing day exactly its attempts, stopped there (the later days never asked) ...
    assert live_feed.asked.count(OUTAGE_DAY) == ATTEMPTS and max(live_feed.asked) == OUTAGE_DAY
    # ... within its bound: every attempt's deadline and every backoff, plus one second for the healthy days
    assert elapsed < ATTEMPTS * TIMEOUT + backoff_ceiling() + 1.0, elapsed
    # ... and wrote nothing: no raw payload (fetch precedes the archive), no game, no outcome joined
    assert_nothing_written(stack, settings)
    _settle(live_feed, 4 + ATTEMPTS)


def test_given_the_feed_recovers_the_next_morning_then_the_lookback_catches_up(
    stack, live_feed: FeedServer, local_tls, waiting_prediction
) -> None:
    settings = load_settings(CollectSettings)
    live_feed.outage[OUTAGE_DAY] = lambda: Response("upstream down", status=503)
    with pytest.raises(FeedError):
        collect(settings, RUN_DATE, live_feed.feed(local_tls))
    # When: the feed answers again, the next morning
    del live_feed.outage[OUTAGE_DAY]
    next_morning = RUN_DATE + dt.timedelta(days=1)
    live_feed.now = league_time(next_morning, dt.time(3))
    report = collect(settings, next_morning, live_feed.feed(local_tls))
    # Then: every day of its window was archived as the feed sent it, then parsed into one game a day: the
    # seven days before final, and the morning's own schedule (its game tonight) stored not started
    archived = sorted(ArtifactStore(stack.bucket).keys(layout.raw_prefix(layout.collect_batch(next_morning))))
    assert len(archived) == report.payloads == 8
    assert report.final_games == 7 and report.upserts["inserted"] == 8
    # and the calendar holds the outage day complete now, as every day up to the morning's own (still to play)
    assert [day for day, record in report.days.items() if record["pending"]] == [next_morning.isoformat()]
    assert report.days[OUTAGE_DAY.isoformat()]["final"] == 1
    games = GameStore(settings.games_table).on_date(OUTAGE_DAY)
    assert [(g.home, g.away, g.home_score) for g in games] == [("BOS", "LAL", 100 + OUTAGE_DAY.day)]
    (joined,) = PredictionLog(settings.predictions_table).for_game(waiting_prediction.game_id)
    assert joined["home_won"] is True


def _settle(live_feed: FeedServer, requests: int) -> None:
    """Wait for slow answers the client gave up on, so the server is idle when the next test starts."""
    deadline = time.monotonic() + 5
    while len(live_feed.server.log) < requests and time.monotonic() < deadline:
        time.sleep(0.02)


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
