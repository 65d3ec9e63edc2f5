"""A retrain request runs once (Powertools Idempotency on the RetrainRequests table, moto's DynamoDB).

Delivered twice, a request trains and promotes one version; a delivery that died after writing its
INPROGRESS record (before, at or after the promotion) is resumed by the next one, never trained again.
A death is a BaseException raised inside the run: Powertools deletes the record of a run that raised an
Exception (so its retry runs), but not of one that never returned, which is what a killed or timed-out
Lambda leaves. (tests/integration/test_delivery.py kills a real process.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from infra.runtime import LocalLambdaContext
from nbaml.config import RetrainSettings, load_settings
from nbaml.deployment import Deployment
from nbaml.events import RetrainRequest, RetrainTrigger, retrain_deliveries
from nbaml.storage import parameters
from nbaml.storage.registry import ModelRegistry, VersionStatus
from nbaml.training import delivery, pipeline


class Killed(BaseException):
    """The process died here (SIGKILL, a Lambda timeout): nothing after this line of the run happens."""


def request(reason: str = "on demand", request_id: str = "req-1") -> RetrainRequest:
    return RetrainRequest(
        trigger=RetrainTrigger.MANUAL,
        reason=reason,
        requested_by="tester",
        request_id=request_id,
        force=True,
        requested_at=dt.datetime(2021, 6, 1, 5, 0, tzinfo=dt.UTC),
    )


def sqs_event(req: RetrainRequest, message_id: str = "m-1") -> dict[str, Any]:
    return {"Records": [{"messageId": message_id, "body": req.to_message(), "eventSource": "aws:sqs"}]}


def lambda_context(timeout_s: int = 900) -> LocalLambdaContext:
    """The retrain function's context; with ``timeout_s=0`` one at its timeout, whose INPROGRESS record has
    lapsed as soon as it is written (what a killed delivery's record is once its Lambda timeout passed)."""
    return LocalLambdaContext(function_name="retrain", memory_limit_in_mb=3008, timeout_s=timeout_s)


def answer(settings: RetrainSettings, event: dict[str, Any], config, timeout_s: int = 900) -> dict[str, Any]:
    return delivery.answer(settings, retrain_deliveries(event), context=lambda_context(timeout_s), config=config)


@pytest.fixture
def trainings(monkeypatch) -> list[str]:
    """The version of every candidate trained (pipeline.train_candidate counted)."""
    trained: list[str] = []
    real = pipeline.train_candidate

    def counted(*args: Any, **kwargs: Any) -> Any:
        trained.append(kwargs["version"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_candidate", counted)
    return trained


def versions_of(settings: RetrainSettings, request_id: str) -> list[str]:
    registry = ModelRegistry(settings.model_versions_table)
    return [v["version"] for v in registry.versions() if v["request_id"] == request_id]


def request_record(settings: RetrainSettings, request_id: str = "req-1") -> dict[str, Any]:
    """The RetrainRequests item of ``request_id`` (its key is the prefix and the hash of the id)."""
    key = f"{delivery.KEY_PREFIX}#{hashlib.sha256(json.dumps(request_id).encode()).hexdigest()}"
    return boto3.resource("dynamodb").Table(settings.retrain_requests_table).get_item(Key={"id": key})["Item"]


def test_given_a_request_delivered_twice_then_one_version_is_trained_and_the_second_gets_the_recorded_outcome(
    stack, loaded_history, fast_config, trainings
) -> None:
    settings = load_settings(RetrainSettings)
    req = request()
    # When: SQS delivers the same message twice
    first = answer(settings, sqs_event(req), fast_config)
    second = answer(settings, sqs_event(req, "m-1-again"), fast_config)
    # Then: one training, one version, and the second delivery is answered from the record
    (run1,), (run2,) = first["runs"], second["runs"]
    assert (run1["status"], run1["version"], run1["answered_from_record"]) == ("promoted", "v1", False)
    assert run2 == run1 | {"answered_from_record": True}
    assert trainings == ["v1"] and versions_of(settings, req.request_id) == ["v1"]
    assert first["batchItemFailures"] == second["batchItemFailures"] == []
    record = request_record(settings)
    assert record["status"] == "COMPLETED" and json.loads(record["data"])["version"] == "v1"
    # The record expires by the table's TTL attribute, a week on
    assert 6 * 86400 < int(record["expiration"]) - dt.datetime.now(dt.UTC).timestamp() <= 7 * 86400


def test_given_a_scheduled_event_retried_by_eventbridge_then_the_month_trains_once(
    stack, loaded_history, fast_config, trainings
) -> None:
    settings = load_settings(RetrainSettings)
    event = {"detail-type": "Scheduled Event", "id": "evt-2021-06", "time": "2021-06-01T05:00:00Z", "resources": ["r"]}
    outcomes = [answer(settings, event, fast_config) for _ in range(2)]
    assert [o["runs"][0]["answered_from_record"] for o in outcomes] == [False, True]
    assert trainings == ["v1"]


def kill_after_the_role_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Deployment.promote

    def promote_then_die(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise Killed

    monkeypatch.setattr(Deployment, "promote", promote_then_die)


def kill_between_the_parameter_and_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ModelRegistry.set_status

    def die_before_recording_active(self, version, status, **kwargs):
        if status is VersionStatus.ACTIVE:
            raise Killed
        return real(self, version, status, **kwargs)

    monkeypatch.setattr(ModelRegistry, "set_status", die_before_recording_active)


def kill_after_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(pipeline, "_track", die)


def kill_before_the_promotion(monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(pipeline, "promote_candidate", die)


@pytest.mark.parametrize(
    "kill",
    [
        kill_before_the_promotion,
        kill_between_the_parameter_and_the_registry,
        kill_after_the_role_write,
        kill_after_the_decision,
    ],
    ids=lambda k: k.__name__,
)
def test_given_a_delivery_that_died_mid_run_when_redelivered_then_it_is_resumed_not_trained_again(
    stack, loaded_history, fast_config, trainings, kill
) -> None:
    settings = load_settings(RetrainSettings)
    champion = request("the champion", "req-0")
    assert answer(settings, sqs_event(champion, "m-0"), fast_config)["runs"][0]["version"] == "v1"
    req = request()
    # Given: a delivery dies before, inside, right after or well after the promotion step
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        kill(patch)
        answer(settings, sqs_event(req), fast_config, timeout_s=0)
    # Then, in that window, the request's record says INPROGRESS, with an in-progress expiry that has passed
    record = request_record(settings, req.request_id)
    assert record["status"] == "INPROGRESS" and "data" not in record
    assert int(record["in_progress_expiration"]) <= dt.datetime.now(dt.UTC).timestamp() * 1000
    # When: SQS delivers the message again after its visibility timeout
    again = answer(settings, sqs_event(req), fast_config)
    # Then: the version the first delivery trained is resumed: nothing is trained again, one version, promoted
    (run,) = again["runs"]
    version = "v20210601_050000"
    assert (run["status"], run["version"], run["resumed"]) == ("promoted", version, True), run
    assert trainings == ["v1", version] and versions_of(settings, req.request_id) == [version]
    assert parameters.read(settings.active_model_param) == version
    registry = ModelRegistry(settings.model_versions_table)
    item = registry.get(version)
    assert (item["status"], item["decision"]) == ("active", "promoted")
    assert registry.get("v1")["status"] == "inactive"
    assert request_record(settings, req.request_id)["status"] == "COMPLETED"
    # and a third delivery is answered from the record
    (third,) = answer(settings, sqs_event(req), fast_config)["runs"]
    assert third["answered_from_record"] and third["version"] == version


def test_given_a_request_still_running_when_delivered_again_then_sqs_keeps_the_message_and_a_direct_call_raises(
    stack, loaded_history, fast_config, trainings, monkeypatch
) -> None:
    settings = load_settings(RetrainSettings)
    req = request()
    seen: dict[str, Any] = {}
    real = pipeline._register

    def deliver_again_while_running(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        # When: while the first delivery runs (its INPROGRESS record is live), the message comes again
        seen["sqs"] = answer(settings, sqs_event(req, "m-dup"), fast_config)
        with pytest.raises(IdempotencyAlreadyInProgressError):
            answer(settings, req.model_dump(mode="json"), fast_config)
        seen["raised"] = True

    monkeypatch.setattr(pipeline, "_register", deliver_again_while_running)
    first = answer(settings, sqs_event(req), fast_config)
    # Then: the duplicate SQS message is reported back (SQS delivers it again later), the direct call raised,
    # and the first delivery trained and promoted the only version
    assert seen["sqs"] == {"runs": [], "batchItemFailures": [{"itemIdentifier": "m-dup"}]}
    assert seen["raised"]
    assert first["runs"][0]["status"] == "promoted" and trainings == ["v1"]


def test_given_a_request_id_reused_for_another_request_then_it_is_refused_not_run(
    stack, loaded_history, fast_config, trainings
) -> None:
    settings = load_settings(RetrainSettings)
    answer(settings, sqs_event(request("first reason")), fast_config)
    (run,) = answer(settings, sqs_event(request("another reason")), fast_config)["runs"]
    assert run["status"] == "refused" and "used before" in run["reasons"][0]
    assert trainings == ["v1"]
