"""Outages of the real dependencies, on a template.yaml stack of its own (the drills' ``stack`` fixture).

- S3 unreachable under a warm predict instance: the client nbaml's code uses sends every S3 request to a
  closed port on 127.0.0.1 (``tests.faults.Unreachable``), with the production client configuration, so
  botocore's connection retries and backoff run before nbaml sees the error;
- DynamoDB unreachable under a warm predict instance: every request of the client the prediction log writes
  with goes to a closed port (the production client: its connection retries and backoff run); the slates are
  answered and their records wait in memory until DynamoDB answers again, then land once each;
- a retrain SIGKILLed in a subprocess while its bundle is half uploaded: no ``finally`` runs, the lock stays
  until its TTL, then the next run takes over; nothing half written is ever served.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests import faults
from tests.integration import test_drills as drills
from tests.integration.test_drills import V2, _slate, _train

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# The drills' fixtures: a deployed stack of this test's own, two seasons loaded, v1 champion and v2 registered
stack, loaded_history, two_models = drills.stack, drills.loaded_history, drills.two_models


# ---------------------------------------------------------------- S3 unreachable under a warm instance
def test_given_s3_unreachable_under_a_warm_instance_then_the_model_in_memory_keeps_serving(two_models) -> None:
    from nbaml.deployment import Deployment
    from nbaml.serving.api import create_app
    from nbaml.storage import aws

    settings, day = two_models
    api = TestClient(create_app())
    warm = api.post("/predictions", json=_slate(day))
    assert {p["version"] for p in warm.json()["predictions"]} == {"v1"}
    s3 = aws.client("s3")  # the production client: 5 retries (6 sends), 50 ms backoff base for connection errors
    down, sends = faults.Unreachable(s3, on=False), faults.Attempts(s3)
    total_sends = s3.meta.config.retries["total_max_attempts"]
    # Given: an operator promotes v2 (S3 still answers them), then S3 becomes unreachable for the instance
    Deployment(settings).promote(V2, by="drill", why="a new champion just before the outage")
    down.on = True
    # When: the warm instance is asked, sees the new champion's name and tries to load it
    started = time.monotonic()
    during = api.post("/predictions", json=_slate(day + dt.timedelta(days=1)))
    elapsed = time.monotonic() - started
    # Then: v1, in memory, answers every game; v2 is refused for the outage, not served half-read
    assert during.status_code == 200, during.text
    assert {(p["version"], p["role"]) for p in during.json()["predictions"]} == {("v1", "champion")}
    health = api.get("/health").json()
    assert health["active"]["version"] == "v1"
    assert health["last_refusal"]["version"] == V2 and health["last_refusal"]["error"] == "StorageError"
    # each S3 read was really tried the configured number of times against the closed port ...
    assert down.refused >= total_sends and down.refused == sends.count() - _sends_before(sends, started)
    spans = down.requests()
    # ... and the outage cost the request no more than botocore's backoff ceilings for each read, plus a second
    # for the rest of the request on a loaded machine
    assert elapsed < len(spans) * down.backoff_ceiling() + 1.0, (elapsed, spans)
    # When: S3 answers again (and the refusal of v2 is older than its one-second hold)
    down.on = False
    time.sleep(1.1)
    after = api.post("/predictions", json=_slate(day + dt.timedelta(days=2)))
    # Then: the instance loads v2 and serves it
    assert {(p["version"], p["role"]) for p in after.json()["predictions"]} == {(V2, "champion")}


# ---------------------------------------------------------------- DynamoDB unreachable under a warm instance
def test_given_dynamodb_unreachable_under_a_warm_instance_then_slates_are_answered_and_logged_when_it_returns(
    two_models,
) -> None:
    from nbaml.serving.api import create_app
    from nbaml.storage import aws
    from nbaml.storage.predictions import PredictionLog

    settings, day = two_models
    api = TestClient(create_app())
    assert api.post("/predictions", json=_slate(day)).status_code == 200  # warm: v1 in memory, its log written
    dynamodb = aws.resource("dynamodb").meta.client  # the client the prediction log writes with
    down = faults.Unreachable(dynamodb)
    # When: two slates are asked while every DynamoDB request of the instance meets a closed port
    started = time.monotonic()
    during = [api.post("/predictions", json=_slate(day + dt.timedelta(days=k))) for k in (1, 2)]
    elapsed = time.monotonic() - started
    # Then: both are answered by the champion; their records wait in memory, none half-written
    assert [r.status_code for r in during] == [200, 200], [r.text for r in during]
    assert {(p["version"], p["role"]) for r in during for p in r.json()["predictions"]} == {("v1", "champion")}
    assert api.get("/health").json()["pending_log_writes"] == 8
    # each write was really tried the configured number of times against the closed port, and the outage cost
    # the two requests no more than botocore's backoff ceilings for those writes, plus a second on a loaded machine
    spans = down.requests()
    assert down.refused >= 2 * down.total_sends, down.refused
    assert elapsed < len(spans) * down.backoff_ceiling() + 1.0, (elapsed, spans)
    down.on = False
    logged_during_outage = {i["game_id"] for i in PredictionLog(settings.predictions_table).all()}
    # When: DynamoDB answers again and one more request comes
    after = api.post("/predictions", json=_slate(day + dt.timedelta(days=3)))
    assert after.status_code == 200
    # Then: every prediction of the four slates is logged exactly once, with the probability it was answered with
    answered = [p for r in [*during, after] for p in r.json()["predictions"]]
    assert not {p["game_id"] for p in answered[:8]} & logged_during_outage, "nothing landed while unreachable"
    logged = {(i["game_id"], i["prediction_key"]): i for i in PredictionLog(settings.predictions_table).all()}
    for answer in answered:
        item = logged[(answer["game_id"], "v1#champion")]
        assert item["probability"] == pytest.approx(answer["home_win_probability"], abs=1e-12)
    assert len(logged) == 16 and api.get("/health").json()["pending_log_writes"] == 0


def _sends_before(sends: faults.Attempts, moment: float) -> int:
    return sum(1 for _, at in sends.sent if at < moment)


# ---------------------------------------------------------------- a retrain SIGKILLed mid-upload
KILLED_AT = dt.datetime(2021, 6, 3, tzinfo=dt.UTC)


def retrain_until_the_bundle_is_half_uploaded() -> None:
    """The child: a forced manual retrain that stops dead after its bundle's first file is in S3.

    botocore's parameter hook sees the second upload of models/{version}/ coming, prints what is in S3 so far
    and waits there for the parent's SIGKILL (a Lambda killed at its timeout or out of memory: no finally).
    """
    from nbaml.config import RetrainSettings, load_settings
    from nbaml.events import RetrainRequest, RetrainTrigger
    from nbaml.storage import aws
    from nbaml.training import pipeline
    from nbaml.training.search import TrainConfig
    from tests.conftest import FAST_TRAIN

    request = RetrainRequest(
        trigger=RetrainTrigger.MANUAL, reason="drill", requested_by="drill", force=True, requested_at=KILLED_AT
    )
    uploaded: list[str] = []

    def before_upload(params: dict[str, Any], **kwargs: Any) -> None:
        key = str(params.get("Key", ""))
        if not key.startswith("models/") or key.startswith("models/v1/"):
            return
        if uploaded:
            print(json.dumps({"request_id": request.request_id, "uploaded": uploaded}), flush=True)
            time.sleep(600)
        uploaded.append(key)

    aws.client("s3").meta.events.register("before-parameter-build.s3.PutObject", before_upload)
    pipeline.retrain(load_settings(RetrainSettings), request, config=TrainConfig(**FAST_TRAIN))
    print(json.dumps({"finished": True}), flush=True)  # the drill failed: the child was never stopped


def test_given_a_retrain_sigkilled_mid_upload_then_the_lock_holds_until_its_ttl_and_the_next_run_takes_over(
    stack: Any, loaded_history: Any, fast_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbaml.config import RetrainSettings, load_settings
    from nbaml.serving.api import create_app
    from nbaml.storage import parameters
    from nbaml.storage.artifacts import ArtifactStore
    from nbaml.storage.registry import ModelRegistry
    from nbaml.training import pipeline

    settings = load_settings(RetrainSettings)
    _train(fast_config, days=(1,))
    assert parameters.read(settings.active_model_param) == "v1"
    # Given: a retrain in a process of its own, SIGKILLed once one file of its bundle is in S3
    seen = _sigkill_mid_upload()
    (half,) = seen["uploaded"]
    version = half.split("/")[1]
    store = ArtifactStore(settings.nbaml_bucket)
    # Then: half a bundle is in S3, uncommitted, unregistered; v1 is still the champion and serves
    assert store.exists(half) and not store.bundle_committed(version)
    assert version not in {v["version"] for v in ModelRegistry(settings.model_versions_table).versions()}
    assert parameters.read(settings.active_model_param) == "v1"
    parameters.reset_cache()
    # (the first days after the history: the backfill vouches for them, so they are complete)
    day = max(g.game_date for g in loaded_history) + dt.timedelta(days=1)
    slate = _slate(day)
    assert {p["version"] for p in TestClient(create_app()).post("/predictions", json=slate).json()["predictions"]} == {
        "v1"
    }

    # and the killed run's lock is still held (no finally ran): the next run, before the TTL, is turned away
    early = pipeline.retrain(settings, _manual(4), config=fast_config)
    assert early.status == "locked" and seen["request_id"] in " ".join(early.reasons)
    # When: the next run comes after the lock's TTL (its clock moved on by the TTL and a second)
    with _later(monkeypatch, dt.timedelta(seconds=settings.retrain_lock_ttl_seconds + 1)):
        taken = pipeline.retrain(settings, _manual(5), config=fast_config)
    # Then: it takes the lock over, completes, and releases the lock (another run may take it at once)
    assert taken.status in {"promoted", "rejected"}, (taken.status, taken.reasons)
    registry = ModelRegistry(settings.model_versions_table)
    assert registry.get(taken.version)["status"] in {"active", "rejected"}
    registry.acquire_lock(pipeline.LOCK, "probe", 60)
    registry.release_lock(pipeline.LOCK, "probe")
    # and the killed run's half bundle is still never committed, registered or served
    assert not store.bundle_committed(version)
    assert version not in {v["version"] for v in ModelRegistry(settings.model_versions_table).versions()}
    champion = taken.version if taken.status == "promoted" else "v1"
    parameters.reset_cache()
    assert parameters.read(settings.active_model_param) == champion
    served = TestClient(create_app()).post("/predictions", json=_slate(day + dt.timedelta(days=1)))
    assert {p["version"] for p in served.json()["predictions"]} == {champion}


def _sigkill_mid_upload() -> dict[str, Any]:
    """Start the child, SIGKILL it once it says what it uploaded; returns what it said."""
    child = subprocess.Popen(
        [sys.executable, "-c", f"import {__name__} as t; t.retrain_until_the_bundle_is_half_uploaded()"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen = json.loads(child.stdout.readline() if child.stdout else "{}")
        assert "request_id" in seen, seen
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    return seen


def _manual(day: int) -> Any:
    from nbaml.events import RetrainRequest, RetrainTrigger

    at = dt.datetime(2021, 6, day, tzinfo=dt.UTC)
    return RetrainRequest(
        trigger=RetrainTrigger.MANUAL, reason="next", requested_by="drill", force=True, requested_at=at
    )


@contextlib.contextmanager
def _later(monkeypatch: pytest.MonkeyPatch, by: dt.timedelta) -> Iterator[None]:
    """The lock's clock (the registry's now, which the conditional write compares expiries with) moved on ``by``."""
    from nbaml.storage import registry

    class Later(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return dt.datetime.now(tz) + by

    clock = types.ModuleType("datetime")
    clock.__dict__.update(vars(dt))
    clock.datetime = Later  # type: ignore[attr-defined]
    with monkeypatch.context() as patch:
        patch.setattr(registry, "dt", clock)
        yield
