"""The prediction API in-process on moto: predictions, bad input, admin auth, hot swap, refusal, canary, shadow."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from fastapi.testclient import TestClient

from nbaml import layout
from nbaml.config import PredictSettings, load_settings
from nbaml.games.teams import league_date, league_time
from nbaml.serving.predictor import HORIZON_DAYS
from nbaml.serving.schemas import SLATE_LIMIT
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


def test_given_a_slate_when_predicted_then_each_game_gets_a_probability_and_is_logged_per_version_and_role(
    served,
) -> None:
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
    client, _, day = served
    assert (
        client.post(
            "/predictions", content=b'{"home": "BOS",', headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    slate = [{"home": "BOS", "away": "LAL", "date": day.isoformat()} for _ in range(SLATE_LIMIT + 1)]
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
    health = client.get("/health")
    assert health.json()["last_refusal"]["error"] == "BundleIntegrityError"
    # ... and anyone may read /health: the refusal's text (it names the bucket and the account) is only logged
    assert set(health.json()["last_refusal"]) == {"version", "error", "at"} and settings.nbaml_bucket not in health.text


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


# ---------------------------------------------------------------- abuse cases of a public endpoint
def _ssm_calls() -> list[str]:
    """Every SSM operation our client makes from now on (botocore's own event hook)."""
    from nbaml.storage.aws import client

    calls: list[str] = []
    client("ssm").meta.events.register("before-call.ssm", lambda model, **_: calls.append(model.name))
    return calls


def test_given_anonymous_callers_when_models_is_asked_100_times_then_ssm_is_asked_at_most_four_times(served) -> None:
    from nbaml.serving.api import create_app

    _, settings, _ = served
    # Given: the template's freshness (30 s), and a warm instance
    client = TestClient(create_app(settings.model_copy(update={"model_param_max_age_seconds": 30})))
    calls = _ssm_calls()
    # When: 100 anonymous requests for the registry and 100 for one version
    overviews = [client.get("/models") for _ in range(100)]
    versions = [client.get(f"/models/{V2}") for _ in range(100)]
    # Then: all answered, from one read of the three roles and the active parameter's history
    assert {r.status_code for r in overviews + versions} == {200}
    assert versions[0].json()["version"] == V2
    assert len(calls) <= 4, calls
    # ... and the public view names no IAM principal (SSM's LastModifiedUser names the account)
    assert all(
        set(change) == {"value", "parameter_version", "at", "why"} for change in overviews[0].json()["active_history"]
    )


def test_given_a_date_past_the_horizon_or_an_epoch_number_then_422_names_the_field_and_nothing_is_logged(
    served,
) -> None:
    client, settings, day = served
    today = league_date(dt.datetime.now(dt.UTC))  # the horizon counts from the league's (Eastern) date
    far = (today + dt.timedelta(days=HORIZON_DAYS + 1)).isoformat()
    slate = {
        "games": [{"home": "BOS", "away": "LAL", "date": day.isoformat()}, {"home": "MIA", "away": "NYK", "date": far}]
    }
    refused = client.post("/predictions", json=slate)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "games", 1, "date"]
    assert PredictionLog(settings.predictions_table).all() == []  # the whole slate was refused before any work
    last = (today + dt.timedelta(days=HORIZON_DAYS)).isoformat()
    inside = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": last})
    # inside the horizon, so no 422: refused all the same (409), since no day after the backfill was collected
    assert inside.status_code == 409 and inside.json()["missing"][0] == {
        "date": (day).isoformat(),
        "collected": False,
        "pending": [],
    }
    for number in ("0", "1700000000"):
        epoch = client.get("/predictions", params={"date": number})
        assert epoch.status_code == 422 and epoch.json()["detail"][0]["loc"] == ["query", "date"]


def test_given_a_state_ahead_of_the_clock_then_the_horizon_counts_from_the_state(served) -> None:
    client, _, day = served
    # Given: the team state's last game day (day - 1) is far ahead of today's date
    client.app.state.serving.predictor.now = lambda: league_time(day - dt.timedelta(days=400), dt.time(12))
    last = day - dt.timedelta(days=1) + dt.timedelta(days=HORIZON_DAYS)
    inside = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": last.isoformat()})
    over = client.post(
        "/predictions", json={"home": "BOS", "away": "LAL", "date": (last + dt.timedelta(1)).isoformat()}
    )
    # the last day of the horizon passes the date check (then waits for its earlier days: 409); one more is a 422
    assert inside.status_code == 409 and over.status_code == 422 and "date" in over.json()["detail"][0]["loc"]


def test_given_huge_team_strings_or_slates_then_422_before_any_work_and_the_input_is_not_echoed(
    served, monkeypatch
) -> None:
    from nbaml.serving import schemas

    client, _, day = served
    looked_up: list[str] = []
    real = schemas.team_abbreviation
    monkeypatch.setattr(schemas, "team_abbreviation", lambda value: looked_up.append(value) or real(value))
    # When: a 100,000-character team, an unknown one, and (below) a slate of 5,000 games
    huge = client.post("/predictions", json={"home": "Z" * 100_000, "away": "LAL", "date": day.isoformat()})
    unknown = client.post("/predictions", json={"home": "Springfield Isotopes", "away": "LAL", "date": day.isoformat()})
    # Then: each is a 422 naming the field, short, without the input
    assert huge.status_code == 422 and "home" in huge.json()["detail"][0]["loc"]
    assert len(huge.content) < 1000 and "ZZZZ" not in huge.text
    assert unknown.status_code == 422 and "Springfield" not in unknown.text
    looked_up.clear()
    many = client.post("/predictions", json={"games": [{"home": "BOS", "away": "LAL", "date": day.isoformat()}] * 5000})
    assert many.status_code == 422 and many.json()["detail"][0]["loc"] == ["body", "games"]
    # ... and the slate was cut off after SLATE_LIMIT + 1 games, not read to its end
    assert len(looked_up) <= 2 * (SLATE_LIMIT + 1), len(looked_up)


def test_given_two_routes_on_one_path_when_a_method_is_not_allowed_then_allow_names_both(served) -> None:
    client, _, _ = served
    options = client.options("/predictions")
    assert options.status_code == 405 and {"GET", "POST"} <= set(options.headers["allow"].split(", "))
    patch = client.patch("/admin/canary", headers=ADMIN)
    assert patch.status_code == 405 and {"PUT", "DELETE"} <= set(patch.headers["allow"].split(", "))


class CountingSink:
    """The prediction log, counting writes; with a clock, each write takes ``seconds`` on it (a slow table)."""

    def __init__(self, clock: list[float] | None = None, seconds: float = 0.0) -> None:
        self.writes = 0
        self.clock, self.seconds = clock, seconds

    def record(self, prediction) -> bool:
        self.writes += 1
        if self.clock is not None:
            self.clock[0] += self.seconds
        return True


def _predictor(settings, sink, **options):
    from nbaml.serving.models import ServedModels
    from nbaml.serving.predictor import Predictor

    models = ServedModels(
        store=ArtifactStore(settings.nbaml_bucket),
        active_param=settings.active_model_param,
        canary_param=settings.canary_model_param,
        shadow_param=settings.shadow_model_param,
        max_age=0,
    )
    return Predictor(models, sink, **options)


def _queued(n: int, day: dt.date) -> list:
    from nbaml.storage.predictions import PredictionRecord

    return [PredictionRecord(f"g{i}", day.isoformat(), "BOS", "LAL", "v1", "champion", 0.5, "h", 0.1) for i in range(n)]


def test_given_10000_queued_log_writes_when_a_request_comes_then_it_flushes_at_most_the_flush_limit(served) -> None:
    from nbaml.serving.predictor import FLUSH_LIMIT, PENDING_LIMIT, GameQuery

    _, settings, day = served
    sink = CountingSink()
    predictor = _predictor(settings, sink)
    predictor._pending.extend(_queued(PENDING_LIMIT, day))  # what a long DynamoDB outage leaves
    predictor.predict([GameQuery("BOS", "LAL", day)])
    assert sink.writes == 1 + FLUSH_LIMIT  # its own record, then FLUSH_LIMIT of the queue
    assert predictor.pending == PENDING_LIMIT - FLUSH_LIMIT


def test_given_a_slow_prediction_log_when_a_slate_is_asked_then_writes_stop_at_the_budget_and_the_rest_wait(
    served,
) -> None:
    from nbaml.serving.predictor import LOG_BUDGET_SECONDS, GameQuery

    _, settings, day = served
    now = [0.0]
    sink = CountingSink(clock=now, seconds=LOG_BUDGET_SECONDS * 0.4)  # every write takes 40 % of the budget
    predictor = _predictor(settings, sink, clock=lambda: now[0])
    predictor._pending.extend(_queued(100, day))
    pairs = [("BOS", "LAL"), ("MIA", "NYK"), ("GSW", "DEN"), ("CHI", "DET")]
    answers = predictor.predict([GameQuery(h, a, day) for h, a in pairs])
    assert len(answers) == 4
    # 3 writes spend the budget (120 %): the fourth record joins the queue, which is not touched
    assert sink.writes == 3 and predictor.pending == 101
