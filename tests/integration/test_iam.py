"""IAM proven both ways: every call each function makes is allowed by its policy, and every grant is used.

The stack runs with moto's IAM evaluation on (``infra.iam``): each function signs with its own execution
role, so a call its policy does not allow is refused as it would be on AWS. A workload runs each
function's every job through the local runtime (the handlers themselves, with the template's
environment): collect on the synthetic league and on API-Basketball, predict on every public and admin
route, drift_check with a drift that queues a retrain and with a canary it aborts, retrain failing (no
games yet), then first, on drift and on demand, the authorizer allowing and denying, and each scheduled
function failing its retries (which sends Lambda's on-failure record under the function's role). Every
authorization moto decided is recorded; the audit then evaluates the record against each function's
policies with moto's own evaluator, both ways.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from infra import iam, runtime
from infra import template as tpl
from infra.clock import ScheduleClock
from infra.stack import LocalStack
from nbaml.games.feeds.generator import SyntheticLeague
from nbaml.games.teams import league_time
from tests.conftest import prediction_of

pytestmark = pytest.mark.integration

SEED = 13  # a league whose quick models (first on 1.5 seasons, then on drift) pass the gates, Elo included
QUICK = {"TRAIN_PROFILE": "quick", "POWERTOOLS_LOG_LEVEL": "WARNING"}
FEED_KEY = "local-iam-test-key"


def _scheduled(stack: LocalStack, function: str, day: dt.date, hour: int) -> dict[str, Any]:
    """The event ``function``'s schedule delivers, fired at ``hour`` on the league's clock of ``day``."""
    firing = ScheduleClock(tpl.load(stack.template_path)).firing(
        stack.function_id(function), league_time(day, dt.time(hour))
    )
    return firing.event(name=stack.resource(firing.resource_logical_id))


class Workload:
    """Each function's jobs on one stack, in the order a season would run them."""

    def __init__(self, stack: LocalStack, league: SyntheticLeague) -> None:
        self.stack = stack
        self.league = league
        first = league.first_season
        season = league.games(first + 1)
        self.day0 = season[len(season) // 2].game_date  # the first day the models predict
        self.history = [g for g in league.games(first) + season if g.game_date < self.day0]
        self.token = str(stack.admin_token)
        self.results: dict[str, list[Any]] = {}
        self.now = league_time(self.day0, dt.time(11))  # the predict function's clock (see the fixture)

    def scheduled(self, function: str, day: dt.date, hour: int) -> dict[str, Any]:
        return _scheduled(self.stack, function, day, hour)

    def operator_env(self) -> dict[str, str]:
        return self.stack.operator_env("collect")

    def invoke(self, function: str, event: Any, **extra: str) -> Any:
        result = runtime.invoke(self.stack, function, event, extra_env={"POWERTOOLS_LOG_LEVEL": "WARNING", **extra})
        self.results.setdefault(function, []).append(result)
        return result

    def invoke_async(self, function: str, event: Any) -> None:
        """An asynchronous invocation (a schedule's) expected to fail every try: Lambda queues its record."""
        from nbaml.events import MalformedEventError

        with pytest.raises(MalformedEventError):
            runtime.invoke_async(self.stack, function, event, extra_env={"POWERTOOLS_LOG_LEVEL": "CRITICAL"})

    def api(self, method: str, path: str, *, admin: bool = False, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if admin else {}
        event = runtime.http_api_event(method, path, headers=headers, stage=self.stack.parameters["Stage"], **kwargs)
        response = self.invoke("predict", event, MODEL_PARAM_MAX_AGE_SECONDS="0")
        status = response["statusCode"]
        assert status == expect or (expect == 200 and status < 300), f"{method} {path}: {status} {response.get('body')}"
        if "json" not in response["headers"].get("content-type", ""):
            return {"text": response.get("body", "")}
        return json.loads(response["body"]) if response.get("body") else {}

    def slate(self, day: dt.date) -> None:
        """The day's slate, asked at 11:00 Eastern: before its tip-offs, so the predict function logs it."""
        self.now = league_time(day, dt.time(11))
        games = [{"home": g.home, "away": g.away, "date": day.isoformat()} for g in self.league.schedule(day)]
        if games:
            self.api("POST", "/predictions", body={"games": games[:20]})

    def deliver_retrains(self) -> None:
        queue = self.stack.resource("RetrainQueue")
        runtime.deliver_queue(
            queue, lambda event: self.invoke("retrain", event, **QUICK), self.stack.env_for("retrain")
        )

    # ------------------------------------------------------------ the jobs
    def backfill(self) -> None:
        from nbaml.backfill import load
        from nbaml.config import CommonSettings, load_settings
        from nbaml.games.feeds.base import FeedBatch

        with runtime.function_environment(self.operator_env()):  # `nbaml backfill` is an operator's tool
            load(load_settings(CommonSettings), FeedBatch(games=self.history), source="generator")

    def first_model_event(self) -> dict[str, Any]:
        requested = dt.datetime.combine(self.day0, dt.time(1), tzinfo=dt.UTC).isoformat()
        return {
            "trigger": "manual",
            "reason": "first model",
            "requested_by": "test",
            "force": True,
            "requested_at": requested,
            "request_id": "iam-first-model",
        }

    def a_retrain_before_any_game_fails(self) -> None:
        """No games yet: the run raises, and its request's in-progress record is deleted so a retry can run."""
        from nbaml.errors import InsufficientDataError

        with pytest.raises(InsufficientDataError):
            self.invoke("retrain", self.first_model_event(), **QUICK)

    def first_model(self) -> None:
        """The same request again, once the history is loaded: it runs (a failed request is not recorded)."""
        run = self.invoke("retrain", self.first_model_event(), **QUICK)["runs"][0]
        assert run["status"] == "promoted" and not run["answered_from_record"], run

    def a_week_of_slates_then_collect(self) -> dt.date:
        self.api("GET", "/reports/latest", expect=404)  # no drift check has run yet: 404, not 403 nor 503
        for offset in range(7):  # each morning's collect (03:00 Eastern), then the day's slate
            day = self.day0 + dt.timedelta(days=offset)
            self.invoke("collect", self.scheduled("collect", day, 3), FEED_SOURCE="generator", FEED_SEED=str(SEED))
            self.slate(day)
        run_date = self.day0 + dt.timedelta(days=7)
        collected = self.invoke(
            "collect", self.scheduled("collect", run_date, 3), FEED_SOURCE="generator", FEED_SEED=str(SEED)
        )
        assert collected["final_games"] > 0 and collected["predictions_resolved"] > 0, collected
        return run_date

    def drift_that_queues_a_retrain(self, run_date: dt.date) -> None:
        from nbaml.config import CommonSettings, load_settings
        from nbaml.storage.predictions import PredictionLog

        # Confidently wrong predictions on the last 60 games before the week: the CUSUM must fire.
        games = self.history[-60:]
        with runtime.function_environment(self.operator_env()):
            log = PredictionLog(load_settings(CommonSettings).predictions_table)
            for game in games:
                log.record(prediction_of(game, 0.02 if game.home_won else 0.98, version="v1"))
            log.resolve(games)
        report = self.invoke("drift_check", self.scheduled("drift_check", run_date, 4))
        assert report["drift"] and report["retrain_requested"], report
        before = len(self.results.get("retrain", []))
        self.deliver_retrains()
        # SEED's league: the quick model on drift passes every gate, Elo's included (the routes need two versions)
        runs = [run for result in self.results["retrain"][before:] for run in result["runs"]]
        assert [run["status"] for run in runs] == ["promoted"], runs

    def every_route(self, day: dt.date) -> None:
        overview = self.api("GET", "/models")
        active = overview["active"]
        other = next(v["version"] for v in overview["versions"] if v["version"] != active and v["status"] != "rejected")
        self.api("GET", f"/models/{other}")
        self.api("GET", "/health")
        self.api("PUT", "/admin/canary", admin=True, body={"version": other, "percent": 50, "reason": "iam test"})
        for move in ("pause", "resume"):
            self.api("POST", f"/admin/canary/{move}", admin=True, body={"reason": "iam test"})
        self.api("PUT", "/admin/shadow", admin=True, body={"version": other, "reason": "iam test"})
        self.slate(day)
        self.api("GET", "/predictions", query={"date": day.isoformat()})
        self.api("DELETE", "/admin/canary", admin=True, query={"reason": "iam test done"})
        self.api("DELETE", "/admin/shadow", admin=True, query={"reason": "iam test done"})
        self.api("POST", "/admin/rollback", admin=True, body={"version": "previous", "reason": "iam test"})
        self.api("POST", "/admin/promote", admin=True, body={"version": active, "reason": "iam test"})
        self.api("GET", "/reports/latest")
        self.api("GET", "/reports/latest.json")
        self.api("POST", "/admin/retrain", admin=True, body={"reason": "iam test: on demand"})
        self.deliver_retrains()

    def a_canary_aborted_by_drift_check(self, run_date: dt.date) -> None:
        """A canary confidently wrong on 60 resolved games: the drift check (same ISO week: no new retrain)
        aborts it, writing the canary parameter and the registry."""
        from nbaml.config import CommonSettings, load_settings
        from nbaml.storage.predictions import PredictionLog

        overview = self.api("GET", "/models")
        active = overview["active"]
        other = next(v["version"] for v in overview["versions"] if v["version"] != active and v["status"] != "rejected")
        self.api("PUT", "/admin/canary", admin=True, body={"version": other, "percent": 10, "reason": "iam canary"})
        games = self.history[-120:-60]
        with runtime.function_environment(self.operator_env()):
            log = PredictionLog(load_settings(CommonSettings).predictions_table)
            for game in games:
                log.record(prediction_of(game, 0.7 if game.home_won else 0.3, version=active))
                log.record(prediction_of(game, 0.1 if game.home_won else 0.9, version=other, role="canary"))
            log.resolve(games)
        report = self.invoke("drift_check", self.scheduled("drift_check", run_date, 4))
        assert report["canary"]["action"] == "aborted" and not report["retrain_requested"], report

    def collect_from_api_basketball(self, run_date: dt.date, server: Any, ca_file: str) -> None:
        with runtime.function_environment(self.operator_env()):
            ssm = boto3.client("ssm")
            key_param = self.stack.env_for("collect")["FEED_KEY_PARAM"]
            ssm.put_parameter(Name=key_param, Value=FEED_KEY, Type="SecureString", Overwrite=True)
        server.expect_request("/games", headers={"x-rapidapi-key": FEED_KEY}).respond_with_json(
            {"get": "games", "errors": [], "results": 0, "response": []}
        )
        runtime.forget_warm_modules()  # a new feed configuration is a new deploy: a cold start
        env = {
            "FEED_SOURCE": "api-basketball",
            "FEED_BASE_URL": server.url_for("").rstrip("/"),
            "SSL_CERT_FILE": ca_file,
            "COLLECT_LOOKBACK_DAYS": "1",
        }
        result = self.invoke("collect", self.scheduled("collect", run_date, 3), **env)
        assert result["feed"] == "api-basketball" and result["payloads"] == 2, result  # the day before, and today
        runtime.forget_warm_modules()

    def collect_a_new_season(self) -> None:
        """Opening week of the next season: its training file does not exist yet, so S3 must answer 404."""
        opening = self.league.games(self.league.first_season + 2)[0].game_date
        run_date = opening + dt.timedelta(days=3)
        collected = self.invoke(
            "collect", self.scheduled("collect", run_date, 3), FEED_SOURCE="generator", FEED_SEED=str(SEED)
        )
        assert collected["training_added"] > 0, collected

    def authorize(self) -> None:
        for header, expected in ((f"Bearer {self.token}", True), ("Bearer wrong", False)):
            event = runtime.http_api_event("POST", "/admin/promote", headers={"authorization": header})
            event |= {"type": "REQUEST", "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/POST/admin"}
            assert self.invoke("authorizer", event)["isAuthorized"] is expected

    def scheduled_runs_that_fail(self, run_date: dt.date) -> None:
        """Each scheduled function handed an event no retry can mend: after its retries, Lambda (here the
        runtime, with the function's role) sends the record to the on-failure queue."""
        functions = ("collect", "drift_check", "retrain")
        for function in functions:
            self.invoke_async(function, {**self.scheduled(function, run_date, 5), "time": "not a time"})
        with runtime.function_environment(self.operator_env()):
            sqs, queue = boto3.client("sqs"), self.stack.resource("FailedRunQueue")
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
            for message in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        failed = sorted(json.loads(m["Body"])["requestContext"]["functionArn"].split(":")[-2] for m in messages)
        assert failed == sorted(self.stack.resource(self.stack.function_id(f)) for f in functions)


@pytest.fixture(scope="module")
def workload(local_stack: LocalStack, local_tls: Any) -> Iterator[Workload]:
    from pytest_httpserver import HTTPServer

    from nbaml.serving import api

    job = Workload(local_stack, SyntheticLeague(seed=SEED))
    with pytest.MonkeyPatch.context() as patch:
        # The predict handler builds its app on its first request: on the workload's clock, not this machine's
        # (the season's games started years ago, and nothing is logged after a tip-off)
        create_app = api.create_app
        # (the seam the SAM replay uses, nbaml.serving.clock, would read a parameter no role may read: not here)
        patch.setattr(api, "create_app", lambda *args, **kwargs: create_app(*args, **kwargs | {"now": lambda: job.now}))
        runtime.forget_warm_modules()  # a handler imported before the patch would keep the machine's clock
        job.a_retrain_before_any_game_fails()
        job.backfill()
        job.first_model()
        run_date = job.a_week_of_slates_then_collect()
        job.drift_that_queues_a_retrain(run_date)
        job.every_route(run_date)  # its collect ran: every day before it is complete
        job.a_canary_aborted_by_drift_check(run_date)
        server = HTTPServer(host="127.0.0.1", port=0, threaded=True, ssl_context=local_tls.server_context())
        server.start()
        try:
            job.collect_from_api_basketball(run_date + dt.timedelta(days=1), server, str(local_tls.ca_file))
        finally:
            server.stop()
        job.authorize()
        job.scheduled_runs_that_fail(run_date + dt.timedelta(days=2))
        job.collect_a_new_season()
        yield job
    runtime.forget_warm_modules()  # nor may one keep the workload's clock after it


def _policies(stack: LocalStack) -> dict[str, list[dict[str, Any]]]:
    return iam.inline_policies(stack)


def test_given_the_workload_then_every_function_ran_and_signed_with_its_own_role(workload: Workload) -> None:
    enforcement = workload.stack.iam
    for function in workload.stack.functions:
        calls = enforcement.calls_of(function)
        assert calls, f"{function} made no AWS call under its own role"
    retrains = [run["status"] for result in workload.results["retrain"] for run in result["runs"]]
    assert len(retrains) == 3, retrains  # first model, on drift, on demand


def test_given_the_workload_then_moto_refused_no_call_of_any_function(workload: Workload) -> None:
    refused = workload.stack.iam.refused()
    assert not refused, "\n".join(f"{c.principal}: {c.action} on {c.resource}" for c in refused)


def test_given_the_record_when_audited_then_no_grant_is_missing_and_none_is_unused(workload: Workload) -> None:
    stack = workload.stack
    result = iam.audit(stack.iam.calls, _policies(stack), iam.managed_policies(stack))
    assert result.clean, str(result)


def test_given_one_action_removed_from_a_policy_then_the_audit_names_the_calls_it_would_refuse(
    workload: Workload,
) -> None:
    stack = workload.stack
    policies = copy.deepcopy(_policies(stack))
    collect = stack.function_id("collect")
    removed = 0
    for document in policies[collect]:
        for statement in document["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            if "dynamodb:BatchGetItem" in actions:
                statement["Action"] = [a for a in actions if a != "dynamodb:BatchGetItem"] or [
                    "dynamodb:DescribeLimits"
                ]
                removed += 1
    assert removed, "the collect policy grants BatchGetItem (collect reads stored games in batches)"

    result = iam.audit(stack.iam.calls, policies, iam.managed_policies(stack))

    assert {(c.principal, c.action) for c in result.missing} == {(collect, "dynamodb:BatchGetItem")}


def test_given_a_grant_no_call_uses_then_the_audit_names_it(workload: Workload) -> None:
    stack = workload.stack
    policies = copy.deepcopy(_policies(stack))
    drift = stack.function_id("drift_check")
    games_arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{stack.resource('GamesTable')}"
    extra = {"Sid": "NotNeeded", "Effect": "Allow", "Action": "dynamodb:DeleteItem", "Resource": games_arn}
    policies[drift][0]["Statement"].append(extra)

    result = iam.audit(stack.iam.calls, policies, iam.managed_policies(stack))

    assert [str(g) for g in result.unused] == [f"{drift} NotNeeded: dynamodb:DeleteItem on {games_arn}"]
    assert not result.missing


def test_given_the_scheduler_schedules_then_each_role_allows_exactly_its_invoke_and_its_dead_letter(
    local_stack: LocalStack,
) -> None:
    # Given: what EventBridge Scheduler does with each schedule's execution role (read off the schedule)
    calls = iam.scheduler_calls(local_stack)
    roles = iam.scheduler_principals(local_stack)
    policies = iam.inline_policies(local_stack, roles)
    # Then: one invoke of its function and one dead letter per schedule, each allowed, no grant beyond them
    assert {c.principal for c in calls} == set(roles) and len(roles) == 3
    assert sorted(c.action for c in calls) == ["lambda:InvokeFunction"] * 3 + ["sqs:SendMessage"] * 3
    assert all(c.allowed for c in calls), [c for c in calls if not c.allowed]
    result = iam.audit(calls, policies)
    assert result.clean, str(result)
    # and a schedule role that lost its queue grant would be named by the same audit
    collect = next(lid for lid in roles if lid.startswith(local_stack.function_id("collect")))
    trimmed = copy.deepcopy(policies)
    trimmed[collect] = [d for d in trimmed[collect] if "sqs:SendMessage" not in json.dumps(d)]
    judged = iam.audit(calls, trimmed)
    assert [(c.principal, c.action) for c in judged.missing] == [(collect, "sqs:SendMessage")]


@pytest.mark.parametrize(
    ("function", "service", "call"),
    [
        (
            "drift_check",
            "dynamodb",
            lambda c, s: c.put_item(TableName=s.resource("GamesTable"), Item={"game_id": {"S": "x"}}),
        ),
        ("collect", "s3", lambda c, s: c.put_object(Bucket=s.resource("ArtifactBucket"), Key="models/v9/x", Body=b"")),
        ("authorizer", "ssm", lambda c, s: c.get_parameter(Name=s.resource("ActiveModelParameter"))),
        ("predict", "sqs", lambda c, s: c.purge_queue(QueueUrl=s.resource("RetrainQueue"))),
    ],
)
def test_given_a_function_role_when_it_calls_outside_its_policy_then_the_emulator_refuses(
    local_stack: LocalStack, function: str, service: str, call: Any
) -> None:
    env = local_stack.env_for(function)
    client = boto3.client(
        service,
        endpoint_url=local_stack.endpoint,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )
    before = len(local_stack.iam.calls)
    with pytest.raises(ClientError) as refused:
        call(client, local_stack)
    assert "AccessDenied" in str(refused.value)
    (denied,) = [c for c in local_stack.iam.calls[before:] if not c.allowed]
    assert denied.principal == local_stack.function_id(function)
    # This module's teardown fails on refused calls of functions: this one is the test's own.
    local_stack.iam.forget([denied])
