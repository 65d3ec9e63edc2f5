"""Every function through ``sam local invoke``: a new container per call, the code and layers ``sam build``
wrote, the locally built python3.12 base image, the stack in the emulator container.

Each test says what the function did to the stack, read back from this machine through the emulator's
published port, and where a twin exists, that the container's answer equals the in-process runtime's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from infra import runtime
from infra.samcli import sam
from infra.samcli.stack import SamStack
from nbaml import layout
from tests.sam.conftest import QUIET, Trained

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _authorizer_event(authorization: str | None) -> dict[str, Any]:
    """What an HTTP API hands a Lambda authorizer with payload format 2.0 for POST /admin/promote."""
    headers = {"content-type": "application/json"} | ({"authorization": authorization} if authorization else {})
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api-id/dev/POST/admin/promote",
        "identitySource": [authorization] if authorization else [],
        "routeKey": "ANY /admin/{proxy+}",
        "rawPath": "/dev/admin/promote",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": "POST", "path": "/dev/admin/promote"}, "stage": "dev"},
    }


def _host(sam_stack: SamStack) -> Any:
    return runtime.function_environment(sam_stack.host_environment() | sam_stack.stack.env_for("predict") | QUIET)


def _settings(sam_stack: SamStack) -> Any:
    from nbaml.config import CommonSettings, load_settings

    with _host(sam_stack):
        return load_settings(CommonSettings)


def _report_of(invocation: sam.Invocation, memory_mb: int) -> None:
    assert invocation.report is not None, f"no REPORT line for {invocation.function}: {invocation.logs[-800:]}"
    assert invocation.report.memory_mb == memory_mb
    assert invocation.report.billed_ms >= invocation.report.duration_ms > 0


def test_given_the_admin_token_when_the_authorizer_runs_in_its_container_then_only_that_token_is_allowed(
    sam_stack: SamStack, admin_token: str
) -> None:
    # Given the authorizer's container; When it is handed the token, a wrong one and none
    allowed = sam_stack.local.invoke("AuthorizerFunction", _authorizer_event(f"Bearer {admin_token}"))
    wrong = sam_stack.local.invoke("AuthorizerFunction", _authorizer_event("Bearer not-the-token"))
    missing = sam_stack.local.invoke("AuthorizerFunction", _authorizer_event(None))
    # Then it allows the token only (a simple response, as the HTTP API is configured for), naming the caller
    # for the access log: which version of the admin token's SecureString matched
    assert allowed.result["isAuthorized"] is True
    assert re.fullmatch(r"admin-token:v\d+", allowed.result["context"]["caller"]), allowed.result
    assert wrong.result == {"isAuthorized": False}
    assert missing.result == {"isAuthorized": False}
    _report_of(allowed, memory_mb=256)


def test_given_real_history_when_retrain_runs_in_its_container_then_it_writes_the_bundle_it_promotes(
    sam_stack: SamStack, trained: Trained
) -> None:
    from nbaml.bundle import ModelBundle
    from nbaml.storage.artifacts import ArtifactStore

    # Given two real seasons in the stack; When retrain ran in its container (the session's `trained`)
    run = trained.invocation.result["runs"][0]
    settings = _settings(sam_stack)
    with _host(sam_stack):
        store = ArtifactStore(settings.nbaml_bucket)
        bundle = ModelBundle.from_files(store.read_bundle_files(trained.version), expected_version=trained.version)
    # Then its bundle is committed and verifies, the registry held it as active and the parameter named it
    assert store.bundle_committed(trained.version) and bundle.version == trained.version
    assert trained.status == "active" and trained.active == trained.version
    assert run["metrics"]["accuracy"] >= 0.60  # the gate's floor, on real games
    _report_of(trained.invocation, memory_mb=3008)


def test_given_the_trained_model_when_predict_runs_an_http_api_event_then_it_answers_as_the_in_process_twin(
    sam_stack: SamStack, trained: Trained
) -> None:
    # Given an HTTP API v2 event for one game (events/predict-game.json, 2023-01-10)
    event = _event("predict-game.json")
    # When the predict container answers it, and the in-process runtime answers the same event
    invocation = sam_stack.local.invoke("PredictFunction", event)
    with _host(sam_stack):
        twin = runtime.invoke(sam_stack.stack, "predict", event, extra_env=QUIET)
    # Then both serve the trained version with the same probability
    assert invocation.result["statusCode"] == 200, invocation.result
    served = json.loads(invocation.result["body"])["predictions"][0]
    expected = json.loads(twin["body"])["predictions"][0]
    assert served["version"] == trained.version and served["role"] == "champion"
    assert abs(served["home_win_probability"] - expected["home_win_probability"]) <= 1e-9
    _report_of(invocation, memory_mb=1024)


def test_given_a_scheduled_event_when_collect_runs_in_its_container_then_the_games_are_in_the_stack(
    sam_stack: SamStack, trained: Trained
) -> None:
    from nbaml.storage.artifacts import ArtifactStore
    from nbaml.storage.games import GameStore

    # Given the daily schedule's event (2023-01-10 03:00 UTC, the template's generator feed)
    invocation = sam_stack.local.invoke("CollectFunction", _event("collect-scheduled.json"))
    # Then it collected the window's finished games into Games, archived their raw payload, and moved the state
    report = invocation.result
    assert invocation.error is None, invocation.logs[-1500:]
    assert report["run_date"] == "2023-01-10" and report["final_games"] > 0
    settings = _settings(sam_stack)
    first, last = (dt.date.fromisoformat(d) for d in report["window"])
    with _host(sam_stack):
        games = GameStore(settings.games_table)
        stored = [g for n in range((last - first).days + 1) for g in games.on_date(first + dt.timedelta(days=n))]
        raw = list(
            ArtifactStore(settings.nbaml_bucket).keys(layout.raw_prefix(layout.collect_batch(dt.date(2023, 1, 10))))
        )
    assert len([g for g in stored if g.is_final]) >= report["final_games"]
    assert raw, "collect archived no raw payload"
    assert report["state"] != "unchanged"
    _report_of(invocation, memory_mb=512)


def test_given_a_monday_event_when_drift_check_runs_in_its_container_then_it_writes_its_report(
    sam_stack: SamStack, trained: Trained
) -> None:
    from nbaml.storage.artifacts import ArtifactStore

    # Given the weekly schedule's event (Monday 2023-01-09 04:00 UTC)
    invocation = sam_stack.local.invoke("DriftCheckFunction", _event("drift-check-scheduled.json"))
    # Then it checked the active version and wrote its JSON and HTML report where /reports/latest reads them
    summary = invocation.result
    assert invocation.error is None, invocation.logs[-1500:]
    assert summary["active"] == trained.version and summary["run_date"] == "2023-01-09"
    settings = _settings(sam_stack)
    with _host(sam_stack):
        store = ArtifactStore(settings.nbaml_bucket)
        assert store.exists(layout.report_key(layout.DRIFT_JSON, dt.date(2023, 1, 9)))
        assert store.exists(layout.report_key(layout.DRIFT_HTML))
    _report_of(invocation, memory_mb=512)
