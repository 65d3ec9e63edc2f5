"""Security: least privilege read from the translated template, and secrets that never reach a log line.

Covered elsewhere, not repeated here:
- nothing read back from S3 can run code: a planted pickle and a tampered model file are refused in
  tests/unit/test_bundle.py;
- admin routes refuse anonymous (401) and wrong-token (403) calls and change nothing:
  tests/unit/test_serving.py::test_given_no_or_a_wrong_token_when_calling_admin_then_401_403_and_nothing_changes.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from infra import template as tpl
from infra.emulator import LOCAL_ACCOUNT_ID, LOCAL_REGION
from infra.iam import allows, role_statements
from tests.conftest import scheduled_event

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
ACCOUNT, REGION = LOCAL_ACCOUNT_ID, LOCAL_REGION

# AWS managed policies SAM attaches, and why each may say Resource "*": CloudWatch Logs (the function's own
# log stream; EMF metrics travel in it, so no cloudwatch:PutMetricData is needed), X-Ray (Tracing: Active
# has no resource-level permissions), and the SQS event source mapping (retrain only; see security/FINDINGS.md).
BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
SQS_SOURCE = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
STAR_ACTIONS_ALLOWED = ("logs:", "xray:", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


# ---------------------------------------------------------------- (a) least privilege
@functools.cache
def _translated() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    sam = tpl.load(tpl.DEFAULT_TEMPLATE)
    translated = tpl.translate(sam)  # the template's default parameters
    params = tpl.parameters_with_defaults(sam)
    resources = translated["Resources"]

    def name(lid: str) -> str:
        props = resources[lid].get("Properties") or {}
        declared = props.get("BucketName") or props.get("TableName") or props.get("Name")
        return str(tpl.Intrinsics(params, pseudo).resolve(declared)) if declared else lid

    def get_att(lid: str, attribute: str) -> str:
        kind = resources[lid]["Type"]
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name(lid)}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name(lid)}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{lid}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{lid}",
        }
        return arns.get(kind, f"arn:aws:unknown:::{lid}.{attribute}")

    pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    intrinsics = tpl.Intrinsics(params, pseudo, conditions=translated.get("Conditions"), ref=name, get_att=get_att)
    roles: dict[str, dict[str, Any]] = {}
    for lid, path in tpl.function_dirs(sam).items():
        role = resources[lid]["Properties"]["Role"]["Fn::GetAtt"][0]
        roles[tpl.short_name(path)] = intrinsics.resolve(resources[role]["Properties"])
    return {"bucket": name("ArtifactBucket"), **{lid: name(lid) for lid in resources}}, roles


def _managed(arn: str) -> list[dict[str, Any]]:
    """An AWS managed policy's statements, from the copy moto ships (offline, the documents IAM serves)."""
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    documents = json.loads(aws_managed_policies_data)
    statement = documents[arn.rsplit("/", 1)[-1]]["Document"]["Statement"]
    return [statement] if isinstance(statement, dict) else list(statement)


def _statements(function: str, *, managed: bool = True) -> list[dict[str, Any]]:
    role = _translated()[1][function]
    found = role_statements(role)
    if managed:
        for arn in role.get("ManagedPolicyArns", []):
            found.extend(_managed(arn))
    return found


def _functions() -> list[str]:
    return sorted(_translated()[1])


def _s3(prefix: str) -> str:
    return f"arn:aws:s3:::{_translated()[0]['bucket']}/{prefix}some/object"


def _ssm(path: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/nbaml/{STAGE}/{path}"


def _table(lid: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{_translated()[0][lid]}"


def _who(action: str, resource: str) -> set[str]:
    return {f for f in _functions() if allows(_statements(f), action, resource)}


def test_given_the_translated_template_then_the_five_functions_are_judged() -> None:
    assert _functions() == ["authorizer", "collect", "drift_check", "predict", "retrain"]


@pytest.mark.parametrize(
    ("prefix", "writers"),
    [
        ("models/", {"retrain"}),  # predict, collect and drift_check can never replace a bundle
        ("reports/", {"drift_check"}),
        ("raw/", {"collect"}),
        ("state/", {"collect"}),
        ("training/", {"collect"}),
    ],
)
def test_given_each_prefix_when_evaluated_then_only_its_owner_may_put_objects(prefix: str, writers: set[str]) -> None:
    assert _who("s3:PutObject", _s3(prefix)) == writers


def test_given_the_bucket_when_evaluated_then_no_function_deletes_or_rewrites_its_settings() -> None:
    bucket = f"arn:aws:s3:::{_translated()[0]['bucket']}"
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketPolicy", "s3:PutBucketVersioning"):
        assert _who(action, _s3("models/")) == set() and _who(action, bucket) == set(), action


def test_given_the_role_parameters_then_only_retrain_predict_and_the_canary_s_drift_check_write_them() -> None:
    # drift_check steps the canary (nbaml.promotion.canary): its parameter, and the active one at 100 %. The
    # grant covers model/* (shadow too): an exact list would leave the active ARN unused in the IAM workload,
    # where no canary reaches 100 %.
    for role in ("active", "canary", "shadow"):
        assert _who("ssm:PutParameter", _ssm(f"model/{role}")) == {"drift_check", "predict", "retrain"}
    assert _who("ssm:PutParameter", _ssm("feed/api-key")) == set()
    assert _who("ssm:PutParameter", _ssm("admin/token")) == set()


def test_given_the_secrets_then_each_is_read_only_by_the_function_that_needs_it() -> None:
    assert _who("ssm:GetParameter", _ssm("feed/api-key")) == {"collect"}
    assert _who("ssm:GetParameter", _ssm("admin/token")) == {"authorizer", "predict"}
    # Nothing reads the whole tree (a path read would return both secrets)
    assert _who("ssm:GetParametersByPath", _ssm("")) == set()


def test_given_the_tables_then_writes_stay_with_their_owners() -> None:
    assert _who("dynamodb:PutItem", _table("GamesTable")) == {"collect"}
    assert _who("dynamodb:PutItem", _table("PredictionsTable")) == {"predict"}
    assert _who("dynamodb:UpdateItem", _table("PredictionsTable")) == {"collect"}  # joins outcomes
    # drift_check records the canary's checks and steps on its version
    assert _who("dynamodb:UpdateItem", _table("ModelVersionsTable")) == {"drift_check", "predict", "retrain"}
    for lid in ("GamesTable", "PredictionsTable"):
        assert _who("dynamodb:DeleteItem", _table(lid)) == set(), lid
    # the retrain lock, and the roles lock every admin change (and each canary step) holds
    assert _who("dynamodb:DeleteItem", _table("ModelVersionsTable")) == {"drift_check", "predict", "retrain"}
    for action in ("dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:Scan"):
        assert all(_who(action, _table(lid)) == set() for lid in ("GamesTable", "PredictionsTable")), action


def test_given_every_statement_then_none_says_resource_star_beyond_logs_xray_and_the_sqs_source() -> None:
    for function in _functions():
        # The template's own statements: never Resource "*", never an action wildcard
        for statement in _statements(function, managed=False):
            resources = statement.get("Resource")
            assert "*" not in ([resources] if isinstance(resources, str) else resources), (function, statement)
            assert "*" not in json.dumps(statement.get("Action")), (function, statement)
        # What SAM attaches: only these, and the SQS one only where an SQS event needs it
        managed = set(_translated()[1][function].get("ManagedPolicyArns", []))
        assert managed <= {BASIC, XRAY, SQS_SOURCE}, function
        assert (SQS_SOURCE in managed) is (function == "retrain"), function
        for arn in managed:
            for statement in _managed(arn):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all(a.startswith(STAR_ACTIONS_ALLOWED) for a in actions), (arn, actions)


# ---------------------------------------------------------------- (c) secrets never reach a log line
FEED_KEY = "feedkey-7c1d-NEVER-LOG-THIS-9a2b"
ADMIN_TOKEN = "admintoken-42f0-NEVER-LOG-THIS-e3b1"
WRONG_TOKEN = "wrongtoken-0d9e-NEVER-LOG-THIS-77aa"
SECRETS = (FEED_KEY, ADMIN_TOKEN, WRONG_TOKEN)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Every log record (DEBUG and up, every logger) and everything written to stdout and stderr.

    Powertools' Logger writes JSON to stdout through its own handler; the standard loggers propagate to
    the root, where caplog sits. A parent Powertools logger is created at DEBUG so the child loggers of
    nbaml's modules emit everything they have. botocore stays at INFO, the level Lambda's JSON logging gives
    the runtime's loggers by default: its DEBUG wire log prints request and response bodies, SecureString
    values included, whoever the caller (see the template check below and security/FINDINGS.md).
    """
    from aws_lambda_powertools import Logger

    caplog.set_level(logging.DEBUG)
    # Powertools loggers configured earlier in the session (a handler run at POWERTOOLS_LOG_LEVEL=ERROR) keep
    # their levels, children included: every nbaml logger is opened up for this test
    for name in [n for n in logging.root.manager.loggerDict if n == "nbaml" or n.startswith("nbaml.")]:
        caplog.set_level(logging.DEBUG, logger=name)
    for library in ("botocore", "boto3", "urllib3"):
        caplog.set_level(logging.INFO, logger=library)
    Logger(service="nbaml", level="DEBUG")

    def collected() -> str:
        out, err = capsys.readouterr()
        records = "\n".join(
            f"{r.name} {r.levelname} {r.getMessage()} {r.__dict__} {r.exc_text or ''}" for r in caplog.records
        )
        return "\n".join([out, err, records, caplog.text])

    yield collected


def test_given_the_template_then_no_function_turns_the_aws_sdk_wire_log_on() -> None:
    # ApplicationLogLevel/SystemLogLevel DEBUG or TRACE would let botocore log SecureString values
    sam = tpl.load(tpl.DEFAULT_TEMPLATE)
    for lid in tpl.function_dirs(sam):
        config = sam["Resources"][lid]["Properties"].get("LoggingConfig", {})
        assert config.get("LogFormat") == "JSON", lid
        for key in ("ApplicationLogLevel", "SystemLogLevel"):
            assert str(config.get(key, "INFO")).upper() not in {"DEBUG", "TRACE"}, (lid, key)
    globals_env = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env.get("POWERTOOLS_LOG_LEVEL") != "DEBUG"


def assert_no_secret(text: str) -> None:
    assert text.strip(), "nothing was captured: the test would pass vacuously"
    for secret in SECRETS:
        assert secret not in text
        assert secret[:16] not in text  # nor a recognisable piece of it


def _game_item(day: dt.date) -> dict[str, Any]:
    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=dt.UTC).isoformat()
    return {
        "id": 1,
        "date": start,
        "status": {"short": "FT"},
        "league": {"id": 12, "season": "2023-2024"},
        "teams": {"home": {"name": "Boston Celtics"}, "away": {"name": "Los Angeles Lakers"}},
        "scores": {"home": {"total": 110}, "away": {"total": 101}},
    }


def test_given_a_feed_that_answers_401_and_500_when_fetched_then_the_key_is_never_logged(
    feed_server: HTTPServer, local_tls: Any, all_logs: Any
) -> None:
    from nbaml.errors import FeedAuthError, FeedError
    from nbaml.games.feeds.api_basketball import ApiBasketballFeed

    day = dt.date(2024, 1, 5)
    feed = ApiBasketballFeed(
        lambda: FEED_KEY,
        base_url=feed_server.url_for("/"),
        max_attempts=3,
        sleep=lambda s: None,
        ssl_context=local_tls.client_context(),
    )
    # 500 (retried, logged as warnings), then 401 (the key is rejected)
    feed_server.expect_ordered_request("/games").respond_with_data(f"upstream broke; echo {FEED_KEY}", status=500)
    feed_server.expect_ordered_request("/games").respond_with_data("unauthorized", status=401)
    with pytest.raises(FeedAuthError) as rejected:
        feed.fetch_raw(day, day)
    # 500 until the retries run out
    feed_server.clear()
    feed_server.expect_request("/games").respond_with_data(f"oops {FEED_KEY}", status=500)
    with pytest.raises(FeedError) as gave_up:
        feed.fetch_raw(day, day)
    # an API that echoes the key in a 200 error body
    feed_server.clear()
    feed_server.expect_request("/games").respond_with_json({"errors": {"token": f"bad key {FEED_KEY}"}, "response": []})
    with pytest.raises(FeedAuthError) as echoed:
        feed.fetch_raw(day, day)
    # The key did travel, in the header only
    assert all(r.headers.get("x-rapidapi-key") == FEED_KEY for r, _ in feed_server.log)
    assert all(FEED_KEY not in r.url for r, _ in feed_server.log)
    for failure in (rejected, gave_up, echoed):
        assert FEED_KEY not in str(failure.value) and FEED_KEY not in repr(failure.value)
    logging.getLogger("test").warning("failures: %s", [str(f.value) for f in (rejected, gave_up, echoed)])
    assert_no_secret(all_logs())


def test_given_admin_calls_with_right_and_wrong_tokens_then_no_token_is_logged(
    stack: Any, loaded_history: Any, fast_config: Any, monkeypatch: pytest.MonkeyPatch, all_logs: Any
) -> None:
    from fastapi.testclient import TestClient

    from nbaml.config import PredictSettings, RetrainSettings, load_settings
    from nbaml.events import RetrainRequest, RetrainTrigger
    from nbaml.serving.api import create_app
    from nbaml.training import pipeline

    monkeypatch.setenv("MODEL_PARAM_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    request = RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", requested_by="t", force=True)
    pipeline.retrain(load_settings(RetrainSettings), request, config=fast_config)
    settings = load_settings(PredictSettings)
    boto3.client("ssm").put_parameter(Name=settings.admin_token_param, Value=ADMIN_TOKEN, Type="SecureString")
    client = TestClient(create_app(), raise_server_exceptions=False)
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}
    calls = [
        client.post("/admin/promote", json={"version": "v1", "reason": "keep v1"}, headers=right),
        client.post("/admin/promote", json={"version": "v1", "reason": "keep v1"}, headers=wrong),
        client.post("/admin/rollback", json={"reason": "nothing to roll back to"}, headers=right),
        client.put("/admin/canary", json={"version": "v77", "percent": 5, "reason": "missing"}, headers=right),
        client.delete("/admin/shadow", headers=wrong),
        client.post("/admin/retrain", json={"reason": "because"}, headers=right),
        client.post("/admin/retrain", json={"reason": "because"}, headers={"Authorization": f"Basic {WRONG_TOKEN}"}),
    ]
    assert [c.status_code for c in calls] == [200, 403, 404, 404, 403, 202, 401]
    for call in calls:
        assert ADMIN_TOKEN not in call.text and WRONG_TOKEN not in call.text
    # The token unreadable: the app denies, and says so without the presented token
    boto3.client("ssm").delete_parameter(Name=settings.admin_token_param)
    from nbaml.storage import parameters

    parameters.reset_cache()
    assert client.post("/admin/retrain", json={"reason": "because"}, headers=right).status_code == 403
    assert_no_secret(all_logs())


def _collect_handler() -> Any:
    """functions/collect/app.py as Lambda loads it, under a name of its own (a fresh cold start)."""
    path = ROOT / "functions" / "collect" / "app.py"
    spec = importlib.util.spec_from_file_location("nbaml_security_collect_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.handler


def test_given_collect_on_the_api_basketball_feed_when_it_succeeds_and_fails_then_the_key_is_never_logged(
    stack: Any, feed_server: HTTPServer, local_tls: Any, monkeypatch: pytest.MonkeyPatch, all_logs: Any
) -> None:
    from infra.runtime import LocalLambdaContext
    from nbaml.errors import FeedAuthError

    # Given: collect configured as the template configures it for the live feed, the key in its SecureString,
    # and FEED_BASE_URL (a local-only setting) pointing the API-Basketball client at the local server
    monkeypatch.setenv("FEED_SOURCE", "api-basketball")
    monkeypatch.setenv("FEED_BASE_URL", feed_server.url_for("/").rstrip("/"))
    monkeypatch.setenv("SSL_CERT_FILE", str(local_tls.ca_file))  # trust the local server's certificate
    monkeypatch.setenv("COLLECT_LOOKBACK_DAYS", "2")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    boto3.client("ssm").put_parameter(
        Name=stack.env["FEED_KEY_PARAM"], Value=FEED_KEY, Type="SecureString", Overwrite=True
    )
    run = dt.date(2024, 1, 8)
    event = scheduled_event(run)
    context = LocalLambdaContext(function_name="collect", memory_limit_in_mb=512, timeout_s=300)
    handler = _collect_handler()

    # When: a day that first fails with a 500 and then answers, another day, and today
    feed_server.expect_ordered_request("/games").respond_with_data(f"busy {FEED_KEY}", status=500)
    feed_server.expect_ordered_request("/games").respond_with_json(
        {"errors": [], "response": [_game_item(run - dt.timedelta(days=2))]}
    )
    feed_server.expect_ordered_request("/games").respond_with_json({"errors": [], "response": []})
    feed_server.expect_ordered_request("/games").respond_with_json({"errors": [], "response": []})  # today's schedule
    report = handler(event, context)
    assert report["final_games"] == 1
    # When: the key is rejected (the handler raises, as a scheduled job must)
    feed_server.clear()
    feed_server.expect_request("/games").respond_with_data("nope", status=401)
    with pytest.raises(FeedAuthError) as rejected:
        handler(event, context)
    logging.getLogger("test").exception("collect failed", exc_info=rejected.value)

    # Then: the key went out in a header, never in a log line, a report or an error
    assert any(r.headers.get("x-rapidapi-key") == FEED_KEY for r, _ in feed_server.log)
    assert FEED_KEY not in json.dumps(report) and FEED_KEY not in str(rejected.value)
    captured = all_logs()
    assert "INFO collected" in captured  # the job's own log line (with its report) was captured
    assert_no_secret(captured + io.StringIO(str(rejected.getrepr())).getvalue())


def test_given_anonymous_requests_that_fail_in_storage_then_bodies_are_generic_and_the_log_has_the_details(
    stack: Any, monkeypatch: pytest.MonkeyPatch, all_logs: Any
) -> None:
    from fastapi.testclient import TestClient

    from nbaml.config import PredictSettings, load_settings
    from nbaml.serving.api import create_app

    monkeypatch.setenv("MODEL_PARAM_MAX_AGE_SECONDS", "0")
    settings = load_settings(PredictSettings)
    boto3.client("ssm").put_parameter(Name=settings.admin_token_param, Value=ADMIN_TOKEN, Type="SecureString")
    client = TestClient(create_app(), raise_server_exceptions=False)
    # Given: no drift report yet, and a Predictions table that has gone
    boto3.client("dynamodb").delete_table(TableName=settings.predictions_table)
    # When: anonymous callers ask for both
    report = client.get("/reports/latest.json")
    listed = client.get("/predictions", params={"date": "2021-01-04"})
    # Then: a 404 and a 503 in general words, naming neither the bucket (it holds the account id), the table
    # nor botocore's message, each with a request id ...
    assert (report.status_code, listed.status_code) == (404, 503)
    for answer in (report, listed):
        body = answer.json()
        assert set(body) == {"detail", "error", "request_id"} and body["request_id"]
        for internal in (settings.nbaml_bucket, ACCOUNT, settings.predictions_table, "ResourceNotFound", "botocore"):
            assert internal not in answer.text
    # ... under which the log holds the details
    logs = all_logs()
    failure = next(line for line in logs.splitlines() if listed.json()["request_id"] in line)
    assert "ResourceNotFoundException" in failure and "/predictions" in failure
    # An admin caller, who holds the token, reads the reason
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    missing = client.post("/admin/promote", json={"version": "v77", "reason": "no such version"}, headers=admin)
    assert missing.status_code == 404 and "v77" in missing.json()["detail"]
