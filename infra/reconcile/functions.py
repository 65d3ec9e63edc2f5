"""Functions: roles and their policies, layers, each function's memory, timeout, layers and reserved concurrency,
its asynchronous invocation config (retries, on-failure destination), invoke permissions and event source
mappings."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from infra.reconcile import UNFILLABLE, Deployment, check, error_code, handled, reconciles
from infra.stack import StackError


@reconciles("AWS::IAM::Role")
def _role(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """Managed policies are attached by hand, inline ones rewritten as JSON (moto stores a Python repr)."""
    iam, name = d.client("iam"), d.ref(lid)
    attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    wanted = set(props.get("ManagedPolicyArns", []))
    for arn in sorted(wanted - attached):
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except ClientError as exc:
            raise StackError(
                f"{lid}: cannot attach {arn} ({error_code(exc)}); "
                "the emulator must run with MOTO_IAM_LOAD_MANAGED_POLICIES"
            ) from exc
    if wanted - attached:
        d.note(lid, f"attached {len(wanted - attached)} managed policies")
    for policy in props.get("Policies", []):
        # SAM writes inline documents without a Version; IAM defaults it, moto refuses the document.
        document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        read = iam.get_role_policy(RoleName=name, PolicyName=policy["PolicyName"])["PolicyDocument"]
        check(read == document, f"{lid}: inline policy {policy['PolicyName']} did not read back")
    if props.get("Policies"):
        d.note(lid, "inline policies rewritten as JSON")
    return name


@reconciles("AWS::Lambda::LayerVersion")
def _layer(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """moto creates the layer but gives CloudFormation no physical id: find its version ARN by name."""
    prefix = f"{d.stack_name}-{lid}-"
    layers = d.client("lambda").list_layers()["Layers"]
    found = [layer for layer in layers if layer["LayerName"].startswith(prefix) or layer["LayerName"] == lid]
    check(len(found) == 1, f"{lid}: expected one layer named {prefix}*, found {len(found)}")
    arn = str(found[0]["LatestMatchingVersion"]["LayerVersionArn"])
    d.physical[lid] = arn
    d.note(lid, "physical id found: list_layers (Ref of a layer version is wrong in moto)")
    return arn


# What the function reconciler fills or verifies; Environment is compared in Deployment._function_environments,
# Code is the placeholder archive (handlers run from the sources), Tags are SAM's own.
_FUNCTION_PROPERTIES = {
    "Architectures",
    "Code",
    "Description",
    "Environment",
    "Handler",
    "Layers",
    "LoggingConfig",
    "MemorySize",
    "ReservedConcurrentExecutions",
    "Role",
    "Runtime",
    "Tags",
    "Timeout",
    "TracingConfig",
}


@reconciles("AWS::Lambda::Function")
def _function(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    handled(lid, props, _FUNCTION_PROPERTIES)
    lam, name = d.client("lambda"), d.ref(lid)
    config = lam.get_function_configuration(FunctionName=name)
    check(
        config["MemorySize"] == int(props.get("MemorySize", 128)) and config["Timeout"] == int(props.get("Timeout", 3)),
        f"{lid}: memory or timeout differs",
    )
    for key in ("Handler", "Runtime", "Role", "Architectures"):
        check(key not in props or config.get(key) == props[key], f"{lid}: {key} differs from the template")
    wanted_layers = list(props.get("Layers", []))
    if [layer["Arn"] for layer in config.get("Layers", [])] != wanted_layers:
        lam.update_function_configuration(FunctionName=name, Layers=wanted_layers)
        read = [layer["Arn"] for layer in lam.get_function_configuration(FunctionName=name).get("Layers", [])]
        check(read == wanted_layers, f"{lid}: layers did not read back")
        d.note(lid, f"layers attached ({len(wanted_layers)})")
    for key in ("TracingConfig", "LoggingConfig"):
        if key in props and config.get(key) != props[key]:
            d.note(lid, f"{key} not fillable: {UNFILLABLE[('AWS::Lambda::Function', key)]}")
    _reserved_concurrency(d, lid, name, props)
    return name


def _reserved_concurrency(d: Deployment, lid: str, name: str, props: dict[str, Any]) -> None:
    """moto's CloudFormation passes ReservedConcurrentExecutions through: verified, and filled if it did not."""
    if "ReservedConcurrentExecutions" not in props:
        return
    lam, wanted = d.client("lambda"), int(props["ReservedConcurrentExecutions"])

    def current() -> int | None:
        value = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        return None if value is None else int(value)

    if current() != wanted:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=wanted)
        check(current() == wanted, f"{lid}: reserved concurrency stays {current()}, not {wanted}")
        d.note(lid, f"reserved concurrency {wanted}")


@reconciles("AWS::Lambda::EventInvokeConfig")
def _event_invoke_config(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """Skipped by moto's CloudFormation: put, read back, and kept for the runtime's asynchronous invocations.

    Lambda sends the on-failure record itself; locally ``infra.runtime.invoke_async`` does, with the
    function's role, so it needs the destination queue's URL (only SQS destinations are supported here).
    """
    handled(
        lid,
        props,
        {"DestinationConfig", "FunctionName", "MaximumEventAgeInSeconds", "MaximumRetryAttempts", "Qualifier"},
    )
    lam, function = d.client("lambda"), props["FunctionName"]
    check(props.get("Qualifier", "$LATEST") == "$LATEST", f"{lid}: only the $LATEST qualifier is supported locally")
    config = {k: props[k] for k in ("DestinationConfig",) if k in props}
    for key in ("MaximumEventAgeInSeconds", "MaximumRetryAttempts"):
        if key in props:
            config[key] = int(props[key])
    lam.put_function_event_invoke_config(FunctionName=function, **config)
    read = lam.get_function_event_invoke_config(FunctionName=function)
    for key, value in config.items():
        check(read.get(key) == value, f"{lid}: {key} did not read back")
    owner = next(
        f for f in d.expected if d.expected[f]["Type"] == "AWS::Lambda::Function" and d.physical.get(f) == function
    )
    settings: dict[str, Any] = {
        k: config[k] for k in ("MaximumEventAgeInSeconds", "MaximumRetryAttempts") if k in config
    }
    destination = ((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if destination:
        settings["OnFailure"] = {"Destination": destination, "QueueUrl": _queue_url(d, lid, destination)}
    d.async_settings[owner] = {"EventInvokeConfig": settings}
    d.physical[lid] = f"{function}:$LATEST"
    d.note(lid, "created: put_function_event_invoke_config (moto's CloudFormation skips the type)")
    return d.physical[lid]


def _queue_url(d: Deployment, lid: str, arn: str) -> str:
    """The URL of the template's queue whose ARN is ``arn`` (an on-failure destination)."""
    queues = [q for q, r in d.expected.items() if r["Type"] == "AWS::SQS::Queue" and q in d.physical]
    sqs = d.client("sqs")
    for queue in queues:
        attributes = sqs.get_queue_attributes(QueueUrl=d.physical[queue], AttributeNames=["QueueArn"])["Attributes"]
        if attributes["QueueArn"] == arn:
            return d.physical[queue]
    raise StackError(f"{lid}: on-failure destination {arn} is not a queue of the template (only SQS is supported)")


@reconciles("AWS::Lambda::Permission")
def _permission(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    """moto adds the permission with SourceArn ``...:None/...`` when it points at a skipped API: re-add it."""
    lam = d.client("lambda")
    function = props["FunctionName"]
    try:
        statements = json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
    except ClientError:
        statements = []

    def source(statement: Mapping[str, Any]) -> Any:
        return ((statement.get("Condition") or {}).get("ArnLike") or {}).get("AWS:SourceArn")

    wanted_source = props.get("SourceArn")
    principal = props["Principal"]
    if any(source(s) == wanted_source and s.get("Principal", {}).get("Service") == principal for s in statements):
        d.physical[lid] = lid
        return lid
    for statement in statements:
        if isinstance(source(statement), str) and ":None/" in source(statement):
            broken_suffix = source(statement).split(":None/", 1)[1]
            if wanted_source and wanted_source.endswith(broken_suffix.split("/", 1)[-1]):
                lam.remove_permission(FunctionName=function, StatementId=statement["Sid"])
    arguments = {"FunctionName": function, "StatementId": lid, "Action": props["Action"], "Principal": principal}
    if wanted_source:
        arguments["SourceArn"] = wanted_source
    lam.add_permission(**arguments)
    statements = json.loads(lam.get_policy(FunctionName=function)["Policy"])["Statement"]
    check(any(s["Sid"] == lid for s in statements), f"{lid}: permission did not read back")
    d.physical[lid] = lid
    d.note(lid, "re-added with the real API id (moto resolved the skipped API to None)")
    return lid


@reconciles("AWS::Lambda::EventSourceMapping")
def _event_source_mapping(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    handled(lid, props, {"BatchSize", "EventSourceArn", "FunctionName", "FunctionResponseTypes", "ScalingConfig"})
    uuid = d.ref(lid)
    mapping = d.client("lambda").get_event_source_mapping(UUID=uuid)
    check(mapping["EventSourceArn"] == props["EventSourceArn"], f"{lid}: event source differs")
    check(
        int(mapping.get("BatchSize", 0)) == int(props.get("BatchSize", mapping.get("BatchSize", 0))),
        f"{lid}: batch size",
    )
    wanted_types = props.get("FunctionResponseTypes") or []
    if (mapping.get("FunctionResponseTypes") or []) != wanted_types:
        d.client("lambda").update_event_source_mapping(UUID=uuid, FunctionResponseTypes=wanted_types)
        read = d.client("lambda").get_event_source_mapping(UUID=uuid).get("FunctionResponseTypes") or []
        check(read == wanted_types, f"{lid}: function response types {read} differ from {wanted_types}")
        d.note(lid, f"function response types {', '.join(wanted_types) or 'none'}")
    if "ScalingConfig" in props:
        wanted = {k: int(v) for k, v in props["ScalingConfig"].items()}
        if mapping.get("ScalingConfig") != wanted:
            d.client("lambda").update_event_source_mapping(UUID=uuid, ScalingConfig=wanted)
            d.note(lid, f"scaling config {wanted}")
        read = d.client("lambda").get_event_source_mapping(UUID=uuid).get("ScalingConfig")
        check(read == wanted, f"{lid}: scaling config reads {read}, not {wanted}")
    # moto runs Lambda code only through Docker: left enabled, its SQS would try (and hang trying) to
    # invoke the function on every message. Locally, the replay and `nbaml retrain` drain the queue into
    # the handler in-process instead, as the mapping would on AWS.
    d.client("lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
    check(
        d.client("lambda").get_event_source_mapping(UUID=uuid).get("State") in {"Disabled", "Disabling"},
        f"{lid}: could not disable the mapping",
    )
    d.note(lid, "disabled: no Lambda runtime without Docker; infra drains the queue in-process")
    return uuid
