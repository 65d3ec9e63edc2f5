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
    scheduler = d.client("scheduler")
    name = props.get("Name") or f"{d.stack_name}-{lid}"[:64]
    arguments = {k: v for k, v in props.items() if k != "Name"}
    scheduler.create_schedule(Name=name, **arguments)
    read = scheduler.get_schedule(Name=name, GroupName=props.get("GroupName", "default"))
    check(read["ScheduleExpression"] == props["ScheduleExpression"], f"{lid}: schedule did not read back")
    d.physical[lid] = name
    d.note(lid, "created: scheduler create_schedule (moto's CloudFormation skips the type)")
    return name
