"""The prediction API in-process on moto: predictions, bad input, admin auth, hot swap, refusal, canary, shadow."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from fastapi.testclient import TestClient

from nbaml import layout
from nbaml.config import PredictSettings, load_settings
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.predictions import PredictionLog
from nbaml.storage.registry import ModelRegistry

TOKEN = "s3cret-admin-token"


@pytest.fixture
def served(stack, loaded_history, registered_versions, monkeypatch):
    """v1 active and v2 registered, the admin token in its SecureString, the app built."""
    monkeypatch.setenv("MODEL_PARAM_MAX_AGE_SECONDS", "0")
    settings = load_settings(PredictSettings)
    boto3.client("ssm").put_parameter(Name=settings.admin_token_param, Value=TOKEN, Type="SecureString")
    parameters.reset_cache()
    from nbaml.serving.api import create_app

    client = TestClient(create_app())
    state_day = max(g.game_date for g in loaded_history)
    return client, settings, state_day + dt.timedelta(days=1)


ADMIN = {"Authorization": f"Bearer {TOKEN}"}
V2 = "v20210602_000000"


def test_given_an_active_model_when_health_is_asked_then_it_names_the_version_and_checksum(served) -> None:
    client, _, _ = served
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["active"]["version"] == "v1" and body["active"]["checksum"] == "verified"


def test_given_a_slate_when_predicted_then_each_game_gets_a_probability_and_is_logged_once(served) -> None:
    client, settings, day = served
    slate = {
        "games": [
            {"home": "BOS", "away": "LAL", "date": day.isoformat()},
            {"home": "Miami Heat", "away": "NYK", "date": day.isoformat()},
        ]
    }
    first = client.post("/predictions", json=slate)
    assert first.status_code == 200, first.text
    predictions = first.json()["predictions"]
    assert [p["home"] for p in predictions] == ["BOS", "MIA"]
    assert all(
        0 < p["home_win_probability"] < 1 and p["version"] == "v1" and p["role"] == "champion" for p in predictions
    )
    assert predictions[0]["pick"] in {"BOS", "LAL"}
    again = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": day.isoformat()})
    assert again.json()["predictions"][0]["home_win_probability"] == predictions[0]["home_win_probability"]
    logged = PredictionLog(settings.predictions_table).for_game(predictions[0]["game_id"])
    assert [(i["version"], i["role"]) for i in logged] == [("v1", "champion")]
    listed = client.get("/predictions", params={"date": day.isoformat()}).json()["predictions"]
    assert {i["game_id"] for i in listed} == {p["game_id"] for p in predictions}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"home": "BOS", "away": "XXX", "date": "2099-01-01"}, "away"),
        ({"home": "BOS", "away": "Boston Celtics", "date": "2099-01-01"}, "same team"),
        ({"home": "BOS", "away": "LAL", "date": "2099-13-45"}, "date"),
        ({"games": []}, "games"),
        ({"home": "BOS", "away": "LAL", "date": "2099-01-01", "extra": 1}, "extra"),
    ],
)
def test_given_bad_input_when_predicting_then_a_422_names_the_field(served, body, field) -> None:
    client, _, _ = served
    response = client.post("/predictions", json=body)
    assert response.status_code == 422
    assert field in response.text


def test_given_malformed_json_or_a_huge_slate_or_a_past_date_then_4xx(served) -> None:
    client, settings, day = served
    assert (
        client.post(
            "/predictions", content=b'{"home": "BOS",', headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    slate = [
        {"home": "BOS", "away": "LAL", "date": (day + dt.timedelta(days=i)).isoformat()}
        for i in range(settings.slate_limit + 1)
    ]
    over = client.post("/predictions", json={"games": slate})
    assert over.status_code == 422 and "games" in over.text
    past = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": "2019-11-01"})
    assert past.status_code == 422 and "before tip-off" in past.text
    assert client.get("/models/not-a-version").status_code == 422
    assert client.get("/models/v77").status_code == 404


def test_given_no_or_a_wrong_token_when_calling_admin_then_401_403_and_nothing_changes(served) -> None:
    client, settings, _ = served
    assert client.post("/admin/promote", json={"version": V2, "reason": "try"}).status_code == 401
    wrong = client.post(
        "/admin/promote", json={"version": V2, "reason": "try"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 403
    assert parameters.read(settings.active_model_param) == "v1"


def test_given_a_promote_then_a_rollback_when_serving_then_versions_swap_without_restart(served) -> None:
    client, settings, day = served
    game = {"home": "BOS", "away": "LAL", "date": day.isoformat()}
    promoted = client.post("/admin/promote", json={"version": V2, "reason": "better"}, headers=ADMIN)
    assert promoted.status_code == 200, promoted.text
    assert client.post("/predictions", json=game).json()["predictions"][0]["version"] == V2
    back = client.post("/admin/rollback", json={"reason": "v2 misbehaves"}, headers=ADMIN)
    assert back.status_code == 200 and back.json()["after"] == "v1"
    assert client.post("/predictions", json=game).json()["predictions"][0]["version"] == "v1"
    registry = ModelRegistry(settings.model_versions_table)
    assert registry.get("v1")["status"] == "active" and registry.get(V2)["status"] == "inactive"
    history = client.get("/models").json()["active_history"]
    assert [h["value"] for h in history][-2:] == [V2, "v1"] and "rollback" in history[-1]["why"]


def test_given_the_parameter_names_a_missing_or_tampered_version_then_the_last_good_model_keeps_serving(served) -> None:
    client, settings, day = served
    game = {"home": "BOS", "away": "LAL", "date": day.isoformat()}
    assert client.post("/predictions", json=game).json()["predictions"][0]["version"] == "v1"  # a warm instance
    parameters.write(settings.active_model_param, "v9", why="operator typo")
    response = client.post("/predictions", json=game)
    assert response.status_code == 200 and response.json()["predictions"][0]["version"] == "v1"
    assert client.get("/health").json()["last_refusal"]["version"] == "v9"

    store = ArtifactStore(settings.nbaml_bucket)
    tampered = bytearray(store.get_bytes(layout.bundle_key(V2, layout.MODEL_FILE)))
    tampered[-3] = ord(" ")
    store.put_bytes(layout.bundle_key(V2, layout.MODEL_FILE), bytes(tampered))
    parameters.write(settings.active_model_param, V2, why="bypassing the checks")
    assert client.post("/predictions", json=game).json()["predictions"][0]["version"] == "v1"
    assert "BundleIntegrityError" in client.get("/health").json()["last_refusal"]["reason"]


def test_given_a_full_canary_and_a_shadow_then_the_canary_answers_and_the_shadow_is_only_logged(served) -> None:
    client, settings, day = served
    assert (
        client.put("/admin/canary", json={"version": V2, "percent": 100, "reason": "try v2"}, headers=ADMIN).status_code
        == 200
    )
    answer = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": day.isoformat()}).json()
    assert answer["predictions"][0]["role"] == "canary" and answer["predictions"][0]["version"] == V2
    assert client.delete("/admin/canary", headers=ADMIN).status_code == 200
    assert client.put("/admin/shadow", json={"version": V2, "reason": "watch v2"}, headers=ADMIN).status_code == 200
    answer = client.post("/predictions", json={"home": "MIA", "away": "NYK", "date": day.isoformat()}).json()
    assert answer["predictions"][0]["role"] == "champion"
    logged = PredictionLog(settings.predictions_table).for_game(answer["predictions"][0]["game_id"])
    assert sorted((i["version"], i["role"], i["served"]) for i in logged) == [
        ("v1", "champion", True),
        (V2, "shadow", False),
    ]


def test_given_a_retrain_request_from_the_api_then_it_is_queued_with_its_reason(served) -> None:
    client, settings, _ = served
    response = client.post("/admin/retrain", json={"reason": "new injury data"}, headers=ADMIN)
    assert response.status_code == 202
    (message,) = boto3.client("sqs").receive_message(QueueUrl=settings.retrain_queue_url)["Messages"]
    assert "new injury data" in message["Body"] and '"manual"' in message["Body"]
