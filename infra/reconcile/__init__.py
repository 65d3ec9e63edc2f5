"""What ``sam deploy`` would have made and moto's CloudFormation did not: every resource read back and its gaps filled.

moto's CloudFormation is lossy and says so only in a log line: it skips whole resource types (the HTTP
API, alarms, queue policies) and ignores properties (bucket versioning, table PITR, function layers,
managed policies) while reporting CREATE_COMPLETE. So the stack's status proves nothing. After the
stack exists, every resource of the translated template goes through the reconciler of its type, which
reads it back, creates or patches what is missing with boto3, and reads it back again. A resource type
without a reconciler, a property that stays wrong, or (for the types that name what they handle, with
``handled``) a property no reconciler knows, fails the deploy: a local stack that silently differs from
the template would make every test run against it a lie.

The reconcilers live by what they fill or verify: ``storage`` (bucket, tables, parameters, queues,
secrets), ``functions`` (roles, layers, functions, permissions, event sources), ``http_api``,
``monitoring`` (log groups, topics, alarms) and ``schedules`` (rules, Scheduler schedules).
"""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from infra import emulator as emu
from infra import template as tpl
from infra.stack import Fill, LocalStack, StackError

_STACK_TIMEOUT_S = 60
# Properties moto stores nowhere, so no boto3 call can fill them. Each is named here on purpose: it has
# no local effect (no X-Ray, no Lambda log routing, no KMS), and a property missing from this list that
# stays unfilled fails the deploy.
UNFILLABLE = {
    ("AWS::Lambda::Function", "TracingConfig"): "moto keeps Mode=PassThrough; the local runtime disables tracing",
    ("AWS::Lambda::Function", "LoggingConfig"): "moto stores no logging config; handlers log to the console",
    ("AWS::DynamoDB::Table", "SSESpecification"): "moto does not model table encryption at rest",
}

Reconciler = Callable[["Deployment", str, dict[str, Any]], str]
RECONCILERS: dict[str, Reconciler] = {}
# Order matters where one resource's fill needs another's: layers and the API before the functions and
# permissions that point at them.
_ORDER = [
    "AWS::Lambda::LayerVersion",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
    "AWS::Lambda::EventInvokeConfig",
]
# Fn::GetAtt of a resource moto created, read from the emulator (the attributes template.yaml uses).
_ATTRIBUTES: dict[tuple[str, str], Callable[[Any, str], Any]] = {
    ("AWS::Lambda::Function", "Arn"): lambda c, name: c("lambda").get_function_configuration(FunctionName=name)[
        "FunctionArn"
    ],
    ("AWS::SQS::Queue", "Arn"): lambda c, url: c("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"],
    ("AWS::SQS::Queue", "QueueName"): lambda c, url: url.rsplit("/", 1)[-1],
    ("AWS::S3::Bucket", "Arn"): lambda c, name: f"arn:aws:s3:::{name}",
    ("AWS::DynamoDB::Table", "Arn"): lambda c, name: c("dynamodb").describe_table(TableName=name)["Table"]["TableArn"],
    ("AWS::IAM::Role", "Arn"): lambda c, name: c("iam").get_role(RoleName=name)["Role"]["Arn"],
    ("AWS::Events::Rule", "Arn"): lambda c, name: c("events").describe_rule(Name=name)["Arn"],
    ("AWS::Logs::LogGroup", "Arn"): lambda c, name: next(
        g["arn"]
        for g in c("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        if g["logGroupName"] == name
    ),
}


def reconciles(resource_type: str) -> Callable[[Reconciler], Reconciler]:
    def register(func: Reconciler) -> Reconciler:
        RECONCILERS[resource_type] = func
        return func

    return register


def check(condition: bool, message: str) -> None:
    if not condition:
        raise StackError(message)


def handled(lid: str, props: dict[str, Any], known: set[str]) -> None:
    """Fail on a property of ``lid`` that its reconciler neither fills nor verifies (``known``)."""
    unknown = sorted(set(props) - known)
    check(not unknown, f"{lid}: {', '.join(unknown)} neither filled nor verified locally (add it in infra/reconcile/)")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Deployment:
    """One deploy: the clients, the physical ids found so far, and the intrinsics resolved against them."""

    def __init__(
        self,
        endpoint: str,
        stack_name: str,
        sam: dict[str, Any],
        translated: dict[str, Any],
        parameters: dict[str, str],
    ) -> None:
        self.endpoint = endpoint
        self.stack_name = stack_name
        self.sam = sam
        self.translated = translated
        self.parameters = parameters
        self._clients: dict[str, Any] = {}
        self.physical: dict[str, str] = {}
        self.fills: list[Fill] = []
        self.api_id: str | None = None
        # Function logical id -> how Lambda invokes it asynchronously (the runtime's retries, on-failure queue).
        self.async_settings: dict[str, dict[str, Any]] = {}
        self.intrinsics = tpl.Intrinsics(
            parameters,
            {**emu.LOCAL_PSEUDO_PARAMETERS, "AWS::StackName": stack_name},
            conditions=translated.get("Conditions"),
            ref=self.ref,
            get_att=self._get_att,
        )
        self.expected = tpl.active_resources(translated, self.intrinsics)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = emu.client(service, self.endpoint)
        return self._clients[service]

    def note(self, logical_id: str, action: str) -> None:
        self.fills.append(Fill(logical_id, self.expected[logical_id]["Type"], action))

    def props(self, logical_id: str) -> dict[str, Any]:
        return dict(self.intrinsics.resolve(self.expected[logical_id].get("Properties") or {}))

    def ref(self, logical_id: str) -> str:
        if logical_id not in self.physical:
            raise StackError(f"!Ref {logical_id}: not created (yet) in the local stack")
        return self.physical[logical_id]

    def _get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.expected.get(logical_id, {}).get("Type")
        read = _ATTRIBUTES.get((str(kind), attribute))
        if read is None:
            raise StackError(f"!GetAtt {logical_id}.{attribute} ({kind}) cannot be resolved locally yet")
        return str(read(self.client, self.ref(logical_id)))

    # ------------------------------------------------------------ the steps
    def run(self, template_path: Path) -> LocalStack:
        self._upload_code()
        self._create_stack()
        self._read_physical_ids()
        order = {kind: i for i, kind in enumerate(_ORDER)}
        ordered = sorted(self.expected, key=lambda lid: order.get(self.expected[lid]["Type"], len(_ORDER)))
        unhandled = sorted({f"{lid} ({r['Type']})" for lid, r in self.expected.items() if r["Type"] not in RECONCILERS})
        if unhandled:
            raise StackError(
                "the local stack does not know how moto treats these resources, so it cannot vouch for them: "
                + ", ".join(unhandled)
                + " (add a reconciler in infra/reconcile/ after checking moto's behaviour)"
            )
        for logical_id in ordered:
            RECONCILERS[self.expected[logical_id]["Type"]](self, logical_id, self.props(logical_id))
        missing = sorted(set(self.expected) - set(self.physical))
        if missing:
            raise StackError(f"neither created by moto nor filled: {', '.join(missing)}")
        environments = self._function_environments()
        secure, admin_param, admin_token = self._secure_parameters(environments)
        functions = tpl.function_dirs(self.sam)
        return LocalStack(
            endpoint=self.endpoint,
            stack_name=self.stack_name,
            template_path=str(template_path.resolve()),
            parameters=self.parameters,
            resources=dict(sorted(self.physical.items())),
            resource_types={lid: res["Type"] for lid, res in sorted(self.expected.items())},
            function_environments=environments,
            function_dirs={lid: str(path) for lid, path in functions.items()},
            function_settings={
                lid: {**tpl.function_settings(self.sam, lid), **self.async_settings.get(lid, {})} for lid in functions
            },
            api_id=self.api_id,
            admin_token_param=admin_param,
            secure_parameters=secure,
            outputs=self._outputs(),
            fills=self.fills,
            admin_token=admin_token,
        )

    def _upload_code(self) -> None:
        """What moto stores for every function and layer; handlers really run in-process from the sources."""
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=tpl.CODE_BUCKET)
        except ClientError as exc:
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(
                "README.txt", "nbaml local stack: code runs in-process from the repository (infra.runtime)\n"
            )
        for logical_id in tpl.code_dirs(self.sam):
            s3.put_object(Bucket=tpl.CODE_BUCKET, Key=f"{logical_id}.zip", Body=buffer.getvalue())

    def _create_stack(self) -> None:
        cfn = self.client("cloudformation")
        try:
            cfn.describe_stacks(StackName=self.stack_name)
        except ClientError:
            pass
        else:
            raise StackError(f"stack {self.stack_name} already exists in {self.endpoint}: run `nbaml stack down` first")
        cfn.create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(self.translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        try:  # moto creates synchronously: the waiter's first look finds the stack done
            waiter = cfn.get_waiter("stack_create_complete")
            waiter.wait(StackName=self.stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": _STACK_TIMEOUT_S})
        except WaiterError as exc:
            events = cfn.describe_stack_events(StackName=self.stack_name)["StackEvents"]
            reasons = [e.get("ResourceStatusReason") for e in events if e.get("ResourceStatusReason")]
            raise StackError(f"stack {self.stack_name} not created: {'; '.join(reasons[:3]) or exc}") from exc

    def _read_physical_ids(self) -> None:
        rows = self.client("cloudformation").describe_stack_resources(StackName=self.stack_name)["StackResources"]
        for row in rows:
            # Skipped types come back as rows without a logical id; some created ones without a physical id.
            if row.get("LogicalResourceId") and row.get("PhysicalResourceId"):
                self.physical[row["LogicalResourceId"]] = row["PhysicalResourceId"]

    # ------------------------------------------------------------ after the resources
    def _function_environments(self) -> dict[str, dict[str, str]]:
        """Each function's environment as moto's Lambda holds it, checked against the template's."""
        lam = self.client("lambda")
        environments: dict[str, dict[str, str]] = {}
        for logical_id in tpl.function_dirs(self.sam):
            config = lam.get_function_configuration(FunctionName=self.physical[logical_id])
            actual = (config.get("Environment") or {}).get("Variables") or {}
            declared = {
                k: str(v) for k, v in (self.props(logical_id).get("Environment") or {}).get("Variables", {}).items()
            }
            if actual != declared:
                diff = sorted(k for k in set(actual) | set(declared) if actual.get(k) != declared.get(k))
                raise StackError(f"{logical_id}'s environment in moto differs from the template at {', '.join(diff)}")
            environments[logical_id] = dict(sorted(actual.items()))
        return environments

    def _secure_parameters(self, environments: dict[str, dict[str, str]]) -> tuple[list[str], str | None, str | None]:
        """Create the SecureStrings the functions read but CloudFormation cannot create (cfn-lint E3030).

        Found, not named: an environment value that is an SSM path no ``AWS::SSM::Parameter`` of the
        template creates. The one the HTTP API's authorizer function reads is the admin token (random,
        printed once); the others (the feed key) get a placeholder. Existing values are kept.
        """
        created = {
            str(self.props(lid).get("Name")) for lid, r in self.expected.items() if r["Type"] == "AWS::SSM::Parameter"
        }
        authorizers = self._authorizer_functions()
        wanted: dict[str, bool] = {}
        for logical_id, env in environments.items():
            for value in env.values():
                if value.startswith("/") and value not in created and not value.startswith("/aws/"):
                    wanted[value] = wanted.get(value, False) or logical_id in authorizers
        ssm = self.client("ssm")
        admin_param = next((name for name, is_admin in wanted.items() if is_admin), None)
        admin_token: str | None = None
        for name, is_admin in sorted(wanted.items()):
            try:
                ssm.get_parameter(Name=name, WithDecryption=True)
                continue
            except ClientError as exc:
                if error_code(exc) != "ParameterNotFound":
                    raise
            value = secrets.token_urlsafe(32) if is_admin else "local-placeholder-not-a-real-key"
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Description="created by nbaml stack up")
            if is_admin:
                admin_token = value
            read = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
            check(read["Type"] == "SecureString" and read["Value"] == value, f"SecureString {name} did not read back")
        return sorted(wanted), admin_param, admin_token

    def _authorizer_functions(self) -> set[str]:
        found: set[str] = set()
        for resource in self.expected.values():
            if resource["Type"] != "AWS::ApiGatewayV2::Api":
                continue
            schemes = ((resource["Properties"].get("Body") or {}).get("components") or {}).get("securitySchemes") or {}
            for scheme in schemes.values():
                uri = (scheme.get("x-amazon-apigateway-authorizer") or {}).get("authorizerUri")
                found |= {lid for lid in tpl.function_dirs(self.sam) if lid in json.dumps(uri)}
        return found

    def _outputs(self) -> dict[str, str]:
        outputs: dict[str, str] = {}
        for name, output in (self.translated.get("Outputs") or {}).items():
            if "Condition" in output and not self.intrinsics.condition(output["Condition"]):
                continue
            outputs[name] = str(self.intrinsics.resolve(output["Value"]))
        return outputs


# Each module registers its reconcilers on import.
from infra.reconcile import functions, http_api, monitoring, schedules, storage  # noqa: E402

__all__ = ["RECONCILERS", "Deployment", "functions", "http_api", "monitoring", "schedules", "storage"]
