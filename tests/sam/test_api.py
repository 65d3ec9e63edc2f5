"""The HTTP API through ``sam local start-api``: the template's routes, SAM's emulation of the HTTP API and its
Lambda authorizer, the predict and authorizer functions in warm containers, probed over real HTTP.

The admin routes are closed twice over, as on AWS: the HTTP API refuses a request with no Authorization
header (401) and one the authorizer function denies (403) before predict runs; predict checks the token
again. A retrain queued through the API is delivered to the retrain container (the twin of the SQS event
source mapping), and ``infra/rollback.sh`` moves the served version within MODEL_PARAM_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra import runtime
from infra.samcli import sam
from infra.samcli.stack import SamStack
from tests.sam.conftest import MAX_AGE_S, QUIET, Trained

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = "2023-01-10"
SLATE = [("BOS", "LAL"), ("MIA", "NYK"), ("GSW", "PHX"), ("DEN", "UTA"), ("MIL", "CHI"), ("DAL", "HOU")]


@pytest.fixture(scope="module")
def api(sam_stack: SamStack, trained: Trained) -> Iterator[httpx.Client]:
    """start-api on the tier's stack, warm containers, a client at its URL."""
    with sam.ApiServer(sam_stack.local) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def _wait_for(client: httpx.Client, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get("/health").json()
        if check(body):
            return
        time.sleep(0.5)
    raise AssertionError(f"the API never showed {what} within {timeout} s; last /health: {body}")


def _served_version(client: httpx.Client) -> str:
    response = client.post("/predictions", json={"home": "BOS", "away": "LAL", "date": DAY})
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["version"]


def test_given_the_trained_model_when_health_is_asked_then_it_names_the_active_version(
    api: httpx.Client, trained: Trained
) -> None:
    response = api.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok" and response.json()["active"]["version"] == trained.active


def test_given_one_game_and_a_slate_when_predicted_then_each_game_gets_one_answer_and_is_listed(
    api: httpx.Client, trained: Trained
) -> None:
    # When one game is asked, then a slate
    one = api.post("/predictions", json={"home": "BOS", "away": "LAL", "date": DAY})
    slate = api.post("/predictions", json={"games": [{"home": h, "away": a, "date": DAY} for h, a in SLATE]})
    # Then each is a probability of the home team winning, from the champion, and the day's list has them all
    assert one.status_code == 200 and slate.status_code == 200, (one.text, slate.text)
    answer = one.json()["predictions"][0]
    assert 0 < answer["home_win_probability"] < 1 and answer["pick"] in {"BOS", "LAL"}
    answers = slate.json()["predictions"]
    assert [(p["home"], p["away"]) for p in answers] == SLATE
    assert {p["role"] for p in answers} == {"champion"}
    listed = api.get("/predictions", params={"date": DAY}).json()["predictions"]
    assert {p["game_id"] for p in answers} | {answer["game_id"]} <= {p["game_id"] for p in listed}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"home": "BOS", "away": "XXX", "date": DAY}, "away"),
        ({"home": "BOS", "away": "LAL", "date": "2023-13-45"}, "date"),
        ({"home": "BOS", "away": "LAL"}, "date"),
        ({"games": []}, "games"),
        ({"home": "BOS", "away": "LAL", "date": DAY, "extra": 1}, "extra"),
    ],
)
def test_given_bad_input_when_predicting_then_a_422_names_the_field(api: httpx.Client, body: Any, field: str) -> None:
    response = api.post("/predictions", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_given_malformed_json_or_a_bad_version_then_4xx(api: httpx.Client) -> None:
    broken = api.post("/predictions", content=b'{"home": "BOS",', headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert api.get("/models/not-a-version").status_code == 422
    assert api.get("/models/v77").status_code == 404


def test_given_no_or_a_wrong_token_when_calling_admin_then_the_http_api_refuses_before_predict_runs(
    api: httpx.Client, trained: Trained
) -> None:
    body = {"version": trained.version, "reason": "try"}
    assert api.post("/admin/promote", json=body).status_code == 401
    wrong = api.post("/admin/promote", json=body, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 403
    assert api.post("/admin/retrain", json={"reason": "no"}, headers={"Authorization": "nope"}).status_code == 403


def test_given_the_token_when_a_retrain_is_queued_then_the_retrain_container_promotes_it_and_rollback_sh_undoes_it(
    api: httpx.Client, sam_stack: SamStack, trained: Trained, admin_token: str
) -> None:
    # Given the right token; When a retrain is requested through the API
    headers = {"Authorization": f"Bearer {admin_token}"}
    queued = api.post("/admin/retrain", json={"reason": "the sam tier asks for a second model"}, headers=headers)
    assert queued.status_code == 202, queued.text
    # And the queue is delivered to the retrain function's container, as the SQS event source mapping would
    runs = runtime.deliver_queue(
        sam_stack.stack.resource("RetrainQueue"),
        lambda event: sam_stack.local.invoke("RetrainFunction", event).result,
        sam_stack.stack.env_for("retrain") | QUIET,
    )
    assert len(runs) == 1 and runs[0]["runs"][0]["status"] == "promoted", runs
    second = runs[0]["runs"][0]["version"]
    # Then the API serves it within max_age
    _wait_for(api, lambda h: h["active"]["version"] == second, f"{second} active", timeout=MAX_AGE_S + 15)
    assert _served_version(api) == second
    # When the operator breaks the glass: infra/rollback.sh (one put-parameter) against the emulator
    env = {**os.environ, **sam_stack.host_environment()}
    done = subprocess.run(
        [str(REPO_ROOT / "infra" / "rollback.sh"), trained.version],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Then the next requests are served by the version it names, with no restart of the warm container
    _wait_for(api, lambda h: h["active"]["version"] == trained.version, trained.version, timeout=MAX_AGE_S + 15)
    assert _served_version(api) == trained.version
