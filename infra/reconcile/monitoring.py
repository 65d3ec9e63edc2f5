"""Monitoring: log groups' retention, the alarm topic and its subscription, CloudWatch alarms (skipped by moto's
CloudFormation)."""

from __future__ import annotations

from typing import Any

from infra.reconcile import Deployment, check, handled, reconciles


@reconciles("AWS::Logs::LogGroup")
def _log_group(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    handled(lid, props, {"LogGroupName", "RetentionInDays"})
    name = d.ref(lid)
    groups = d.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    group = next((g for g in groups if g["logGroupName"] == name), None)
    check(group is not None, f"{lid}: log group {name} missing")
    if "RetentionInDays" in props and group and group.get("retentionInDays") != int(props["RetentionInDays"]):
        d.client("logs").put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        d.note(lid, "retention")
    return name


@reconciles("AWS::SNS::Topic")
def _topic(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    arn = d.ref(lid)
    d.client("sns").get_topic_attributes(TopicArn=arn)
    return arn


@reconciles("AWS::SNS::Subscription")
def _subscription(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    sns = d.client("sns")
    subs = sns.list_subscriptions_by_topic(TopicArn=props["TopicArn"])["Subscriptions"]
    match = next((s for s in subs if s["Endpoint"] == props["Endpoint"] and s["Protocol"] == props["Protocol"]), None)
    if match is None:
        arn = sns.subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])[
            "SubscriptionArn"
        ]
        d.note(lid, "created: sns subscribe")
    else:
        arn = match["SubscriptionArn"]
    d.physical[lid] = arn
    return arn


@reconciles("AWS::CloudWatch::Alarm")
def _alarm(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    cloudwatch = d.client("cloudwatch")
    name = props.get("AlarmName") or f"{d.stack_name}-{lid}"
    arguments = {k: v for k, v in props.items() if k != "AlarmName"}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in arguments:
            arguments[key] = int(arguments[key])
    if "Threshold" in arguments:
        arguments["Threshold"] = float(arguments["Threshold"])
    cloudwatch.put_metric_alarm(AlarmName=name, **arguments)
    read = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    check(len(read) == 1 and read[0]["MetricName"] == props["MetricName"], f"{lid}: alarm did not read back")
    d.physical[lid] = name
    d.note(lid, "created: put_metric_alarm (moto's CloudFormation skips the type)")
    return name
