"""Schedules: EventBridge rules with their targets' retry policy and dead-letter queue; Scheduler schedules
(skipped by moto's CloudFormation)."""

from __future__ import annotations

from typing import Any

from infra.reconcile import Deployment, check, reconciles


@reconciles("AWS::Events::Rule")
def _rule(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    events, name = d.client("events"), d.ref(lid)
    rule = events.describe_rule(Name=name)
    check(rule.get("ScheduleExpression") == props.get("ScheduleExpression"), f"{lid}: schedule differs")
    targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=name)["Targets"]}
    for wanted in props.get("Targets", []):
        actual = targets.get(wanted["Id"])
        check(actual is not None and actual["Arn"] == wanted["Arn"], f"{lid}: target {wanted['Id']} missing")
        for key in ("RetryPolicy", "DeadLetterConfig"):
            check(actual.get(key) == wanted.get(key), f"{lid}: target {wanted['Id']} {key} differs")  # type: ignore[union-attr]
    return name


@reconciles("AWS::Scheduler::Schedule")
def _schedule(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """Created through the Scheduler API and read back whole: when, on which clock, what it invokes with which
    role and event, its retries and its dead-letter queue (what decides whether a night's collect runs)."""
    scheduler = d.client("scheduler")
    # OmitName: CloudFormation would name it after the stack and the logical id (and a suffix).
    name = props.get("Name") or f"{d.stack_name}-{lid}"[:64]
    group = props.get("GroupName", "default")
    scheduler.create_schedule(Name=name, **{k: v for k, v in props.items() if k != "Name"})
    read = scheduler.get_schedule(Name=name, GroupName=group)
    wanted = {
        "ScheduleExpression": props["ScheduleExpression"],
        "ScheduleExpressionTimezone": props.get("ScheduleExpressionTimezone", "UTC"),
        "State": props.get("State", "ENABLED"),
        "FlexibleTimeWindow": props["FlexibleTimeWindow"],
    }
    for key, value in wanted.items():
        check(read.get(key) == value, f"{lid}: {key} read back as {read.get(key)!r}, not {value!r}")
    for key in ("Arn", "RoleArn", "Input", "RetryPolicy", "DeadLetterConfig"):
        check(read["Target"].get(key) == props["Target"].get(key), f"{lid}: target {key} did not read back")
    d.physical[lid] = name
    d.note(lid, "created: scheduler create_schedule (moto's CloudFormation skips the type), read back")
    return name
