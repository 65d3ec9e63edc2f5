"""The local stack against template.yaml: what the template declares is what the emulator holds.

Every expectation is read from the template, except the seed's three schedules (collect daily at 03:00,
drift_check on Mondays at 04:00, retrain on the 1st of each month at 05:00, all on the league's Eastern
clock), which are the requirement the template must meet.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from infra import cli, cron, emulator, runtime
from infra import template as tpl
from infra.iam import allows, role_statements
from infra.stack import LocalStack, StackError, deploy

pytestmark = pytest.mark.integration


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return tpl.resources_of_type(template, kind)


def _queue_arn(aws: Any, stack: LocalStack, get_att: dict[str, Any]) -> str:
    logical_id, _ = get_att["Fn::GetAtt"]
    attributes = aws("sqs").get_queue_attributes(QueueUrl=stack.resource(logical_id), AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _queue_arn_of(stack: LocalStack, get_att: dict[str, Any]) -> str:
    """The ARN of the queue a ``!GetAtt Queue.Arn`` names, built from its URL (no call to the emulator)."""
    logical_id, _ = get_att["Fn::GetAtt"]
    name = stack.resource(logical_id).rsplit("/", 1)[-1]
    return f"arn:aws:sqs:{emulator.LOCAL_REGION}:{emulator.LOCAL_ACCOUNT_ID}:{name}"


# ---------------------------------------------------------------- every resource
def test_given_the_translated_template_when_deployed_then_every_active_resource_exists(
    local_stack: LocalStack, translated: dict[str, Any]
) -> None:
    # Given: the resources whose Condition holds for the deployed parameters
    intrinsics = tpl.Intrinsics(
        local_stack.parameters, {"AWS::Region": emulator.LOCAL_REGION}, conditions=translated.get("Conditions")
    )
    expected = tpl.active_resources(translated, intrinsics)
    # Then: each one has a physical id, created by moto's CloudFormation or filled by the deploy
    assert set(local_stack.resources) == set(expected)
    assert all(local_stack.resources.values())


def test_given_skipped_types_when_deployed_then_each_gap_is_recorded(
    local_stack: LocalStack, translated: dict[str, Any]
) -> None:
    # Then: every alarm, queue policy, schedule and HTTP API resource of the template was filled by hand
    skipped = {
        "AWS::CloudWatch::Alarm",
        "AWS::SQS::QueuePolicy",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Stage",
        "AWS::Scheduler::Schedule",
    }
    wanted = {lid for lid, r in translated["Resources"].items() if r["Type"] in skipped}
    filled = {fill.logical_id for fill in local_stack.fills}
    assert wanted <= filled


# ---------------------------------------------------------------- storage
def test_given_the_tables_when_described_then_keys_gsis_pitr_and_ttl_match_the_template(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    tables = _of_type(sam_template, "AWS::DynamoDB::Table")
    assert tables
    for logical_id, resource in tables.items():
        props = resource["Properties"]
        # When
        table = aws("dynamodb").describe_table(TableName=local_stack.resource(logical_id))["Table"]
        backups = aws("dynamodb").describe_continuous_backups(TableName=local_stack.resource(logical_id))
        # Then
        assert table["KeySchema"] == props["KeySchema"]
        declared = {g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])}
        assert {g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])} == declared
        if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
        ttl = aws("dynamodb").describe_time_to_live(TableName=local_stack.resource(logical_id))["TimeToLiveDescription"]
        wanted = props.get("TimeToLiveSpecification")
        assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == (
            ("ENABLED", wanted["AttributeName"]) if wanted else ("DISABLED", None)
        )
    # The predictions of hypothetical matchups expire (nbaml.storage.predictions)
    assert tables["PredictionsTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"] == "expires_at"


def test_given_the_bucket_when_read_back_then_it_is_versioned_with_public_access_blocked(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    for logical_id, resource in _of_type(sam_template, "AWS::S3::Bucket").items():
        props, name = resource["Properties"], local_stack.resource(logical_id)
        s3 = aws("s3")
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == props["VersioningConfiguration"]["Status"]
        block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        assert block == props["PublicAccessBlockConfiguration"]
        assert all(block.values())
        rule_ids = [r["ID"] for r in s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]]
        assert rule_ids == [r["Id"] for r in props["LifecycleConfiguration"]["Rules"]]


def test_given_the_parameters_when_read_then_values_and_secure_strings_exist(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    ssm = aws("ssm")
    for logical_id, resource in _of_type(sam_template, "AWS::SSM::Parameter").items():
        read = ssm.get_parameter(Name=local_stack.resource(logical_id))["Parameter"]
        assert (read["Value"], read["Type"]) == (resource["Properties"]["Value"], resource["Properties"]["Type"])
    # The SecureStrings the functions read but the template cannot create
    assert local_stack.admin_token_param in local_stack.secure_parameters
    for name in local_stack.secure_parameters:
        assert ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Type"] == "SecureString"
    token = ssm.get_parameter(Name=local_stack.admin_token_param, WithDecryption=True)["Parameter"]["Value"]
    assert token == local_stack.admin_token and len(token) >= 32


# ---------------------------------------------------------------- schedules
def _schedule(aws: Any, stack: LocalStack, logical_id: str) -> dict[str, Any]:
    """A Scheduler schedule as EventBridge Scheduler holds it (moto's CloudFormation skips the type)."""
    return dict(aws("scheduler").get_schedule(Name=stack.resource(logical_id), GroupName="default"))


def test_given_the_template_schedules_when_deployed_then_scheduler_holds_them_on_their_clock_with_retries_and_dlq(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    schedules = tpl.schedules(sam_template)
    assert schedules
    for function, declared in schedules.items():
        for event in declared:
            spec = sam_template["Resources"][function]["Properties"]["Events"][event.name]["Properties"]
            # When: read back from the Scheduler API
            read = _schedule(aws, local_stack, f"{function}{event.name}")
            target = read["Target"]
            # Then: when, on which clock, what it invokes with which event, and what happens on failure
            assert (read["ScheduleExpression"], read["ScheduleExpressionTimezone"]) == (
                event.expression,
                event.timezone,
            )
            assert read["State"] == "ENABLED" and read["FlexibleTimeWindow"] == {"Mode": "OFF"}
            assert target["Arn"].endswith(f":function:{local_stack.resource(function)}")
            assert target["Input"] == event.input and json.loads(target["Input"])["time"]
            assert target["RetryPolicy"] == spec["RetryPolicy"]
            assert target["DeadLetterConfig"]["Arn"] == _queue_arn(aws, local_stack, spec["DeadLetterConfig"]["Arn"])
            # the role Scheduler invokes with: trusted by Scheduler only, allowed this function and the DLQ
            role_name = target["RoleArn"].rsplit("/", 1)[-1]
            role = aws("iam").get_role(RoleName=role_name)["Role"]
            principals = [s["Principal"]["Service"] for s in role["AssumeRolePolicyDocument"]["Statement"]]
            assert principals == [["scheduler.amazonaws.com"]]
            statements = [
                s
                for name in aws("iam").list_role_policies(RoleName=role_name)["PolicyNames"]
                for s in aws("iam").get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]["Statement"]
            ]
            assert allows(statements, "lambda:InvokeFunction", target["Arn"])
            assert allows(statements, "sqs:SendMessage", target["DeadLetterConfig"]["Arn"])
            assert not allows(statements, "lambda:InvokeFunction", target["Arn"] + "-other")


def test_given_the_seed_when_reading_the_deployed_schedules_then_collect_drift_and_retrain_fire_at_its_hours_eastern(
    local_stack: LocalStack, aws: Any
) -> None:
    eastern = "America/New_York"

    def fires(short_name: str) -> list[dt.datetime]:
        logical_id = local_stack.function_id(short_name)
        (schedule,) = [
            lid
            for lid in local_stack.resources
            if lid.startswith(logical_id) and local_stack.resource_types[lid] == "AWS::Scheduler::Schedule"
        ]
        read = _schedule(aws, local_stack, schedule)
        year = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
        local = cron.parse(read["ScheduleExpression"], scheduler=True).firings(
            year, year.replace(year=2024), read["ScheduleExpressionTimezone"]
        )
        return [at.astimezone(ZoneInfo(eastern)) for at in local]

    # The seed: collect daily at 3 AM, after the last West Coast game (about 01:00 Eastern) has ended
    collect = fires("collect")
    assert len(collect) == 365 and {(t.hour, t.minute) for t in collect} == {(3, 0)}
    assert {t.astimezone(dt.UTC).hour for t in collect} == {7, 8}  # EDT and EST
    # drift_check on Mondays at 4 AM
    drift = fires("drift_check")
    assert len(drift) == 52 and {(t.strftime("%A"), t.hour, t.minute) for t in drift} == {("Monday", 4, 0)}
    # retrain on the 1st of each month, at 5 AM, after that day's collect
    retrain = fires("retrain")
    assert len(retrain) == 12 and {(t.day, t.hour) for t in retrain} == {(1, 5)}
    assert {t.month for t in retrain} == set(range(1, 13))


# ---------------------------------------------------------------- HTTP API
def test_given_the_http_api_when_deployed_then_every_route_exists_and_admin_routes_are_authorized(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    declared: dict[str, str | None] = {}
    for logical_id in tpl.http_api_functions(sam_template):
        for event in sam_template["Resources"][logical_id]["Properties"]["Events"].values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                authorizer = (props.get("Auth") or {}).get("Authorizer")
                declared[f"{props['Method'].upper()} {props['Path']}"] = (
                    None if authorizer in (None, "NONE") else authorizer
                )
    api = aws("apigatewayv2")
    # When
    routes = {r["RouteKey"]: r for r in api.get_routes(ApiId=local_stack.api_id)["Items"]}
    # Then
    assert set(routes) == set(declared)
    assert any(declared.values()), "the template declares at least one authorized (admin) route"
    for key, authorizer in declared.items():
        if authorizer is None:
            assert routes[key].get("AuthorizationType", "NONE") == "NONE"
        else:
            assert routes[key]["AuthorizationType"] == "CUSTOM"
            read = api.get_authorizer(ApiId=local_stack.api_id, AuthorizerId=routes[key]["AuthorizerId"])
            assert read["Name"] == authorizer
    intrinsics = tpl.Intrinsics(local_stack.parameters, {})
    for resource in _of_type(sam_template, "AWS::Serverless::HttpApi").values():
        stage = intrinsics.resolve(resource["Properties"]["StageName"])
        assert api.get_stage(ApiId=local_stack.api_id, StageName=stage)["StageName"] == stage


def test_given_the_http_api_stage_when_read_back_then_it_writes_a_json_access_log_into_a_kept_log_group(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    intrinsics = tpl.Intrinsics(local_stack.parameters, {})
    for resource in _of_type(sam_template, "AWS::Serverless::HttpApi").values():
        props = resource["Properties"]
        stage = intrinsics.resolve(props["StageName"])
        # When
        settings = aws("apigatewayv2").get_stage(ApiId=local_stack.api_id, StageName=stage)["AccessLogSettings"]
        # Then: into the template's log group, which has a retention
        group_id, _ = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"]
        name = local_stack.resource(group_id)
        groups = aws("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        (group,) = [g for g in groups if g["logGroupName"] == name]
        assert settings["DestinationArn"] == group["arn"]
        assert group["retentionInDays"] > 0
        # one JSON object a request, naming the request, the route, the answer and (for /admin) the caller
        line = json.loads(settings["Format"])
        assert set(line.values()) >= {
            "$context.requestId",
            "$context.routeKey",
            "$context.status",
            "$context.responseLatency",
            "$context.authorizer.caller",
        }


def test_given_the_functions_when_read_back_then_reserved_concurrency_and_async_handling_are_the_templates(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    lam = aws("lambda")
    functions = _of_type(sam_template, "AWS::Serverless::Function")
    for logical_id, resource in functions.items():
        props, name = resource["Properties"], local_stack.resource(logical_id)
        # Then: every function has its reserved concurrency
        reserved = lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"]
        assert reserved == props["ReservedConcurrentExecutions"], logical_id
        # and each one a schedule invokes (asynchronously) retries, then sends the failed event to a queue
        declared = props.get("EventInvokeConfig")
        scheduled = any(e["Type"] in ("Schedule", "ScheduleV2") for e in props.get("Events", {}).values())
        assert bool(declared) == scheduled, logical_id
        if declared:
            config = lam.get_function_event_invoke_config(FunctionName=name)
            assert config["MaximumRetryAttempts"] == declared["MaximumRetryAttempts"]
            assert config["MaximumEventAgeInSeconds"] == declared["MaximumEventAgeInSeconds"]
            destination = declared["DestinationConfig"]["OnFailure"]["Destination"]
            assert config["DestinationConfig"]["OnFailure"]["Destination"] == _queue_arn(aws, local_stack, destination)
        for event_name, event in props.get("Events", {}).items():
            if event["Type"] == "SQS" and "ScalingConfig" in event["Properties"]:
                (mapping,) = lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]
                assert mapping["ScalingConfig"] == event["Properties"]["ScalingConfig"], event_name
                # the poller's concurrency fits under the reservation, so it is never throttled
                assert mapping["ScalingConfig"]["MaximumConcurrency"] < reserved


def test_given_the_queues_when_read_back_then_each_is_encrypted_at_rest(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    for logical_id, resource in _of_type(sam_template, "AWS::SQS::Queue").items():
        props = resource["Properties"]
        attributes = aws("sqs").get_queue_attributes(QueueUrl=local_stack.resource(logical_id), AttributeNames=["All"])
        read = attributes["Attributes"]
        if "KmsMasterKeyId" in props:
            assert read["KmsMasterKeyId"] == props["KmsMasterKeyId"], logical_id
        else:
            assert props["SqsManagedSseEnabled"] is True and read["SqsManagedSseEnabled"] == "true", logical_id


def test_given_the_alarms_when_deployed_then_each_reads_back_with_its_metric(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    alarms = _of_type(sam_template, "AWS::CloudWatch::Alarm")
    read = aws("cloudwatch").describe_alarms(AlarmNames=[local_stack.resource(lid) for lid in alarms])["MetricAlarms"]
    by_name = {a["AlarmName"]: a for a in read}
    for logical_id, resource in alarms.items():
        alarm = by_name[local_stack.resource(logical_id)]
        assert alarm["MetricName"] == resource["Properties"]["MetricName"]
        assert alarm["ComparisonOperator"] == resource["Properties"]["ComparisonOperator"]


def test_given_the_queue_policies_when_deployed_then_each_queue_carries_it_and_the_dlq_needs_none(
    local_stack: LocalStack, sam_template: dict[str, Any], aws: Any
) -> None:
    policies = _of_type(sam_template, "AWS::SQS::QueuePolicy")
    for resource in policies.values():
        for queue in resource["Properties"]["Queues"]:
            url = local_stack.resource(queue["Ref"])
            policy = json.loads(
                aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
            )
            declared = resource["Properties"]["PolicyDocument"]["Statement"]
            assert [s["Action"] for s in policy["Statement"]] == [s["Action"] for s in declared]
    # Scheduler delivers dead letters with each schedule's execution role (the test above reads its grant), so
    # the schedules' dead-letter queue has no resource policy at all: nobody else may send to it.
    assert tpl.schedules(sam_template), "the template has schedules"
    url = local_stack.resource("ScheduleDeadLetterQueue")
    assert "Policy" not in aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get(
        "Attributes", {}
    )
    assert not any(
        queue.get("Ref") == "ScheduleDeadLetterQueue" for r in policies.values() for queue in r["Properties"]["Queues"]
    )


# ---------------------------------------------------------------- least privilege
def _statements(local_stack: LocalStack, translated: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The function's inline statements from the translated template, with the stack's real names."""

    def get_att(logical_id: str, attribute: str) -> str:
        kind, physical = local_stack.resource_types[logical_id], local_stack.resource(logical_id)
        region, account = emulator.LOCAL_REGION, emulator.LOCAL_ACCOUNT_ID
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{physical}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{region}:{account}:table/{physical}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{region}:{account}:{physical.rsplit('/', 1)[-1]}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{region}:{account}:function:{physical}",
        }
        return arns[kind]

    intrinsics = tpl.Intrinsics(
        local_stack.parameters, emulator.LOCAL_PSEUDO_PARAMETERS, ref=local_stack.resource, get_att=get_att
    )
    role = translated["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    return role_statements(intrinsics.resolve(translated["Resources"][role]["Properties"]))


def test_given_each_function_policy_when_evaluated_then_only_retrain_writes_model_bundles(
    local_stack: LocalStack, translated: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    (bucket_id,) = _of_type(sam_template, "AWS::S3::Bucket")
    bundle = f"arn:aws:s3:::{local_stack.resource(bucket_id)}/models/v1/model.json"
    writers = {
        tpl.short_name(Path(path))
        for lid, path in local_stack.function_dirs.items()
        if allows(_statements(local_stack, translated, lid), "s3:PutObject", bundle)
    }
    assert writers == {"retrain"}
    # The predict function reads bundles but never writes them
    predict = _statements(local_stack, translated, local_stack.function_id("predict"))
    assert allows(predict, "s3:GetObject", bundle)
    assert not allows(predict, "s3:PutObject", bundle)


def test_given_each_function_when_evaluated_then_its_statements_are_exactly_the_templates(
    local_stack: LocalStack, translated: dict[str, Any], sam_template: dict[str, Any]
) -> None:
    for logical_id in local_stack.function_dirs:
        statements = _statements(local_stack, translated, logical_id)
        props = sam_template["Resources"][logical_id]["Properties"]
        declared = [s for p in props.get("Policies", []) for s in p["Statement"]]
        # SAM adds one statement of its own for an on-failure destination: send to that queue, nothing else
        on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
        added = statements[: len(statements) - len(declared)]
        if on_failure:
            queue = _queue_arn_of(local_stack, on_failure["Destination"])
            assert added == [{"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": queue}]
        else:
            assert added == []
        assert [s.get("Sid") for s in statements[len(added) :]] == [s.get("Sid") for s in declared]
        assert not any(s.get("Effect") == "Allow" and "*" in json.dumps(s.get("Action")) for s in statements)


def test_given_the_secrets_when_evaluated_then_only_the_api_functions_read_the_admin_token(
    local_stack: LocalStack, translated: dict[str, Any]
) -> None:
    token = f"arn:aws:ssm:{emulator.LOCAL_REGION}:{emulator.LOCAL_ACCOUNT_ID}:parameter{local_stack.admin_token_param}"
    readers = {
        tpl.short_name(Path(path))
        for lid, path in local_stack.function_dirs.items()
        if allows(_statements(local_stack, translated, lid), "ssm:GetParameter", token)
    }
    assert readers == {"predict", "authorizer"}


# ---------------------------------------------------------------- runtime
def test_given_the_authorizer_when_invoked_without_a_token_then_it_denies(local_stack: LocalStack) -> None:
    before = dict(os.environ)
    assert runtime.invoke(local_stack, "authorizer", {"headers": {}}) == {"isAuthorized": False}
    assert dict(os.environ) == before


def test_given_the_admin_token_when_the_authorizer_is_invoked_then_it_reads_ssm_through_its_env(
    local_stack: LocalStack,
) -> None:
    # Given: the token the deploy created; the handler finds it through ADMIN_TOKEN_PARAM and the endpoint
    event = {"headers": {"authorization": f"Bearer {local_stack.admin_token}"}}
    # When / Then
    # the caller it names is the admin token's SecureString version, what the HTTP API's access log records
    version = emulator.client("ssm", local_stack.endpoint).get_parameter(Name=local_stack.admin_token_param)
    caller = f"admin-token:v{version['Parameter']['Version']}"
    assert runtime.invoke(local_stack, "AuthorizerFunction", event) == {
        "isAuthorized": True,
        "context": {"caller": caller},
    }
    assert runtime.invoke(local_stack, "authorizer", {"headers": {"authorization": "Bearer wrong"}}) == {
        "isAuthorized": False
    }


def _with_probe(stack: LocalStack, logical_id: str, code: str, tmp_path: Path) -> tuple[LocalStack, Path]:
    """The stack with ``logical_id``'s code swapped for ``code`` (its deployment, environment and role kept)."""
    probe_dir = tmp_path / Path(stack.function_dirs[logical_id]).name
    probe_dir.mkdir()
    (probe_dir / "app.py").write_text(code)
    return LocalStack(
        **{**stack.__dict__, "function_dirs": {**stack.function_dirs, logical_id: str(probe_dir)}}
    ), probe_dir


PROBE = """
import os
calls = 0


def handler(event, context):
    global calls
    calls += 1
    return {
        "calls": calls,
        "env": {k: os.environ.get(k) for k in event["keys"]},
        "memory": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
    }
"""


def test_given_a_probe_function_when_invoked_twice_then_it_gets_the_env_and_stays_warm(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given: the collect function's deployment, its code swapped for a probe
    logical_id = local_stack.function_id("collect")
    probe, _ = _with_probe(local_stack, logical_id, PROBE, tmp_path)
    keys = [*sorted(local_stack.function_environments[logical_id]), "AWS_ENDPOINT_URL"]
    # When
    first = runtime.invoke(probe, "collect", {"keys": keys})
    second = runtime.invoke(probe, logical_id, {"keys": keys}, extra_env={"COLLECT_LOOKBACK_DAYS": "3"})
    # Then
    assert first["env"] == {**local_stack.function_environments[logical_id], "AWS_ENDPOINT_URL": local_stack.endpoint}
    assert second["env"]["COLLECT_LOOKBACK_DAYS"] == "3"
    assert (first["calls"], second["calls"]) == (1, 2)
    assert first["memory"] == local_stack.function_settings[logical_id]["MemorySize"]
    assert 0 < first["remaining_ms"] <= local_stack.function_settings[logical_id]["Timeout"] * 1000
    assert first["request_id"] != second["request_id"]
    assert first["function_name"] == local_stack.resource(logical_id)


FAILING_PROBE = """
calls = []


def handler(event, context):
    calls.append(context.aws_request_id)
    if event.get("fail"):
        raise RuntimeError(f"probe failure {len(calls)}")
    return {"calls": len(calls)}
"""


def test_given_a_scheduled_function_that_fails_when_invoked_async_then_lambda_retries_and_queues_the_failure(
    local_stack: LocalStack, sam_template: dict[str, Any], tmp_path: Path, aws: Any
) -> None:
    # Given: the collect function's deployment, its code swapped for a probe that fails when asked
    logical_id = local_stack.function_id("collect")
    probe, probe_dir = _with_probe(local_stack, logical_id, FAILING_PROBE, tmp_path)
    declared = sam_template["Resources"][logical_id]["Properties"]["EventInvokeConfig"]
    queue_id = declared["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = local_stack.resource(queue_id)
    # When: an event that succeeds, then one that fails every try
    assert runtime.invoke_async(probe, "collect", {"fail": False}) == {"calls": 1}
    with pytest.raises(RuntimeError, match="probe failure 4"):
        runtime.invoke_async(probe, "collect", {"fail": True, "id": "scheduled-event"})
    # Then: the failing one ran 1 + MaximumRetryAttempts times under one request id
    tries = 1 + declared["MaximumRetryAttempts"]
    module = next(m for (endpoint, lid, path), m in runtime._WARM.items() if path == str(probe_dir))
    assert len(module.calls) == 1 + tries and len(set(module.calls[1:])) == 1
    # and its record (the event, the error, its stack) is the one message on the on-failure queue, sent by
    # the function's own role
    (message,) = aws("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestPayload"] == {"fail": True, "id": "scheduled-event"}
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == tries
    assert record["requestContext"]["requestId"] == module.calls[-1]
    assert record["responsePayload"]["errorType"] == "RuntimeError"
    assert record["responsePayload"]["stackTrace"]
    queue_arn = _queue_arn_of(local_stack, declared["DestinationConfig"]["OnFailure"]["Destination"])
    sent = {
        (c.principal, c.allowed)
        for c in local_stack.iam.calls
        if (c.action, c.resource) == ("sqs:SendMessage", queue_arn)
    }
    assert sent == {(logical_id, True)}
    aws("sqs").delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def test_given_a_saved_stack_when_loaded_then_it_round_trips_without_the_token(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    local_stack.save(tmp_path)
    loaded = LocalStack.load(tmp_path)
    assert loaded.resources == local_stack.resources
    assert loaded.admin_token is None
    assert local_stack.admin_token not in (tmp_path / "stack.json").read_text()


# ---------------------------------------------------------------- bad templates
def _broken_copies(template_path: Path, sam_template: dict[str, Any], tmp_path: Path) -> dict[str, Path]:
    text = template_path.read_text()
    _, [first, *_] = next(iter(tpl.schedules(sam_template).items()))
    expression = first.expression
    fields = expression[len("cron(") : -1].split()
    both_days = "cron(" + " ".join([*fields[:2], "*", fields[3], "*", fields[5]]) + ")"
    get_att = re.search(r"!GetAtt (\w+)\.Arn", text)
    assert get_att and expression in text
    copies = {
        "cron": text.replace(expression, both_days, 1),
        "getatt": text.replace(get_att.group(0), "!GetAtt NoSuchResource.Arn", 1),
    }
    paths = {}
    for name, body in copies.items():
        paths[name] = tmp_path / f"template-{name}.yaml"
        paths[name].write_text(body)
    return paths


@pytest.mark.parametrize(("case", "rule_text"), [("cron", "E3027"), ("getatt", "E1010")])
def test_given_a_broken_template_when_deployed_then_stack_error_carries_the_linter_message(
    local_stack: LocalStack,
    template_path: Path,
    sam_template: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    rule_text: str,
) -> None:
    broken = _broken_copies(template_path, sam_template, tmp_path)[case]
    emulator_before = emulator.status()
    # When / Then: the library raises a StackError naming the cfn-lint rule
    with pytest.raises(StackError, match=rule_text):
        deploy(local_stack.endpoint, broken, stack_name=f"broken-{case}", state_dir=None)
    # and the command line prints one line per problem, no traceback, and exits 2
    code = cli.main(["stack", "up", "--template", str(broken), "--port", str(emulator.free_port())])
    err = capsys.readouterr().err
    assert code == 2
    assert rule_text in err and "Traceback" not in err
    assert emulator.status() == emulator_before  # linted before anything was started
