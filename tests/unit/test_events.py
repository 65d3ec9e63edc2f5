"""The sample events in events/: shaped as `sam local generate-event` makes them, readable by the functions."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from nbaml.events import SCHEDULED_EVENT, RetrainTrigger, retrain_requests, scheduled_run_date

EVENTS = Path(__file__).resolve().parents[2] / "events"
# The keys `sam local generate-event cloudwatch scheduled-event` / `apigateway http-api-proxy` produce.
SCHEDULED_KEYS = {"id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
HTTP_API_KEYS = {"version", "routeKey", "rawPath", "rawQueryString", "headers", "requestContext", "isBase64Encoded"}


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
def test_given_a_scheduled_event_when_read_then_its_time_is_the_run_date(
    name: str, weekday: str | None, day: int | None, hour: int
) -> None:
    # Given
    event = load(name)
    # When
    run_date = scheduled_run_date(event)
    fired = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    # Then
    assert set(event) == SCHEDULED_KEYS and event["detail-type"] == SCHEDULED_EVENT
    assert run_date == fired.date()
    assert fired.hour == hour and fired.minute == 0
    assert weekday is None or fired.strftime("%A") == weekday
    assert day is None or fired.day == day


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
