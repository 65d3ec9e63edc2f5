"""``sam deploy``, locally: template.yaml into moto's CloudFormation, then every gap it leaves filled by hand.

moto's CloudFormation is lossy and says so only in a log line: it skips whole resource types (the HTTP
API, alarms, queue policies) and ignores properties (bucket versioning, table PITR, function layers,
managed policies) while reporting CREATE_COMPLETE. So the stack's status proves nothing. After the
stack exists, every resource of the translated template goes through the reconciler of its type, which
reads it back, creates or patches what is missing with boto3, and reads it back again. A resource type
without a reconciler, or a property that stays wrong, fails the deploy: a local stack that silently
differs from the template would make every test run against it a lie.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import secrets
import tempfile
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from infra import InfraError
from infra import emulator as emu
from infra import template as tpl

STACK_FILE = "stack.json"
_STACK_TIMEOUT_S = 60.0
# Properties moto stores nowhere, so no boto3 call can fill them. Each is named here on purpose: it has
# no local effect (no X-Ray, no Lambda log routing, no KMS), and a property missing from this list that
# stays unfilled fails the deploy.
UNFILLABLE = {
    ("AWS::Lambda::Function", "TracingConfig"): "moto keeps Mode=PassThrough; the local runtime disables tracing",
    ("AWS::Lambda::Function", "LoggingConfig"): "moto stores no logging config; handlers log to the console",
    ("AWS::DynamoDB::Table", "SSESpecification"): "moto does not model table encryption at rest",
}


class StackError(InfraError):
    """The local stack could not be deployed, or is not deployed."""


@dataclass(frozen=True)
class Fill:
    """One gap moto's CloudFormation left and what the deploy did about it (the report of ``stack up``)."""

    logical_id: str
    resource_type: str
    action: str


@dataclass
class LocalStack:
    """The deployed local stack: what the CLI, the runtime and the tests need to find each resource."""

    endpoint: str
    stack_name: str
    template_path: str
    parameters: dict[str, str]
    resources: dict[str, str]
    resource_types: dict[str, str]
    function_environments: dict[str, dict[str, str]]
    function_dirs: dict[str, str]
    function_settings: dict[str, dict[str, Any]]
    api_id: str | None
    admin_token_param: str | None
    secure_parameters: list[str]
    outputs: dict[str, str]
    fills: list[Fill] = field(default_factory=list)
    deploy_seconds: float = 0.0
    # Set only by the deploy that created the token, so the CLI can print it once; never saved to disk.
    admin_token: str | None = field(default=None, repr=False)

    def resource(self, logical_id: str) -> str:
        """The physical id (name, URL or ARN as CloudFormation's Ref gives it) of a translated logical id."""
        try:
            return self.resources[logical_id]
        except KeyError:
            raise StackError(f"{logical_id} is not a resource of stack {self.stack_name}") from None

    def function_id(self, function: str) -> str:
        """The logical id of ``function``, given as a logical id (CollectFunction) or short name (collect)."""
        if function in self.function_dirs:
            return function
        by_short = {tpl.short_name(Path(path)): lid for lid, path in self.function_dirs.items()}
        if function in by_short:
            return by_short[function]
        known = ", ".join(sorted(by_short))
        raise StackError(f"no function {function!r} in the template; known: {known} (or their logical ids)")

    @property
    def functions(self) -> list[str]:
        """Every function's logical id, in the template's order."""
        return list(self.function_dirs)

    def env_for(
        self,
        function: str,
        *,
        lambda_runtime: bool = True,
        endpoint: str | None = None,
        credentials: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment a handler of ``function`` runs with: the template's, pointed at the emulator.

        ``lambda_runtime`` adds the variables Lambda itself sets (function name, memory, version), which
        ``sam local invoke`` sets too; tracing is disabled because there is no X-Ray daemon here.
        ``endpoint`` names the emulator as the function will reach it when that differs from how this
        process does (a container on a Docker network: ``http://moto:5000``); ``credentials`` replace the
        emulator's fake ones (a function run under its own role's keys once the emulator evaluates IAM).
        """
        logical_id = self.function_id(function)
        env = {
            **self.function_environments[logical_id],
            **emu.local_aws_env(endpoint or self.endpoint),
            **(credentials or {}),
            "POWERTOOLS_TRACE_DISABLED": "1",
        }
        if lambda_runtime:
            settings = self.function_settings[logical_id]
            env |= {
                "AWS_LAMBDA_FUNCTION_NAME": self.resource(logical_id),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(settings["MemorySize"]),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(settings["Timeout"]),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            }
        return env

    # ------------------------------------------------------------ persistence
    def save(self, state_dir: Path = emu.STATE_DIR) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / STACK_FILE
        data = asdict(self)
        data.pop("admin_token")
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, state_dir: Path = emu.STATE_DIR) -> LocalStack:
        path = state_dir / STACK_FILE
        if not path.exists():
            raise StackError("no local stack is deployed: run `nbaml stack up` first")
        try:
            data = json.loads(path.read_text())
            data["fills"] = [Fill(**f) for f in data.get("fills", [])]
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise StackError(f"{path} is unreadable ({exc}); run `nbaml stack down` and `stack up` again") from exc


# ---------------------------------------------------------------- deploy
def deploy(
    endpoint: str,
    template_path: Path | str = tpl.DEFAULT_TEMPLATE,
    parameters: Mapping[str, str] | None = None,
    *,
    stack_name: str | None = None,
    state_dir: Path | None = emu.STATE_DIR,
) -> LocalStack:
    """Lint, translate and deploy the template into the emulator at ``endpoint``; fill and verify every gap.

    ``state_dir=None`` keeps the result out of ``.nbaml/stack.json`` (tests deploy their own stacks).
    """
    started = time.monotonic()
    template_path = Path(template_path)
    warming = threading.Thread(target=_warm_up, args=(endpoint,), daemon=True)
    warming.start()
    try:
        lint(template_path, parameters)
    finally:
        warming.join()
    sam = tpl.load(template_path)
    params = tpl.parameters_with_defaults(sam, parameters)
    translated = tpl.translate(sam, params)
    name = stack_name or tpl.stack_name_for(params.get("Stage", "dev"))
    deployment = _Deployment(endpoint, name, sam, translated, params)
    stack = deployment.run(template_path)
    stack.deploy_seconds = round(time.monotonic() - started, 2)
    if state_dir is not None:
        stack.save(state_dir)
    return stack


_LINTED: dict[tuple[str, str], list[str]] = {}


def lint(template_path: Path, parameters: Mapping[str, str] | None = None) -> None:
    """Refuse a template cfn-lint finds an error in; each version of a file is linted once per process."""
    key = (hashlib.sha256(template_path.read_bytes()).hexdigest(), json.dumps(dict(parameters or {}), sort_keys=True))
    if key not in _LINTED:
        _LINTED[key] = tpl.lint(template_path, parameters)
    if _LINTED[key]:
        raise StackError(f"{template_path.name} fails the linter:\n  " + "\n  ".join(_LINTED[key]))


# A cheap read per service the deploy touches. moto builds each service's backend on its first request
# (the IAM one loads every AWS managed policy): done while the linter runs, it costs the deploy nothing.
_WARM_UP_CALLS = (
    ("s3", "list_buckets"),
    ("cloudformation", "list_stacks"),
    ("iam", "list_roles"),
    ("lambda", "list_functions"),
    ("dynamodb", "list_tables"),
    ("sqs", "list_queues"),
    ("ssm", "describe_parameters"),
    ("events", "list_rules"),
    ("logs", "describe_log_groups"),
    ("sns", "list_topics"),
    ("cloudwatch", "describe_alarms"),
    ("apigatewayv2", "get_apis"),
)


def _warm_up(endpoint: str) -> None:
    for service, operation in _WARM_UP_CALLS:
        with contextlib.suppress(Exception):  # a warm-up failure shows up again, clearly, in the deploy itself
            getattr(emu.client(service, endpoint), operation)()


@contextlib.contextmanager
def deployed(
    parameters: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    isolated: bool = False,
    template_path: Path | str = tpl.DEFAULT_TEMPLATE,
    stack_name: str | None = None,
    state_dir: Path | None = None,
    point_environment: bool = True,
) -> Iterator[LocalStack]:
    """template.yaml deployed into an emulator for the block: the one way tests, benchmarks and the replay
    get a local stack.

    Where the emulator comes from:
    - ``endpoint``: one that already runs (``nbaml stack up``'s process, moto in a container on a Docker
      network, LocalStack). It is left running after the block, holding the stack.
    - ``isolated``: a moto server process of its own, stopped after the block, its state lost with it
      (tests that destroy and rebuild a stack). Its pid file goes to ``state_dir`` or a temporary folder.
    - otherwise moto in a thread of this process, the fastest. moto's state is process-wide, so only one
      runs at a time: a second, nested one is refused.

    ``state_dir`` also receives ``stack.json``, so the command line (``nbaml models`` ...) finds the stack.
    While the block runs, the process environment points boto3 at the emulator with its fake credentials
    (unless ``point_environment`` is false); after it, the environment, nbaml's parameter cache and the
    warm handler modules are as they were before, so the next stack starts cold.
    """
    from infra import runtime

    parameters = {"Stage": "dev", **(parameters or {})}
    with contextlib.ExitStack() as cleanup:
        if endpoint is None and isolated:
            pid_dir = state_dir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="nbaml-emulator-")))
            endpoint = emu.start(port=emu.free_port(), state_dir=pid_dir).endpoint
            cleanup.callback(emu.stop, pid_dir)
        elif endpoint is None:
            if emu.LIVE:
                raise StackError(
                    f"an in-process emulator already runs here ({emu.LIVE[0]}) and moto's state is process-wide: "
                    "use isolated=True, or pass its endpoint"
                )
            endpoint = cleanup.enter_context(emu.in_process())
        cleanup.callback(runtime.forget_parameters_and_modules)
        if point_environment:
            cleanup.enter_context(runtime.function_environment(emu.local_aws_env(endpoint)))
        runtime.forget_parameters_and_modules()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # moto's "not supported by CloudFormation" (filled here)
            stack = deploy(endpoint, template_path, parameters, stack_name=stack_name, state_dir=state_dir)
        yield stack


def teardown(state_dir: Path = emu.STATE_DIR) -> emu.BackgroundEmulator | None:
    """The local stack lives only in the emulator's memory: stopping the emulator is the teardown."""
    stopped = emu.stop(state_dir)
    (state_dir / STACK_FILE).unlink(missing_ok=True)
    return stopped


def _placeholder_zip() -> bytes:
    """The code moto stores for every function and layer; handlers really run in-process from the sources."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "nbaml local stack: code runs in-process from the repository (infra.runtime)\n")
    return buffer.getvalue()


Reconciler = Callable[["_Deployment", str, dict[str, Any]], str]
_RECONCILERS: dict[str, Reconciler] = {}
# Order matters where one resource's fill needs another's: layers and the API before the functions and
# permissions that point at them.
_ORDER = [
    "AWS::Lambda::LayerVersion",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Stage",
    "AWS::IAM::Role",
    "AWS::Lambda::Function",
]


def _reconciles(resource_type: str) -> Callable[[Reconciler], Reconciler]:
    def register(func: Reconciler) -> Reconciler:
        _RECONCILERS[resource_type] = func
        return func

    return register


class _Deployment:
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
        self.intrinsics = tpl.Intrinsics(
            parameters,
            {**emu.LOCAL_PSEUDO_PARAMETERS, "AWS::StackName": stack_name},
            conditions=translated.get("Conditions"),
            ref=self._ref,
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
        resolved = self.intrinsics.resolve(self.expected[logical_id].get("Properties") or {})
        return dict(resolved)

    # ------------------------------------------------------------ the steps
    def run(self, template_path: Path) -> LocalStack:
        self._upload_code()
        self._create_stack()
        self._read_physical_ids()
        ordered = sorted(
            self.expected,
            key=lambda lid: (
                _ORDER.index(self.expected[lid]["Type"]) if self.expected[lid]["Type"] in _ORDER else len(_ORDER)
            ),
        )
        unhandled = sorted(
            {
                f"{lid} ({self.expected[lid]['Type']})"
                for lid in ordered
                if self.expected[lid]["Type"] not in _RECONCILERS
            }
        )
        if unhandled:
            raise StackError(
                "the local stack does not know how moto treats these resources, so it cannot vouch for them: "
                + ", ".join(unhandled)
                + " (add a reconciler in infra/stack.py after checking moto's behaviour)"
            )
        for logical_id in ordered:
            _RECONCILERS[self.expected[logical_id]["Type"]](self, logical_id, self.props(logical_id))
        missing = sorted(set(self.expected) - set(self.physical))
        if missing:
            raise StackError(f"neither created by moto nor filled: {', '.join(missing)}")
        environments = self._function_environments()
        secure, admin_param, admin_token = self._secure_parameters(environments)
        return LocalStack(
            endpoint=self.endpoint,
            stack_name=self.stack_name,
            template_path=str(template_path.resolve()),
            parameters=self.parameters,
            resources=dict(sorted(self.physical.items())),
            resource_types={lid: res["Type"] for lid, res in sorted(self.expected.items())},
            function_environments=environments,
            function_dirs={lid: str(path) for lid, path in tpl.function_dirs(self.sam).items()},
            function_settings={lid: tpl.function_settings(self.sam, lid) for lid in tpl.function_dirs(self.sam)},
            api_id=self.api_id,
            admin_token_param=admin_param,
            secure_parameters=secure,
            outputs=self._outputs(),
            fills=self.fills,
            admin_token=admin_token,
        )

    def _upload_code(self) -> None:
        s3 = self.client("s3")
        try:
            s3.create_bucket(Bucket=tpl.CODE_BUCKET)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        body = _placeholder_zip()
        for logical_id in tpl.code_dirs(self.sam):
            s3.put_object(Bucket=tpl.CODE_BUCKET, Key=f"{logical_id}.zip", Body=body)

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
        deadline = time.monotonic() + _STACK_TIMEOUT_S
        while True:
            status = cfn.describe_stacks(StackName=self.stack_name)["Stacks"][0]["StackStatus"]
            if status == "CREATE_COMPLETE":
                return
            if not status.endswith("IN_PROGRESS") or time.monotonic() > deadline:
                events = cfn.describe_stack_events(StackName=self.stack_name)["StackEvents"]
                reasons = [e.get("ResourceStatusReason") for e in events if e.get("ResourceStatusReason")]
                raise StackError(
                    f"stack {self.stack_name} ended {status}: {'; '.join(reasons[:3]) or 'no reason given'}"
                )
            time.sleep(0.05)

    def _read_physical_ids(self) -> None:
        rows = self.client("cloudformation").describe_stack_resources(StackName=self.stack_name)["StackResources"]
        for row in rows:
            # Skipped types come back as rows without a logical id; some created ones without a physical id.
            if row.get("LogicalResourceId") and row.get("PhysicalResourceId"):
                self.physical[row["LogicalResourceId"]] = row["PhysicalResourceId"]

    # ------------------------------------------------------------ intrinsics against the deployed stack
    def _ref(self, logical_id: str) -> str:
        if logical_id not in self.physical:
            raise StackError(f"!Ref {logical_id}: not created (yet) in the local stack")
        return self.physical[logical_id]

    def _get_att(self, logical_id: str, attribute: str) -> str:
        physical = self._ref(logical_id)
        kind = self.expected.get(logical_id, {}).get("Type")
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return str(self.client("lambda").get_function_configuration(FunctionName=physical)["FunctionArn"])
        if kind == "AWS::SQS::Queue" and attribute == "Arn":
            return str(
                self.client("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"][
                    "QueueArn"
                ]
            )
        if kind == "AWS::SQS::Queue" and attribute == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if kind == "AWS::S3::Bucket" and attribute == "Arn":
            return f"arn:aws:s3:::{physical}"
        if kind == "AWS::DynamoDB::Table" and attribute == "Arn":
            return str(self.client("dynamodb").describe_table(TableName=physical)["Table"]["TableArn"])
        if kind == "AWS::IAM::Role" and attribute == "Arn":
            return str(self.client("iam").get_role(RoleName=physical)["Role"]["Arn"])
        if kind == "AWS::Events::Rule" and attribute == "Arn":
            return str(self.client("events").describe_rule(Name=physical)["Arn"])
        if kind == "AWS::Logs::LogGroup" and attribute == "Arn":
            return f"arn:aws:logs:{emu.LOCAL_REGION}:{emu.LOCAL_ACCOUNT_ID}:log-group:{physical}:*"
        if kind == "AWS::SNS::Topic" and attribute == "TopicArn":
            return physical
        if kind == "AWS::ApiGatewayV2::Api" and attribute == "ApiEndpoint":
            return str(self.client("apigatewayv2").get_api(ApiId=physical)["ApiEndpoint"])
        raise StackError(f"!GetAtt {logical_id}.{attribute} ({kind}) cannot be resolved locally yet")

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
                if exc.response["Error"]["Code"] != "ParameterNotFound":
                    raise
            value = secrets.token_urlsafe(32) if is_admin else "local-placeholder-not-a-real-key"
            ssm.put_parameter(Name=name, Value=value, Type="SecureString", Description="created by nbaml stack up")
            if is_admin:
                admin_token = value
            read = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
            if read["Type"] != "SecureString" or read["Value"] != value:
                raise StackError(f"SecureString {name} did not read back as written")
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


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise StackError(message)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# ---------------------------------------------------------------- reconcilers, one per resource type
@_reconciles("AWS::S3::Bucket")
def _bucket(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    s3, name = d.client("s3"), d._ref(lid)
    versioning = props.get("VersioningConfiguration")
    if versioning and s3.get_bucket_versioning(Bucket=name).get("Status") != versioning["Status"]:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning["Status"]})
        _check(s3.get_bucket_versioning(Bucket=name).get("Status") == versioning["Status"], f"{lid}: versioning")
        d.note(lid, f"versioning {versioning['Status']}")
    block = props.get("PublicAccessBlockConfiguration")
    if block:
        try:
            current = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except ClientError:
            current = {}
        if current != block:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
            _check(
                s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == block,
                f"{lid}: public access",
            )
            d.note(lid, "public access block")
    lifecycle = props.get("LifecycleConfiguration")
    if lifecycle:
        rules = [_lifecycle_rule(rule) for rule in lifecycle["Rules"]]
        try:
            current_rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        except ClientError:
            current_rules = []
        if [r["ID"] for r in current_rules] != [r["ID"] for r in rules]:
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
            read = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
            _check([r["ID"] for r in read] == [r["ID"] for r in rules], f"{lid}: lifecycle")
            d.note(lid, f"lifecycle rules {', '.join(r['ID'] for r in rules)}")
    encryption = props.get("BucketEncryption")
    if encryption:
        wanted = encryption["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
        try:
            rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        except ClientError:
            rules = []
        if not rules or rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] != wanted:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": wanted}}]
                },
            )
            d.note(lid, f"encryption {wanted}")
    return name


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


@_reconciles("AWS::DynamoDB::Table")
def _table(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    ddb, name = d.client("dynamodb"), d._ref(lid)
    table = ddb.describe_table(TableName=name)["Table"]
    _check(table["KeySchema"] == props["KeySchema"], f"{lid}: key schema differs from the template")
    wanted_gsis = {g["IndexName"]: g["KeySchema"] for g in props.get("GlobalSecondaryIndexes", [])}
    actual_gsis = {g["IndexName"]: g["KeySchema"] for g in table.get("GlobalSecondaryIndexes", [])}
    _check(
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
            _check(current() == status, f"{lid}: point-in-time recovery stays {current()}")
            d.note(lid, f"point-in-time recovery {status}")
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        described = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if described.get("TimeToLiveStatus") != "ENABLED":
            ddb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )
            described = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            _check(described.get("AttributeName") == ttl["AttributeName"], f"{lid}: TTL")
            d.note(lid, f"TTL on {ttl['AttributeName']}")
    if (props.get("SSESpecification") or {}).get("SSEEnabled") and not table.get("SSEDescription"):
        d.note(lid, f"SSESpecification not fillable: {UNFILLABLE[('AWS::DynamoDB::Table', 'SSESpecification')]}")
    _check(
        bool(table.get("DeletionProtectionEnabled")) == bool(props.get("DeletionProtectionEnabled", False)),
        f"{lid}: deletion protection differs from the template",
    )
    return name


@_reconciles("AWS::SSM::Parameter")
def _parameter(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    name = d._ref(lid)
    read = d.client("ssm").get_parameter(Name=name)["Parameter"]
    _check(read["Value"] == str(props["Value"]) and read["Type"] == props["Type"], f"{lid}: value or type differs")
    return name


@_reconciles("AWS::SQS::Queue")
def _queue(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    sqs, url = d.client("sqs"), d._ref(lid)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    wanted = {k: str(props[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds") if k in props}
    if "SqsManagedSseEnabled" in props:
        wanted["SqsManagedSseEnabled"] = str(props["SqsManagedSseEnabled"]).lower()
    if "RedrivePolicy" in props:
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        _check(
            redrive.get("deadLetterTargetArn") == props["RedrivePolicy"]["deadLetterTargetArn"]
            and int(redrive.get("maxReceiveCount", 0)) == int(props["RedrivePolicy"]["maxReceiveCount"]),
            f"{lid}: redrive policy differs from the template",
        )
    differing = {k: v for k, v in wanted.items() if attributes.get(k) != v}
    if differing:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=differing)
        d.note(lid, f"attributes {', '.join(sorted(differing))}")
    return url


@_reconciles("AWS::SQS::QueuePolicy")
def _queue_policy(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    sqs = d.client("sqs")
    document = json.dumps(props["PolicyDocument"])
    for url in props["Queues"]:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": document})
        read = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"].get("Policy", "{}")
        _check(json.loads(read) == props["PolicyDocument"], f"{lid}: policy of {url} did not read back")
    d.physical[lid] = props["Queues"][0]
    d.note(lid, "created: set_queue_attributes Policy (moto's CloudFormation skips the type)")
    return d.physical[lid]


@_reconciles("AWS::Logs::LogGroup")
def _log_group(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    name = d._ref(lid)
    groups = d.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    group = next((g for g in groups if g["logGroupName"] == name), None)
    _check(group is not None, f"{lid}: log group {name} missing")
    if "RetentionInDays" in props and group and group.get("retentionInDays") != int(props["RetentionInDays"]):
        d.client("logs").put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        d.note(lid, "retention")
    return name


@_reconciles("AWS::SNS::Topic")
def _topic(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    arn = d._ref(lid)
    d.client("sns").get_topic_attributes(TopicArn=arn)
    return arn


@_reconciles("AWS::SNS::Subscription")
def _subscription(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
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


@_reconciles("AWS::CloudWatch::Alarm")
def _alarm(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
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
    _check(len(read) == 1 and read[0]["MetricName"] == props["MetricName"], f"{lid}: alarm did not read back")
    d.physical[lid] = name
    d.note(lid, "created: put_metric_alarm (moto's CloudFormation skips the type)")
    return name


@_reconciles("AWS::Events::Rule")
def _rule(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    events, name = d.client("events"), d._ref(lid)
    rule = events.describe_rule(Name=name)
    _check(rule.get("ScheduleExpression") == props.get("ScheduleExpression"), f"{lid}: schedule differs")
    targets = {t["Id"]: t for t in events.list_targets_by_rule(Rule=name)["Targets"]}
    for wanted in props.get("Targets", []):
        actual = targets.get(wanted["Id"])
        _check(actual is not None and actual["Arn"] == wanted["Arn"], f"{lid}: target {wanted['Id']} missing")
        for key in ("RetryPolicy", "DeadLetterConfig"):
            _check(actual.get(key) == wanted.get(key), f"{lid}: target {wanted['Id']} {key} differs")  # type: ignore[union-attr]
    return name


@_reconciles("AWS::Scheduler::Schedule")
def _schedule(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    scheduler = d.client("scheduler")
    name = props.get("Name") or f"{d.stack_name}-{lid}"[:64]
    arguments = {k: v for k, v in props.items() if k != "Name"}
    scheduler.create_schedule(Name=name, **arguments)
    read = scheduler.get_schedule(Name=name, GroupName=props.get("GroupName", "default"))
    _check(read["ScheduleExpression"] == props["ScheduleExpression"], f"{lid}: schedule did not read back")
    d.physical[lid] = name
    d.note(lid, "created: scheduler create_schedule (moto's CloudFormation skips the type)")
    return name


@_reconciles("AWS::SecretsManager::Secret")
def _secret(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
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


@_reconciles("AWS::IAM::Role")
def _role(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    """Managed policies are attached by hand, inline ones rewritten as JSON (moto stores a Python repr)."""
    iam, name = d.client("iam"), d._ref(lid)
    attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    wanted = set(props.get("ManagedPolicyArns", []))
    for arn in sorted(wanted - attached):
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=arn)
        except ClientError as exc:
            raise StackError(
                f"{lid}: cannot attach {arn} ({_code(exc)}); the emulator must run with MOTO_IAM_LOAD_MANAGED_POLICIES"
            ) from exc
    if wanted - attached:
        d.note(lid, f"attached {len(wanted - attached)} managed policies")
    for policy in props.get("Policies", []):
        # SAM writes inline documents without a Version; IAM defaults it, moto refuses the document.
        document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
        iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        read = iam.get_role_policy(RoleName=name, PolicyName=policy["PolicyName"])["PolicyDocument"]
        _check(read == document, f"{lid}: inline policy {policy['PolicyName']} did not read back")
    if props.get("Policies"):
        d.note(lid, "inline policies rewritten as JSON")
    return name


@_reconciles("AWS::Lambda::LayerVersion")
def _layer(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    """moto creates the layer but gives CloudFormation no physical id: find its version ARN by name."""
    prefix = f"{d.stack_name}-{lid}-"
    layers = d.client("lambda").list_layers()["Layers"]
    found = [layer for layer in layers if layer["LayerName"].startswith(prefix) or layer["LayerName"] == lid]
    _check(len(found) == 1, f"{lid}: expected one layer named {prefix}*, found {len(found)}")
    arn = str(found[0]["LatestMatchingVersion"]["LayerVersionArn"])
    d.physical[lid] = arn
    d.note(lid, "physical id found: list_layers (Ref of a layer version is wrong in moto)")
    return arn


@_reconciles("AWS::Lambda::Function")
def _function(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    lam, name = d.client("lambda"), d._ref(lid)
    config = lam.get_function_configuration(FunctionName=name)
    _check(
        config["MemorySize"] == int(props.get("MemorySize", 128)) and config["Timeout"] == int(props.get("Timeout", 3)),
        f"{lid}: memory or timeout differs",
    )
    wanted_layers = list(props.get("Layers", []))
    if [layer["Arn"] for layer in config.get("Layers", [])] != wanted_layers:
        lam.update_function_configuration(FunctionName=name, Layers=wanted_layers)
        read = [layer["Arn"] for layer in lam.get_function_configuration(FunctionName=name).get("Layers", [])]
        _check(read == wanted_layers, f"{lid}: layers did not read back")
        d.note(lid, f"layers attached ({len(wanted_layers)})")
    for key in ("TracingConfig", "LoggingConfig"):
        if key in props and config.get(key) != props[key]:
            d.note(lid, f"{key} not fillable: {UNFILLABLE[('AWS::Lambda::Function', key)]}")
    return name


@_reconciles("AWS::Lambda::Permission")
def _permission(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
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
    _check(any(s["Sid"] == lid for s in statements), f"{lid}: permission did not read back")
    d.physical[lid] = lid
    d.note(lid, "re-added with the real API id (moto resolved the skipped API to None)")
    return lid


@_reconciles("AWS::Lambda::EventSourceMapping")
def _event_source_mapping(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    uuid = d._ref(lid)
    mapping = d.client("lambda").get_event_source_mapping(UUID=uuid)
    _check(mapping["EventSourceArn"] == props["EventSourceArn"], f"{lid}: event source differs")
    _check(
        int(mapping.get("BatchSize", 0)) == int(props.get("BatchSize", mapping.get("BatchSize", 0))),
        f"{lid}: batch size",
    )
    # moto runs Lambda code only through Docker: left enabled, its SQS would try (and hang trying) to
    # invoke the function on every message. Locally, the replay and `nbaml retrain` drain the queue into
    # the handler in-process instead, as the mapping would on AWS.
    d.client("lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
    _check(
        d.client("lambda").get_event_source_mapping(UUID=uuid).get("State") in {"Disabled", "Disabling"},
        f"{lid}: could not disable the mapping",
    )
    d.note(lid, "disabled: no Lambda runtime without Docker; infra drains the queue in-process")
    return uuid


@_reconciles("AWS::ApiGatewayV2::Api")
def _http_api(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    """import_api is not implemented in moto: the OpenAPI body becomes create_api, authorizers and routes."""
    body = props.get("Body")
    _check(isinstance(body, dict), f"{lid}: only an inline OpenAPI Body is supported locally")
    api = d.client("apigatewayv2")
    title = str((body.get("info") or {}).get("title") or f"{d.stack_name}-{lid}")
    api_id = str(api.create_api(Name=title, ProtocolType="HTTP")["ApiId"])
    d.physical[lid] = api_id
    d.api_id = api_id
    authorizers: dict[str, str] = {}
    for scheme_name, scheme in ((body.get("components") or {}).get("securitySchemes") or {}).items():
        spec = scheme.get("x-amazon-apigateway-authorizer")
        if not spec:
            continue
        arguments: dict[str, Any] = {
            "ApiId": api_id,
            "Name": scheme_name,
            "AuthorizerType": spec["type"].upper(),
            "IdentitySource": spec.get("identitySource", []),
        }
        if spec.get("authorizerUri"):
            arguments["AuthorizerUri"] = spec["authorizerUri"]
        if spec.get("authorizerPayloadFormatVersion"):
            arguments["AuthorizerPayloadFormatVersion"] = spec["authorizerPayloadFormatVersion"]
        if "enableSimpleResponses" in spec:
            arguments["EnableSimpleResponses"] = bool(spec["enableSimpleResponses"])
        if "authorizerResultTtlInSeconds" in spec:
            arguments["AuthorizerResultTtlInSeconds"] = int(spec["authorizerResultTtlInSeconds"])
        authorizers[scheme_name] = str(api.create_authorizer(**arguments)["AuthorizerId"])
        read = api.get_authorizer(ApiId=api_id, AuthorizerId=authorizers[scheme_name])
        _check(read.get("AuthorizerUri") == spec.get("authorizerUri"), f"{lid}: authorizer {scheme_name} read back")
    integrations: dict[str, str] = {}
    routes = 0
    for path, methods in (body.get("paths") or {}).items():
        for method, operation in methods.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            uri = integration.get("uri")
            if uri not in integrations:
                integrations[uri] = str(
                    api.create_integration(
                        ApiId=api_id,
                        IntegrationType=integration.get("type", "aws_proxy").upper(),
                        IntegrationMethod=integration.get("httpMethod", "POST"),
                        IntegrationUri=uri,
                        PayloadFormatVersion=integration.get("payloadFormatVersion", "2.0"),
                    )["IntegrationId"]
                )
            verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            route: dict[str, Any] = {
                "ApiId": api_id,
                "RouteKey": f"{verb} {path}",
                "Target": f"integrations/{integrations[uri]}",
            }
            # SAM marks a route that opts out of the API's DefaultAuthorizer with the pseudo-scheme NONE.
            schemes = [name for requirement in operation.get("security", []) for name in requirement if name != "NONE"]
            if schemes:
                route |= {"AuthorizationType": "CUSTOM", "AuthorizerId": authorizers[schemes[0]]}
            api.create_route(**route)
            routes += 1
    read_routes = api.get_routes(ApiId=api_id)["Items"]
    _check(len(read_routes) == routes, f"{lid}: {len(read_routes)} routes read back, {routes} created")
    d.note(lid, f"created: create_api + {len(authorizers)} authorizer(s) + {routes} route(s) (import_api is missing)")
    return api_id


@_reconciles("AWS::ApiGatewayV2::Stage")
def _http_api_stage(d: _Deployment, lid: str, props: dict[str, Any]) -> str:
    api = d.client("apigatewayv2")
    arguments = {k: v for k, v in props.items() if k in ("ApiId", "StageName", "AutoDeploy", "DefaultRouteSettings")}
    if "DefaultRouteSettings" in arguments:
        settings = dict(arguments["DefaultRouteSettings"])
        if "ThrottlingRateLimit" in settings:
            settings["ThrottlingRateLimit"] = float(settings["ThrottlingRateLimit"])
        if "ThrottlingBurstLimit" in settings:
            settings["ThrottlingBurstLimit"] = int(settings["ThrottlingBurstLimit"])
        arguments["DefaultRouteSettings"] = settings
    api.create_stage(**arguments)
    read = api.get_stage(ApiId=props["ApiId"], StageName=props["StageName"])
    _check(read["StageName"] == props["StageName"], f"{lid}: stage did not read back")
    d.physical[lid] = props["StageName"]
    d.note(lid, "created: create_stage (moto's CloudFormation skips the type)")
    return str(props["StageName"])
