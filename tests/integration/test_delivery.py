"""A retrain request runs once on the local stack: the retrain queue, its event source mapping's local twin
(``infra.runtime.deliver_queue``), the handler, the RetrainRequests table, and a real process killed right
after it promoted.

The stack evaluates IAM: every delivery signs with the retrain function's own role.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import emulator, runtime
from infra import stack as stk
from nbaml.events import RetrainRequest, RetrainTrigger
from tests.conftest import ROOT, synthetic_history

SEED = 13
QUICK = {"TRAIN_PROFILE": "quick", "POWERTOOLS_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack-state")


@pytest.fixture(scope="module")
def stack(state_dir: Path) -> Iterator[stk.LocalStack]:
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.feeds.base import FeedBatch

    with stk.deployed(state_dir=state_dir, iam=True) as deployed:
        with runtime.function_environment(deployed.operator_env("collect")):
            load(load_settings(CommonSettings), FeedBatch(games=synthetic_history(SEED)), source="generator")
        yield deployed


def a_request(reason: str, day: int) -> RetrainRequest:
    at = dt.datetime(2021, 6, day, 5, 0, tzinfo=dt.UTC)
    return RetrainRequest(
        trigger=RetrainTrigger.MANUAL, reason=reason, requested_by="test", force=True, requested_at=at
    )


def send(stack: stk.LocalStack, request: RetrainRequest) -> None:
    """The request on the retrain queue, as the admin API and drift_check put it there."""
    from nbaml.storage.queue import send_retrain_request

    with runtime.function_environment(stack.operator_env("predict")):
        send_retrain_request(stack.resource("RetrainQueue"), request)


def deliver(stack: stk.LocalStack) -> list[dict[str, Any]]:
    """Every queued message through the retrain handler, as the SQS event source mapping delivers them."""
    results = runtime.deliver_queue(
        stack.resource("RetrainQueue"),
        lambda event: runtime.invoke(stack, "retrain", event, extra_env=QUICK),
        stack.env_for("retrain"),
    )
    return [run for result in results for run in result["runs"]]


def read(stack: stk.LocalStack) -> Any:
    """The operator's view of the stack for the block (the test's own reads)."""
    return runtime.function_environment(stack.operator_env("retrain"))


def versions_of(stack: stk.LocalStack, request_id: str) -> list[str]:
    from nbaml.storage.registry import ModelRegistry

    with read(stack):
        versions = ModelRegistry(stack.resource("ModelVersionsTable")).versions()
    return [v["version"] for v in versions if v.get("request_id") == request_id]


def request_record(stack: stk.LocalStack) -> dict[str, Any]:
    """The RetrainRequests item of the last request to run."""
    client = emulator.client("dynamodb", stack.endpoint)
    items = client.scan(TableName=stack.resource("RetrainRequestsTable"))["Items"]
    return max(items, key=lambda i: int(i["expiration"]["N"]))


def queue_depth(stack: stk.LocalStack) -> int:
    attributes = emulator.client("sqs", stack.endpoint).get_queue_attributes(
        QueueUrl=stack.resource("RetrainQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_given_the_template_then_the_requests_table_expires_its_records_and_the_mapping_reports_item_failures(
    stack: stk.LocalStack,
) -> None:
    # moto's CloudFormation ignores a table's TTL: the deploy filled it (infra/reconcile/storage.py)
    ttl = emulator.client("dynamodb", stack.endpoint).describe_time_to_live(
        TableName=stack.resource("RetrainRequestsTable")
    )["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    mapping = emulator.client("lambda", stack.endpoint).get_event_source_mapping(
        UUID=stack.resource("RetrainFunctionRequested")
    )
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_given_the_same_request_queued_twice_then_the_second_delivery_gets_the_first_outcome(
    stack: stk.LocalStack,
) -> None:
    request = a_request("first model, sent twice", 1)
    send(stack, request)
    send(stack, request)  # a client that retried, or SQS's at-least-once delivery
    first, second = deliver(stack)
    assert (first["status"], first["version"], first["answered_from_record"]) == ("promoted", "v1", False)
    assert second == first | {"answered_from_record": True}
    assert versions_of(stack, request.request_id) == ["v1"]
    assert queue_depth(stack) == 0


def test_given_a_delivery_killed_after_it_promoted_when_sqs_delivers_it_again_then_no_second_version_is_made(
    stack: stk.LocalStack, state_dir: Path, tmp_path: Path
) -> None:
    from nbaml.storage import parameters
    from nbaml.storage.queue import receive_retrain_requests
    from nbaml.storage.registry import ModelRegistry

    request = a_request("killed after promoting", 2)
    send(stack, request)
    # Given: the event source mapping hands the message to an invocation (a process of its own) ...
    with runtime.function_environment(stack.env_for("retrain")):
        (record,) = receive_retrain_requests(stack.resource("RetrainQueue"))
    (tmp_path / "event.json").write_text(json.dumps({"Records": [record]}))
    (tmp_path / "env.json").write_text(json.dumps(stack.env_for("retrain") | QUICK))
    with (tmp_path / "killed.log").open("wb") as log:
        killed = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.integration._killed_delivery",
                str(state_dir),
                str(tmp_path / "event.json"),
                str(tmp_path / "env.json"),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    # ... which is killed right after its promotion wrote the active parameter
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    with read(stack):
        active = parameters.read(stack.resource("ActiveModelParameter"))
        item = ModelRegistry(stack.resource("ModelVersionsTable")).get(active)
    assert item["request_id"] == request.request_id and item["status"] == "active"
    assert "decision" not in item  # it died before recording what it decided
    # What the request's record says in that window: INPROGRESS, until the dead invocation's timeout
    in_progress = request_record(stack)
    assert in_progress["status"]["S"] == "INPROGRESS" and "data" not in in_progress
    lapses_at = int(in_progress["in_progress_expiration"]["N"]) / 1000
    while time.time() <= lapses_at:  # the Lambda timeout passes (the visibility timeout is 6x longer)
        time.sleep(0.2)
    # When: the message's visibility timeout passes and SQS delivers it again
    emulator.client("sqs", stack.endpoint).change_message_visibility(
        QueueUrl=stack.resource("RetrainQueue"), ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
    )
    (again,) = deliver(stack)
    # Then: the version the killed delivery promoted is the outcome; nothing was trained or promoted again
    assert (again["status"], again["version"], again["resumed"]) == ("promoted", active, True), again
    assert versions_of(stack, request.request_id) == [active]
    with read(stack):
        assert parameters.read(stack.resource("ActiveModelParameter")) == active
        registry = ModelRegistry(stack.resource("ModelVersionsTable"))
        assert registry.get(active)["decision"] == "promoted"
        assert registry.versions()[0]["version"] == active  # no newer version exists
    assert request_record(stack)["status"]["S"] == "COMPLETED" and queue_depth(stack) == 0
    # the retrain lock the killed process left was taken back by the same request and released
    lock = emulator.client("dynamodb", stack.endpoint).get_item(
        TableName=stack.resource("ModelVersionsTable"), Key={"version": {"S": "LOCK#retrain"}}
    )
    assert "Item" not in lock
    # And a third delivery is answered from the record
    send(stack, request)
    (third,) = deliver(stack)
    assert third["answered_from_record"] and third["version"] == active
