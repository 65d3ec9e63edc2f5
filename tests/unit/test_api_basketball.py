"""Tests of the API-Basketball client against a local HTTP server (pytest-httpserver on 127.0.0.1).

No test touches the network and none sleeps: the client's sleep is injected and recorded.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from nbaml.errors import FeedAuthError, FeedError
from nbaml.games.defects import DefectKind
from nbaml.games.feeds.api_basketball import ApiBasketballFeed, local_date, season_label
from nbaml.games.feeds.base import GameFeed, RawPayload
from nbaml.games.records import GameStatus, Stage

KEY = "sk-test-5f1c9e0d7a-SECRET"
DAY = dt.date(2024, 1, 5)
QUERY = {"league": "12", "season": "2023-2024", "date": "2024-01-05", "timezone": "America/New_York"}


# --- helpers: api-basketball items and responses -----------------------------------------------------


def api_item(
    home: str = "Boston Celtics",
    away: str = "Los Angeles Lakers",
    *,
    game_id: int = 1001,
    start: str = "2024-01-06T00:30:00+00:00",
    status: str = "FT",
    home_total: int | None = 110,
    away_total: int | None = 101,
    season: str = "2023-2024",
    stage: str | None = None,
    week: str | None = None,
) -> dict[str, Any]:
    """One game as API-Basketball's /games returns it (fields we do not read included, for realism)."""

    def scores(total: int | None) -> dict[str, Any]:
        quarter = None if total is None else total // 4
        return {
            "quarter_1": quarter, "quarter_2": quarter, "quarter_3": quarter, "quarter_4": quarter,
            "over_time": None, "total": total,
        }  # fmt: skip

    return {
        "id": game_id,
        "date": start,
        "time": start[11:16],
        "timestamp": _timestamp(start),
        "timezone": "UTC",
        "stage": stage,
        "week": week,
        "status": {"long": {"FT": "Game Finished"}.get(status, status), "short": status, "timer": None},
        "league": {"id": 12, "name": "NBA", "type": "League", "season": season, "logo": "https://x/12.png"},
        "country": {"id": 5, "name": "USA", "code": "US", "flag": "https://x/us.svg"},
        "teams": {
            "home": {"id": 161, "name": home, "logo": "https://x/161.png"},
            "away": {"id": 145, "name": away, "logo": "https://x/145.png"},
        },
        "scores": {"home": scores(home_total), "away": scores(away_total)},
    }


def _timestamp(start: str) -> int | None:
    try:
        return int(dt.datetime.fromisoformat(start).timestamp())
    except ValueError:
        return None


def api_body(*items: dict[str, Any], errors: Any = None) -> dict[str, Any]:
    return {
        "get": "games",
        "parameters": QUERY,
        "errors": [] if errors is None else errors,
        "results": len(items),
        "response": list(items),
    }


@pytest.fixture(scope="module")
def _local_server(local_tls) -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True, ssl_context=local_tls.server_context())
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def httpserver(_local_server: HTTPServer) -> Iterator[HTTPServer]:
    """pytest-httpserver over HTTPS, bound to 127.0.0.1 explicitly (the plugin's default host is 'localhost')."""
    yield _local_server
    _local_server.clear()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def tls(local_tls) -> ssl.SSLContext:
    """A client context that trusts the local server's certificate (and nothing else)."""
    return local_tls.client_context()


@pytest.fixture
def feed(httpserver: HTTPServer, sleeps: Sleeps, tls: ssl.SSLContext) -> ApiBasketballFeed:
    return ApiBasketballFeed(
        lambda: KEY, base_url=httpserver.url_for("/"), max_attempts=4, sleep=sleeps, timeout=2.0, ssl_context=tls
    )


def _requests(httpserver: HTTPServer) -> list[Request]:
    return [request for request, _ in httpserver.log]


# --- a normal day ----------------------------------------------------------------------------------


def test_given_a_normal_day_when_fetched_and_parsed_then_games_are_final_with_scores(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    assert isinstance(feed, GameFeed)
    second = api_item("Miami Heat", "New York Knicks", game_id=1002, home_total=99, away_total=104)
    httpserver.expect_oneshot_request("/games", query_string=QUERY).respond_with_json(api_body(api_item(), second))

    payloads = feed.fetch_raw(DAY, DAY)
    batch = feed.parse(payloads)

    (request,) = _requests(httpserver)
    assert request.headers["x-rapidapi-key"] == KEY
    assert request.headers["x-rapidapi-host"] == "api-basketball.p.rapidapi.com"
    assert [p.key for p in payloads] == ["api-basketball/2024-01-05.json"]
    assert payloads[0].source == "api-basketball"
    assert json.loads(payloads[0].body)["results"] == 2  # the body exactly as sent
    assert [(g.game_id, g.home_score, g.away_score, g.status) for g in batch.games] == [
        ("20240105-LAL-BOS", 110, 101, GameStatus.FINAL),
        ("20240105-NYK-MIA", 99, 104, GameStatus.FINAL),
    ]
    assert batch.games[0].source == "api-basketball" and batch.games[0].source_id == "1001"
    assert batch.defects.total == 0
    assert sleeps == []


def test_given_a_window_when_fetched_then_one_request_and_payload_per_date(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    httpserver.expect_request("/games").respond_with_json(api_body())

    payloads = feed.fetch_raw(dt.date(2023, 12, 31), dt.date(2024, 1, 2))

    assert [p.key for p in payloads] == [f"api-basketball/{d}.json" for d in ("2023-12-31", "2024-01-01", "2024-01-02")]
    assert [r.args["date"] for r in _requests(httpserver)] == ["2023-12-31", "2024-01-01", "2024-01-02"]
    assert {r.args["season"] for r in _requests(httpserver)} == {"2023-2024"}


def test_given_a_request_interval_when_a_window_is_fetched_then_requests_are_spaced(
    httpserver: HTTPServer, sleeps: Sleeps, tls: ssl.SSLContext
) -> None:
    httpserver.expect_request("/games").respond_with_json(api_body())
    feed = ApiBasketballFeed(
        lambda: KEY, base_url=httpserver.url_for("/"), request_interval=6.5, sleep=sleeps, ssl_context=tls
    )

    feed.fetch_raw(dt.date(2024, 1, 1), dt.date(2024, 1, 3))

    assert sleeps == [6.5, 6.5]


# --- retries ---------------------------------------------------------------------------------------


def test_given_429_with_retry_after_when_fetched_then_it_waits_that_long_and_succeeds(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    httpserver.expect_ordered_request("/games").respond_with_data("slow down", status=429, headers={"Retry-After": "7"})
    httpserver.expect_ordered_request("/games").respond_with_json(api_body(api_item()))

    batch = feed.parse(feed.fetch_raw(DAY, DAY))

    assert len(batch.games) == 1
    assert len(_requests(httpserver)) == 2
    assert sleeps == [7.0]


def test_given_500_then_success_when_fetched_then_it_backs_off_once_and_succeeds(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    httpserver.expect_ordered_request("/games").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/games").respond_with_json(api_body(api_item()))

    batch = feed.parse(feed.fetch_raw(DAY, DAY))

    assert len(batch.games) == 1
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 1.0  # full jitter under the first ceiling (1 s)


def test_given_persistent_500_when_fetched_then_feed_error_after_max_attempts(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    httpserver.expect_request("/games").respond_with_data("oops", status=503)

    with pytest.raises(FeedError) as caught:
        feed.fetch_raw(DAY, DAY)

    assert not isinstance(caught.value, FeedAuthError)
    assert len(_requests(httpserver)) == 4
    assert len(sleeps) == 3
    assert "2024-01-05" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert all(0 <= s <= ceiling for s, ceiling in zip(sleeps, (1, 2, 4), strict=True))


def test_given_a_connection_refused_when_fetched_then_retried_then_feed_error(sleeps: Sleeps) -> None:
    feed = ApiBasketballFeed(lambda: KEY, base_url="https://127.0.0.1:9", max_attempts=2, sleep=sleeps, timeout=1.0)

    with pytest.raises(FeedError, match="connection error"):
        feed.fetch_raw(DAY, DAY)

    assert len(sleeps) == 1


def _settle(httpserver: HTTPServer, requests: int) -> None:
    """Wait until the server has finished ``requests`` requests (a slow handler logs after the client gave up)."""
    deadline = time.monotonic() + 5
    while len(httpserver.log) < requests and time.monotonic() < deadline:
        time.sleep(0.02)


def test_given_a_server_that_drips_bytes_when_the_deadline_passes_then_retried_then_feed_error(
    httpserver: HTTPServer, sleeps: Sleeps, tls: ssl.SSLContext
) -> None:
    # Given: every byte comes well within the socket timeout, but the whole body would take 3 s
    def drip(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            for byte in json.dumps(api_body()).encode()[:30]:
                time.sleep(0.1)
                yield bytes([byte])

        return Response(body(), content_type="application/json")

    httpserver.expect_request("/games").respond_with_handler(drip)
    feed = ApiBasketballFeed(
        lambda: KEY,
        base_url=httpserver.url_for("/"),
        max_attempts=2,
        sleep=sleeps,
        timeout=1.0,
        deadline=0.5,
        ssl_context=tls,
    )
    started = time.monotonic()

    # When / Then: each attempt ends at the deadline, not at the socket timeout or the body's end
    with pytest.raises(FeedError, match="connection error: TimeoutError"):
        feed.fetch_raw(DAY, DAY)
    assert time.monotonic() - started < 2.5
    assert len(sleeps) == 1
    _settle(httpserver, 2)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_given_a_redirect_then_it_is_not_followed_and_the_key_goes_nowhere_else(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps, status: int
) -> None:
    # Given: the API answers with a redirect to another path of its own host and to plain http elsewhere
    target = httpserver.url_for("/elsewhere").replace("https://", "http://")
    httpserver.expect_request("/games").respond_with_data("", status=status, headers={"Location": target})
    httpserver.expect_request("/elsewhere").respond_with_json(api_body())

    with pytest.raises(FeedError, match=f"HTTP {status} redirect refused"):
        feed.fetch_raw(DAY, DAY)

    assert [r.path for r in _requests(httpserver)] == ["/games"], "one request, to the API's own path"
    assert sleeps == [], "a redirect is not a transient failure"


@pytest.mark.parametrize("declared", [True, False])
def test_given_a_body_above_the_cap_then_feed_error_without_reading_it_whole(
    httpserver: HTTPServer, sleeps: Sleeps, tls: ssl.SSLContext, declared: bool
) -> None:
    big = json.dumps(api_body(*[api_item(game_id=n) for n in range(400)])).encode()

    def answer(request: Request) -> Response:
        chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))
        return Response(big if declared else chunks, content_type="application/json")

    httpserver.expect_request("/games").respond_with_handler(answer)
    feed = ApiBasketballFeed(
        lambda: KEY, base_url=httpserver.url_for("/"), sleep=sleeps, max_body_bytes=64 * 1024, ssl_context=tls
    )

    with pytest.raises(FeedError, match="refused"):
        feed.fetch_raw(DAY, DAY)
    assert len(big) > 64 * 1024 and sleeps == []


def test_given_a_server_certificate_nobody_trusts_then_feed_error_without_retry(
    httpserver: HTTPServer, sleeps: Sleeps
) -> None:
    # Given: the default trust store (the local test certificate is in none)
    httpserver.expect_request("/games").respond_with_json(api_body())
    feed = ApiBasketballFeed(lambda: KEY, base_url=httpserver.url_for("/"), sleep=sleeps)

    with pytest.raises(FeedError, match="not trusted"):
        feed.fetch_raw(DAY, DAY)
    assert sleeps == [] and _requests(httpserver) == [], "no request, so no key, reached the server"


def test_given_a_slow_server_when_the_timeout_passes_then_retried_then_feed_error(
    httpserver: HTTPServer, sleeps: Sleeps, tls: ssl.SSLContext
) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.5)
        return Response(json.dumps(api_body()), content_type="application/json")

    httpserver.expect_request("/games").respond_with_handler(slow)
    feed = ApiBasketballFeed(
        lambda: KEY, base_url=httpserver.url_for("/"), max_attempts=2, sleep=sleeps, timeout=0.1, ssl_context=tls
    )

    with pytest.raises(FeedError, match="connection error"):
        feed.fetch_raw(DAY, DAY)

    assert len(sleeps) == 1
    _settle(httpserver, 2)  # both slow answers are logged before the next test clears the server


def test_given_truncated_json_then_it_is_retried_and_persisting_it_is_a_feed_error(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    truncated = json.dumps(api_body(api_item()))[:-40]
    httpserver.expect_request("/games").respond_with_data(truncated, content_type="application/json")

    with pytest.raises(FeedError, match="invalid JSON") as caught:
        feed.fetch_raw(DAY, DAY)

    assert not isinstance(caught.value, FeedAuthError)
    assert len(_requests(httpserver)) == 4 and len(sleeps) == 3


def test_given_truncated_json_once_then_the_retry_gets_the_whole_body(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    whole = json.dumps(api_body(api_item()))
    httpserver.expect_ordered_request("/games").respond_with_data(whole[: len(whole) // 2])
    httpserver.expect_ordered_request("/games").respond_with_data(whole, content_type="application/json")

    (payload,) = feed.fetch_raw(DAY, DAY)

    assert payload.body == whole.encode()


def test_given_a_per_minute_rate_limit_in_the_errors_field_then_retried(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps
) -> None:
    limited = api_body(errors={"rateLimit": "Too many requests. You have exceeded the limit of requests per minute."})
    httpserver.expect_ordered_request("/games").respond_with_json(limited)
    httpserver.expect_ordered_request("/games").respond_with_json(api_body(api_item()))

    assert len(feed.parse(feed.fetch_raw(DAY, DAY)).games) == 1
    assert len(sleeps) == 1


def test_given_the_daily_quota_in_the_errors_field_then_feed_error_without_retry(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    quota = api_body(errors={"requests": "You have reached the request limit for the day, Go to upgrade your plan."})
    httpserver.expect_request("/games").respond_with_json(quota)

    with pytest.raises(FeedError, match="quota") as caught:
        feed.fetch_raw(DAY, DAY)

    assert not isinstance(caught.value, FeedAuthError)
    assert len(_requests(httpserver)) == 1


def test_given_another_error_in_the_errors_field_then_feed_error_naming_it(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    httpserver.expect_request("/games").respond_with_json(api_body(errors={"season": "The Season field is invalid."}))

    with pytest.raises(FeedError, match="Season field"):
        feed.fetch_raw(DAY, DAY)

    assert len(_requests(httpserver)) == 1


# --- authentication --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_given_a_rejected_key_when_fetched_then_feed_auth_error_without_retry(
    httpserver: HTTPServer, feed: ApiBasketballFeed, sleeps: Sleeps, status: int
) -> None:
    httpserver.expect_request("/games").respond_with_json({"message": "Invalid API key."}, status=status)

    with pytest.raises(FeedAuthError, match=f"HTTP {status}"):
        feed.fetch_raw(DAY, DAY)

    assert len(_requests(httpserver)) == 1
    assert sleeps == []


def test_given_a_key_error_in_the_errors_field_with_http_200_then_feed_auth_error(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    errors = {"token": "Error/Missing application key. Go to https://www.api-football.com/documentation"}
    httpserver.expect_request("/games").respond_with_json(api_body(errors=errors))

    with pytest.raises(FeedAuthError, match="application key"):
        feed.fetch_raw(DAY, DAY)

    assert len(_requests(httpserver)) == 1


@pytest.mark.parametrize("provider", [lambda: "", lambda: "   ", lambda: None, lambda: 1 / 0])
def test_given_a_missing_key_when_fetched_then_feed_auth_error_before_any_request(
    httpserver: HTTPServer, sleeps: Sleeps, provider: Any, tls: ssl.SSLContext
) -> None:
    feed = ApiBasketballFeed(provider, base_url=httpserver.url_for("/"), sleep=sleeps, ssl_context=tls)

    with pytest.raises(FeedAuthError, match="key"):
        feed.fetch_raw(DAY, DAY)

    assert _requests(httpserver) == []


def test_given_failures_then_the_key_never_appears_in_logs_or_exceptions(
    httpserver: HTTPServer, feed: ApiBasketballFeed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = api_body(errors={"token": f"Invalid key {KEY}"})  # an API that echoes the key back
    httpserver.expect_ordered_request("/games").respond_with_data(f"bad gateway {KEY}", status=502)
    httpserver.expect_ordered_request("/games").respond_with_json(api_body(errors={"rateLimit": f"slow {KEY}"}))
    httpserver.expect_ordered_request("/games").respond_with_json(echo)

    with pytest.raises(FeedAuthError) as auth:
        feed.fetch_raw(DAY, DAY)
    httpserver.clear()
    httpserver.expect_request("/games").respond_with_data("down", status=500)
    with pytest.raises(FeedError) as gave_up:
        feed.fetch_raw(DAY, DAY)

    assert caplog.records, "the retries were logged"
    for error in (auth.value, gave_up.value):
        chain = [error, error.__cause__, error.__context__]
        assert all(KEY not in str(e) and KEY not in repr(e) for e in chain if e is not None)
    assert "***" in str(auth.value)
    assert KEY not in caplog.text


# --- parsing defects -------------------------------------------------------------------------------


def _parse(httpserver: HTTPServer, feed: ApiBasketballFeed, *items: dict[str, Any]):
    httpserver.expect_oneshot_request("/games").respond_with_json(api_body(*items))
    return feed.parse(feed.fetch_raw(DAY, DAY))


def test_given_an_unknown_team_then_it_is_a_counted_defect_and_the_others_are_kept(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    batch = _parse(
        httpserver,
        feed,
        api_item(),
        api_item("Springfield Isotopes", "Miami Heat", game_id=1002),
        api_item("Charlotte Bobcats", "New Jersey Nets", game_id=1003),  # historical names are known
    )

    assert [g.game_id for g in batch.games] == ["20240105-BKN-CHA", "20240105-LAL-BOS"]
    assert batch.defects.counts == {DefectKind.UNKNOWN_TEAM: 1}
    assert "Springfield Isotopes" in batch.defects.examples[DefectKind.UNKNOWN_TEAM][0].reason
    assert batch.defects.examples[DefectKind.UNKNOWN_TEAM][0].where == "api-basketball/2024-01-05.json#1002"


def test_given_a_finished_game_without_a_score_then_final_without_score(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    batch = _parse(
        httpserver, feed, api_item(home_total=None, away_total=None), api_item("Miami Heat", "Utah Jazz", game_id=2)
    )

    assert [g.home for g in batch.games] == ["MIA"]
    assert batch.defects.counts == {DefectKind.FINAL_WITHOUT_SCORE: 1}


def test_given_a_finished_game_after_overtime_then_it_is_final(httpserver: HTTPServer, feed: ApiBasketballFeed) -> None:
    batch = _parse(httpserver, feed, api_item(status="AOT", home_total=121, away_total=119))

    assert [(g.status, g.home_score) for g in batch.games] == [(GameStatus.FINAL, 121)]


@pytest.mark.parametrize(
    ("short", "status"),
    [("POST", GameStatus.POSTPONED), ("SUSP", GameStatus.POSTPONED), ("CANC", GameStatus.CANCELLED)],
)
def test_given_a_postponed_or_cancelled_game_then_it_is_kept_with_that_status_and_no_score(
    httpserver: HTTPServer, feed: ApiBasketballFeed, short: str, status: GameStatus
) -> None:
    batch = _parse(httpserver, feed, api_item(status=short, home_total=None, away_total=None))

    (game,) = batch.games
    assert game.status is status and not game.is_final
    assert (game.home_score, game.away_score) == (None, None)
    assert batch.defects.total == 0


def test_given_games_in_play_and_not_started_then_both_are_pending_with_their_tip_off_and_no_score(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    batch = _parse(
        httpserver,
        feed,
        api_item(status="Q3", home_total=70, away_total=66),
        api_item("Miami Heat", "Utah Jazz", game_id=2, status="NS", home_total=None, away_total=None),
    )

    # The game in play is not skipped: it is in progress, so its day stays incomplete until it is final
    assert [(g.home, g.status) for g in batch.games] == [("BOS", GameStatus.IN_PROGRESS), ("MIA", GameStatus.SCHEDULED)]
    assert all(g.is_pending and g.home_score is None and g.away_score is None for g in batch.games)
    assert {g.tip_off for g in batch.games} == {dt.datetime(2024, 1, 6, 0, 30, tzinfo=dt.UTC)}
    assert batch.defects.total == 0


def test_given_a_final_game_then_its_start_is_its_tip_off_and_its_eastern_date_its_date(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    (game,) = _parse(httpserver, feed, api_item(start="2024-01-06T03:30:00+00:00")).games
    assert game.tip_off == dt.datetime(2024, 1, 6, 3, 30, tzinfo=dt.UTC)  # 22:30 Eastern on the 5th
    assert game.game_date == dt.date(2024, 1, 5) and game.is_final


def test_given_other_bad_items_then_each_is_counted_under_its_kind(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    no_teams = api_item(game_id=3)
    del no_teams["teams"]
    batch = _parse(
        httpserver,
        feed,
        api_item(home_total=0, away_total=0),
        api_item("Miami Heat", "Miami Heat", game_id=2),
        no_teams,
        api_item("Utah Jazz", "Phoenix Suns", game_id=4, start="yesterday evening"),
        api_item("Chicago Bulls", "Detroit Pistons", game_id=5, status="ZZ"),
        api_item("Chicago Bulls", "Detroit Pistons", game_id=6, home_total=100, away_total=100),
        api_item("Denver Nuggets", "Orlando Magic", game_id=7, season="2022-2023"),
    )

    assert [g.home for g in batch.games] == ["DEN"]  # a wrong season label is counted, the game kept
    assert {k: n for k, n in batch.defects.counts.items() if n} == {
        DefectKind.UNPLAYED_ZERO_SCORE: 1,
        DefectKind.SAME_TEAM_BOTH_SIDES: 1,
        DefectKind.MISSING_FIELD: 1,
        DefectKind.MALFORMED: 3,
        DefectKind.SEASON_LABEL_MISMATCH: 1,
    }


def test_given_the_same_game_twice_with_different_scores_then_both_dropped(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    batch = _parse(httpserver, feed, api_item(), api_item(game_id=1999, home_total=111))

    assert batch.games == []
    assert batch.defects.counts == {DefectKind.DUPLICATE_CONFLICTING: 2}


def test_given_archived_payloads_that_are_damaged_when_parsed_then_defects_not_errors(feed: ApiBasketballFeed) -> None:
    payloads = [
        RawPayload("api-basketball", "a.json", b'{"response": [', "application/json"),
        RawPayload(
            "api-basketball", "b.json", json.dumps(api_body(errors={"token": "x"})).encode(), "application/json"
        ),
        RawPayload("api-basketball", "c.json", b"[]", "application/json"),
        RawPayload("api-basketball", "d.json", json.dumps(api_body("not an item")).encode(), "application/json"),  # type: ignore[arg-type]
    ]

    batch = feed.parse(payloads)

    assert batch.games == []
    assert batch.defects.counts == {DefectKind.MALFORMED: 4}


# --- dates, seasons, stages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "local"),
    [
        ("2024-01-06T00:30:00+00:00", dt.date(2024, 1, 5)),  # 7:30 pm ET the evening before
        ("2024-01-06T03:30:00+00:00", dt.date(2024, 1, 5)),  # 10:30 pm ET (a West-coast late game)
        ("2024-01-06T17:00:00Z", dt.date(2024, 1, 6)),  # noon ET
        ("2024-04-10T23:30:00+00:00", dt.date(2024, 4, 10)),  # daylight saving time: 7:30 pm EDT
        ("2024-04-11T03:59:00+00:00", dt.date(2024, 4, 10)),
        ("2024-04-11T04:00:00+00:00", dt.date(2024, 4, 11)),  # midnight EDT
        ("2024-01-05T19:30:00-05:00", dt.date(2024, 1, 5)),  # already in ET (timezone parameter honoured)
        ("2024-01-06T00:30:00", dt.date(2024, 1, 5)),  # naive means UTC
    ],
)
def test_given_a_utc_start_time_then_the_game_date_is_the_us_eastern_date(start: str, local: dt.date) -> None:
    assert local_date(start) == local


def test_given_an_evening_game_when_parsed_then_its_date_is_the_us_evening_not_the_utc_day(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    batch = _parse(httpserver, feed, api_item(start="2024-01-06T03:00:00+00:00"))

    assert batch.games[0].game_date == dt.date(2024, 1, 5)
    assert batch.games[0].game_id.startswith("20240105-")


def test_given_only_a_timestamp_then_the_date_still_comes_out_in_us_eastern() -> None:
    assert local_date(None, int(dt.datetime(2024, 1, 6, 0, 30, tzinfo=dt.UTC).timestamp())) == dt.date(2024, 1, 5)


@pytest.mark.parametrize(
    ("day", "label"),
    [(dt.date(2023, 10, 24), "2023-2024"), (dt.date(2024, 4, 14), "2023-2024"), (dt.date(2024, 10, 22), "2024-2025")],
)
def test_given_a_date_then_the_season_parameter_is_start_dash_end(day: dt.date, label: str) -> None:
    assert season_label(day) == label


@pytest.mark.parametrize(
    ("stage", "week", "expected"),
    [
        (None, None, Stage.REGULAR),
        ("Regular Season", None, Stage.REGULAR),
        ("Play Offs", None, Stage.PLAYOFFS),
        (None, "Conference Finals", Stage.PLAYOFFS),
        ("Play-In", None, Stage.PLAYOFFS),
    ],
)
def test_given_stage_or_week_labels_then_playoff_games_are_marked(
    httpserver: HTTPServer, feed: ApiBasketballFeed, stage: str | None, week: str | None, expected: Stage
) -> None:
    batch = _parse(httpserver, feed, api_item(start="2024-04-20T23:00:00+00:00", stage=stage, week=week))

    assert batch.games[0].stage is expected


def test_given_a_day_when_scheduled_then_games_on_come_unscored_and_postponed_ones_do_not(
    httpserver: HTTPServer, feed: ApiBasketballFeed
) -> None:
    httpserver.expect_oneshot_request("/games", query_string=QUERY).respond_with_json(
        api_body(
            api_item(status="NS", home_total=None, away_total=None),
            api_item("Miami Heat", "Utah Jazz", game_id=2, status="POST", home_total=None, away_total=None),
        )
    )

    games = feed.schedule(DAY)

    assert [(g.game_id, g.status, g.home_score) for g in games] == [("20240105-LAL-BOS", GameStatus.SCHEDULED, None)]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://api-basketball.p.rapidapi.com", "https://"])
def test_given_a_base_url_that_is_not_https_then_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        ApiBasketballFeed(lambda: KEY, base_url=url)
