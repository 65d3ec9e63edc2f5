"""Storage: the bucket's versioning, public access block, lifecycle and encryption; tables' keys, indexes,
recovery and TTL; SSM parameters; queues (timeouts, retention, encryption, redrive) and their policies;
Secrets Manager secrets."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from infra.reconcile import UNFILLABLE, Deployment, check, handled, reconciles
from infra.stack import StackError


@reconciles("AWS::S3::Bucket")
def _bucket(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    s3, name = d.client("s3"), d.ref(lid)
    for fill in (_versioning, _public_access_block, _lifecycle, _encryption):
        fill(d, s3, lid, name, props)
    return name


def _versioning(d: Deployment, s3: Any, lid: str, name: str, props: dict[str, Any]) -> None:
    versioning = props.get("VersioningConfiguration")
    if versioning and s3.get_bucket_versioning(Bucket=name).get("Status") != versioning["Status"]:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
        check(s3.get_bucket_versioning(Bucket=name).get("Status") == versioning["Status"], f"{lid}: versioning")
        d.note(lid, f"versioning {versioning['Status']}")


def _public_access_block(d: Deployment, s3: Any, lid: str, name: str, props: dict[str, Any]) -> None:
    block = props.get("PublicAccessBlockConfiguration")
    if not block:
        return
    try:
        current = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
    except ClientError:
        current = {}
    if current != block:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        read = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        check(read == block, f"{lid}: public access")
        d.note(lid, "public access block")


def _lifecycle(d: Deployment, s3: Any, lid: str, name: str, props: dict[str, Any]) -> None:
    lifecycle = props.get("LifecycleConfiguration")
    if not lifecycle:
        return
    rules = [_lifecycle_rule(rule) for rule in lifecycle["Rules"]]
    try:
        current_rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    except ClientError:
        current_rules = []
    if [r["ID"] for r in current_rules] != [r["ID"] for r in rules]:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        read = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        check([r["ID"] for r in read] == [r["ID"] for r in rules], f"{lid}: lifecycle")
        d.note(lid, f"lifecycle rules {', '.join(r['ID'] for r in rules)}")


def _encryption(d: Deployment, s3: Any, lid: str, name: str, props: dict[str, Any]) -> None:
    encryption = props.get("BucketEncryption")
    if not encryption:
        return
    wanted = encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
    try:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError:
        rules = []
    if not rules or rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] != wanted:
        default = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": wanted}}
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [default]})
        d.note(lid, f"encryption {wanted}")


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule in S3 API shape (Id -> ID, NoncurrentDays as the API names it)."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": int(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])
        }
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    unknown = set(rule) - {
        "Id",
        "Status",
        "Prefix",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionExpirationInDays",
        "ExpirationInDays",
        "AbortIncompleteMultipartUpload",
    }
    if unknown:
        raise StackError(f"lifecycle rule {rule['Id']}: {', '.join(sorted(unknown))} not supported locally yet")
    return out


@reconciles("AWS::DynamoDB::Table")
def _table(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    ddb, name = d.client("dynamodb"), d.ref(lid)
    table = ddb.describe_table(TableName=name)["Table"]
    check(table["KeySchema"] == props["KeySchema"], f"{lid}: key schema differs from the template")
    wanted_gsis = {g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])}
    actual_gsis = {g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])}
    check(
        wanted_gsis == actual_gsis,
        f"{lid}: GSIs {sorted(actual_gsis)} differ from the template's {sorted(wanted_gsis)}",
    )
    pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
    if pitr is not None:
        status = "ENABLED" if pitr else "DISABLED"

        def current() -> str:
            backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
            return str(backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"])

        if current() != status:
            ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": bool(pitr)}
            )
            check(current() == status, f"{lid}: point-in-time recovery stays {current()}")
            d.note(lid, f"point-in-time recovery {status}")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        # moto's CloudFormation ignores the property (and moto never deletes expired items): set, read back.
        described = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if described.get("TimeToLiveStatus") != "ENABLED" or described.get("AttributeName") != ttl["AttributeName"]:
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
            d.note(lid, f"TTL on {ttl['AttributeName']}")
        described = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        check(
            (described.get("TimeToLiveStatus"), described.get("AttributeName")) == ("ENABLED", ttl["AttributeName"]),
            f"{lid}: TTL on {ttl['AttributeName']} did not read back",
        )
    if (props.get("SSESpecification") or {}).get("SSEEnabled") and not table.get("SSEDescription"):
        d.note(lid, f"SSESpecification not fillable: {UNFILLABLE[('AWS::DynamoDB::Table', 'SSESpecification')]}")
    check(
        bool(table.get("DeletionProtectionEnabled")) == bool(props.get("DeletionProtectionEnabled", False)),
        f"{lid}: deletion protection differs from the template",
    )
    return name


@reconciles("AWS::SSM::Parameter")
def _parameter(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    name = d.ref(lid)
    read = d.client("ssm").get_parameter(Name=name)["Parameter"]
    check(read["Value"] == str(props["Value"]) and read["Type"] == props["Type"], f"{lid}: value or type differs")
    return name


# Queue attributes set as the template writes them (KmsMasterKeyId: moto stores the key id and encrypts nothing).
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
)


@reconciles("AWS::SQS::Queue")
def _queue(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    handled(lid, props, {*_QUEUE_ATTRIBUTES, "SqsManagedSseEnabled", "RedrivePolicy"})
    sqs, url = d.client("sqs"), d.ref(lid)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    wanted = {k: str(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
    if "SqsManagedSseEnabled" in props:
        wanted["SqsManagedSseEnabled"] = str(props["SqsManagedSseEnabled"]).lower()
    elif "KmsMasterKeyId" in props:  # SSE-KMS replaces SSE-SQS, as SQS reports it (moto would say both)
        wanted["SqsManagedSseEnabled"] = "false"
    if "RedrivePolicy" in props:
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        check(
            redrive.get("deadLetterTargetArn") == props["RedrivePolicy"]["deadLetterTargetArn"]
            and int(redrive.get("maxReceiveCount", 0)) == int(props["RedrivePolicy"]["maxReceiveCount"]),
            f"{lid}: redrive policy differs from the template",
        )
    differing = {k: v for k, v in wanted.items() if attributes.get(k) != v}
    if differing:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=differing)
        d.note(lid, f"attributes {', '.join(sorted(differing))}")
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        check(all(read.get(k) == v for k, v in wanted.items()), f"{lid}: attributes did not read back")
    return url


@reconciles("AWS::SQS::QueuePolicy")
def _queue_policy(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    sqs = d.client("sqs")
    document = json.dumps(props["PolicyDocument"])
    for url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": document})
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"].get("Policy", "{}")
        check(json.loads(read) == props["PolicyDocument"], f"{lid}: policy of {url} did not read back")
    d.physical[lid] = props["Queues"][0]
    d.note(lid, "created: set_queue_attributes Policy (moto's CloudFormation skips the type)")
    return d.physical[lid]


@reconciles("AWS::SecretsManager::Secret")
def _secret(d: Deployment, lid: str, props: dict[str, Any]) -> str:
    secrets_manager = d.client("secretsmanager")
    name = props.get("Name") or f"{d.stack_name}-{lid}"
    arguments: dict[str, Any] = {"Name": name, "Description": props.get("Description", "")}
    if "SecretString" in props:
        arguments["SecretString"] = props["SecretString"]
    else:
        arguments["SecretString"] = secrets.token_urlsafe(32)
    arn = secrets_manager.create_secret(**arguments)["ARN"]
    secrets_manager.describe_secret(SecretId=arn)
    d.physical[lid] = arn
    d.note(lid, "created: secretsmanager create_secret (moto's CloudFormation skips the type)")
    return str(arn)
