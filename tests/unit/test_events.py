"""The sample events in events/: shaped as `sam local generate-event` makes them, readable by the functions."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra import template as tpl
from infra.clock import ScheduleClock
from nbaml.events import SCHEDULED_EVENT, RetrainTrigger, retrain_requests, scheduled_run_date, scheduled_time
from nbaml.games.teams import LEAGUE_TIMEZONE

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The keys of the event template.yaml's Scheduler schedules deliver (their Input), which are those of
# `sam local generate-event cloudwatch scheduled-event` but account and region; and of `apigateway http-api-proxy`.
SCHEDULED_KEYS = {"version", "id", "detail-type", "source", "time", "resources", "detail"}
HTTP_API_KEYS = {"version", "routeKey", "rawPath", "rawQueryString", "headers", "requestContext", "isBase64Encoded"}
EASTERN = ZoneInfo(LEAGUE_TIMEZONE)


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def body(event: dict[str, Any]) -> Any:
    raw = event.get("body") or ""
    return json.loads(base64.b64decode(raw) if event["isBase64Encoded"] else raw) if raw else None


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_given_an_event_file_when_parsed_then_it_is_a_json_object(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


@pytest.mark.parametrize(
    ("name", "weekday", "day", "hour"),
    [
        ("collect-scheduled.json", None, None, 3),
        ("drift-check-scheduled.json", "Monday", None, 4),
        ("retrain-scheduled.json", None, 1, 5),
    ],
)
def test_given_a_scheduled_event_when_read_then_its_run_date_is_the_league_date_of_its_time(
    name: str, weekday: str | None, day: int | None, hour: int
) -> None:
    # Given
    event = load(name)
    # When
    run_date = scheduled_run_date(event)
    fired = scheduled_time(event).astimezone(EASTERN)
    # Then: the seed's hours, on the league's (Eastern) clock
    assert set(event) == SCHEDULED_KEYS and event["detail-type"] == SCHEDULED_EVENT
    assert run_date == fired.date()
    assert fired.hour == hour and fired.minute == 0
    assert weekday is None or fired.strftime("%A") == weekday
    assert day is None or fired.day == day


@pytest.mark.parametrize("name", ["collect-scheduled.json", "drift-check-scheduled.json", "retrain-scheduled.json"])
def test_given_a_sample_scheduled_event_then_it_is_what_the_template_schedule_delivers_at_that_time(name: str) -> None:
    # Given the sample, and the schedule clock reading template.yaml
    event = load(name)
    at = scheduled_time(event)
    clock = ScheduleClock(tpl.load())
    # When: the clock fires at that instant
    (firing,) = [f for f in clock.firings_between(at, at + dt.timedelta(seconds=1))]
    physical = event["resources"][0].rsplit("/", 1)[-1]
    # Then: the function gets exactly the sample (Scheduler's context attributes filled into the Input)
    assert firing.event(name=physical) == event


def test_given_a_time_late_in_the_eastern_evening_then_the_run_date_is_that_evening_not_the_utc_date() -> None:
    assert scheduled_run_date({"time": "2023-01-11T03:00:00Z"}) == dt.date(2023, 1, 10)  # 22:00 EST on the 10th
    assert scheduled_run_date({"time": "2023-07-11T03:30:00Z"}) == dt.date(2023, 7, 10)  # 23:30 EDT on the 10th
    assert scheduled_run_date({"time": "2023-01-10T08:00:00Z"}) == dt.date(2023, 1, 10)  # 03:00 EST


def test_given_the_collect_event_then_it_fires_on_the_documented_day() -> None:
    assert scheduled_run_date(load("collect-scheduled.json")) == dt.date(2023, 1, 10)


def test_given_the_monthly_event_when_read_as_retrain_requests_then_it_is_one_forced_scheduled_run() -> None:
    (request,) = retrain_requests(load("retrain-scheduled.json"))
    assert request.trigger is RetrainTrigger.SCHEDULE
    assert request.force is True
    assert request.requested_at.date() == dt.date(2023, 2, 1)


def test_given_the_manual_request_when_read_then_it_keeps_who_and_why() -> None:
    event = load("retrain-manual.json")
    (request,) = retrain_requests(event)
    assert request.trigger is RetrainTrigger.MANUAL
    assert (request.reason, request.requested_by) == (event["reason"], event["requested_by"])
    assert request.force is False


def test_given_the_health_request_then_it_is_a_get_without_body() -> None:
    event = load("predict-health.json")
    assert set(event) >= HTTP_API_KEYS and event["version"] == "2.0"
    assert (event["requestContext"]["http"]["method"], event["rawPath"]) == ("GET", "/health")
    assert body(event) is None


def test_given_the_prediction_request_then_it_posts_one_game_as_json() -> None:
    event = load("predict-game.json")
    assert set(event) >= HTTP_API_KEYS
    assert (event["requestContext"]["http"]["method"], event["rawPath"]) == ("POST", "/predictions")
    assert event["headers"]["content-type"] == "application/json"
    assert body(event) == {"games": [{"home": "BOS", "away": "LAL", "date": "2023-01-10"}]}
    assert event["routeKey"] == event["requestContext"]["routeKey"]
