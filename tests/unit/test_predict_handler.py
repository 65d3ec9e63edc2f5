"""functions/predict/app.handler itself, invoked in-process with the sample HTTP API events of events/.

Everything between API Gateway and the FastAPI app runs: the Powertools context decorator, Mangum's payload 2.0
translation, and the ``/{stage}`` prefix a named HTTP API stage puts in front of every path (the handler strips it;
the routes are declared without it). The stack is moto's in-memory AWS with v1 trained and promoted
(``registered_versions``). The container side (the real SAM CLI) is the sam tier's.
"""

from __future__ import annotations

import copy
import datetime as dt
import importlib.util
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.logging import logger as powertools_logger
from fastapi.testclient import TestClient

from infra.runtime import LocalLambdaContext
from nbaml.storage.predictions import PredictionLog

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLE_DAY = dt.date(2023, 1, 10)  # the day events/predict-game.json asks about


def sample(name: str, *, stage: str | None) -> dict[str, Any]:
    """A sample event; with ``stage``, as a named stage sends it (``/{stage}`` in front of rawPath and http.path)."""
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    if stage:
        event["rawPath"] = f"/{stage}{event['rawPath']}"
        event["requestContext"]["http"]["path"] = event["rawPath"]
        event["requestContext"]["stage"] = stage
    return event


def vouch_through(day: dt.date) -> None:
    """The league calendar as a backfill through ``day`` leaves it: every day up to it complete.

    The sample events ask about SAMPLE_DAY, a date long after the stack's two seasons; the predict function
    serves a date only when every day before it is complete (issue 17), and these tests check the runtime
    between API Gateway and the app, not the data, so the days between are stated complete (as the sam tier's
    backfill does)."""
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.calendar import LeagueCalendar
    from nbaml.games.history import GameHistory
    from nbaml.storage.artifacts import ArtifactStore

    history = GameHistory(ArtifactStore(load_settings(CommonSettings).nbaml_bucket))
    history.save_calendar(LeagueCalendar.backfilled(day, history.load_calendar()), str(history.state_digest()))


@pytest.fixture
def app(registered_versions: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A cold predict function: app.py imported afresh (its Mangum app is built on the first request)."""
    vouch_through(SAMPLE_DAY - dt.timedelta(days=1))
    monkeypatch.setenv("MODEL_PARAM_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")  # as the template sets it; another test may have left WARNING
    # Powertools keeps "cold start" in one flag per process, flipped by the first decorated invocation of any
    # function; a test module that ran earlier in this worker may have flipped it. A fresh import is a new
    # execution environment, so its first invocation is a cold start again.
    monkeypatch.setattr(powertools_logger, "is_cold_start", True)
    spec = importlib.util.spec_from_file_location("predict_app_under_test", ROOT / "functions/predict/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.logger.setLevel("INFO")  # the service logger is shared by name: an earlier import may have set another
    return module


@pytest.fixture
def handler(app: Any) -> Any:
    return app.handler


@pytest.fixture
def function_log(app: Any) -> Iterator[io.StringIO]:
    """What the function's Powertools logger writes (its JSON lines), from its own stream handler."""
    streams = [h for h in app.logger.handlers if hasattr(h, "setStream")]
    assert streams, "the predict function's logger has no stream handler"
    buffer = io.StringIO()
    previous = [h.setStream(buffer) for h in streams]
    yield buffer
    for h, stream in zip(streams, previous, strict=True):
        h.setStream(stream)


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    context = LocalLambdaContext(function_name="nbaml-dev-predict", memory_limit_in_mb=512, timeout_s=10)
    response = handler(event, context)
    body = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], body, response.get("headers", {})


def test_given_the_sample_events_on_the_named_stage_then_the_champion_answers_logs_and_reports_health(
    app: Any, handler: Any, stack: Any
) -> None:
    from nbaml.serving.api import create_app

    stage = os.environ["STAGE"]
    game = sample("predict-game.json", stage=stage)
    status, body, headers = invoke(handler, game)
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    (answer,) = body["predictions"]
    assert (answer["home"], answer["away"], answer["date"]) == ("BOS", "LAL", "2023-01-10")
    assert (answer["version"], answer["role"]) == ("v1", "champion")
    # the Powertools decorator took the API's request id as the correlation id and the function's context
    # (read from the logger itself: which log lines reach this logger's handler depends on import order across
    # test modules, as nbaml's child loggers are named after the service at their import)
    assert app.logger.get_correlation_id() == game["requestContext"]["requestId"]
    keys = app.logger.registered_formatter.log_format
    assert keys.get("function_name") == "nbaml-dev-predict" and keys.get("cold_start") is True
    # the answer is the app's own without Lambda in between, and it was logged for the game
    direct = TestClient(create_app()).post("/predictions", json=json.loads(game["body"]))
    assert direct.json()["predictions"][0]["home_win_probability"] == answer["home_win_probability"]
    logged = [i for i in PredictionLog(stack.tables["PredictionsTable"]).all() if i["game_id"] == answer["game_id"]]
    assert [(i["version"], i["served"]) for i in logged] == [("v1", True)]
    assert float(logged[0]["probability"]) == pytest.approx(answer["home_win_probability"], abs=1e-12)
    # the health event, on the same stage
    status, body, _ = invoke(handler, sample("predict-health.json", stage=stage))
    assert status == 200
    assert body["active"]["version"] == "v1" and body["canary"] is None


def test_given_no_prefix_another_stage_or_a_bad_game_then_answered_not_found_and_422(handler: Any) -> None:
    # The $default stage (and sam local start-api) sends the path as the route declares it
    status, body, _ = invoke(handler, sample("predict-game.json", stage=None))
    assert status == 200 and body["predictions"][0]["version"] == "v1"
    status, body, _ = invoke(handler, sample("predict-health.json", stage=None))
    assert status == 200 and body["active"]["version"] == "v1"
    # a stage this function is not deployed on is no route of it
    other = "prod" if os.environ["STAGE"] != "prod" else "dev"
    status, _, _ = invoke(handler, sample("predict-health.json", stage=other))
    assert status == 404
    # a game without its home team: 422 naming the field
    event = sample("predict-game.json", stage=os.environ["STAGE"])
    event["body"] = json.dumps({"games": [{"away": "LAL", "date": "2023-01-10"}]})
    event["headers"]["content-length"] = str(len(event["body"]))
    status, body, _ = invoke(handler, event)
    assert status == 422
    assert ["body", "games", 0, "home"] in [error["loc"] for error in body["detail"]], body


def test_given_a_simulated_clock_in_the_environment_then_the_handler_serves_and_logs_on_it(
    handler: Any, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SAM replay's seam (nbaml.serving.clock): the variable names a parameter holding the instant."""
    from nbaml.serving import clock

    parameter = "/nbaml-local/replay/now"
    simulated = dt.datetime(2023, 1, 9, 16, 0, tzinfo=dt.UTC)  # 11:00 Eastern, the day before the sample's game
    monkeypatch.setenv(clock.SIMULATED_CLOCK_PARAM, parameter)
    clock.write_instant(parameter, simulated)
    event = sample("predict-game.json", stage=os.environ["STAGE"])
    status, body, _ = invoke(handler, event)
    assert status == 200, body
    (answer,) = body["predictions"]
    logged = [i for i in PredictionLog(stack.tables["PredictionsTable"]).all() if i["game_id"] == answer["game_id"]]
    assert [dt.datetime.fromisoformat(i["served_at"]) for i in logged] == [simulated]
    # the date window follows the simulated day: ten days after it is past the horizon, though not the machine's
    later = copy.deepcopy(event)
    later["body"] = event["body"].replace(SAMPLE_DAY.isoformat(), "2023-01-20")
    later["headers"]["content-length"] = str(len(later["body"]))
    status, body, _ = invoke(handler, later)
    assert status == 422 and "2023-01-20" in json.dumps(body), body
    # and it moves when the parameter does, on the same warm instance: from four days earlier, the sample's own
    # game is past the horizon too
    clock.write_instant(parameter, simulated - dt.timedelta(days=4))
    status, body, _ = invoke(handler, event)
    assert status == 422 and SAMPLE_DAY.isoformat() in json.dumps(body), body
