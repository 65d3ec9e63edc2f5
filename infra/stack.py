"""``sam deploy``, locally: template.yaml linted, translated and deployed into moto, and the stack it makes.

``deploy`` hands moto's CloudFormation the translated template, then ``infra.reconcile`` reads every
resource back and fills what moto skipped or ignored (the status it reports proves nothing). ``LocalStack``
is what the deploy found: each resource's physical id and each function's environment, which the command
line, the in-process runtime and the tests read. ``deployed`` is the one way a test, a benchmark or the
replay gets a stack for the length of a block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra import InfraError
from infra import emulator as emu
from infra import template as tpl

STACK_FILE = "stack.json"


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
    """A deployed stack as the local tools see it: what the CLI, the runtime and the tests need to find each
    resource. Usually the emulator's (``deploy``); ``read_cloudformation`` reads one on AWS the same way, with
    an empty ``endpoint``: the process's own AWS configuration reaches it."""

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
    # While the emulator evaluates IAM (``infra.iam.enforced``): each function's role credentials and the
    # record of every call. None otherwise (every function then signs with the fake keys). Never saved.
    iam: Any = field(default=None, repr=False)
    # The operator's credentials where the emulator evaluates IAM (it knows only the keys it issued):
    # saved, so the command line in another process signs as the operator too. Emulator-issued, fake
    # keys: they open nothing outside that emulator.
    operator_credentials: dict[str, str] | None = field(default=None, repr=False)

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
        emulator's fake ones. While the emulator evaluates IAM, a function runs under its own role's
        credentials (``iam.functions``) unless ``credentials`` says otherwise.
        """
        logical_id = self.function_id(function)
        emulator = endpoint or self.endpoint
        env = {
            **self.function_environments[logical_id],
            **(emu.local_aws_env(self.endpoint) | {"AWS_ENDPOINT_URL": emulator} if emulator else {}),
            **(credentials or (self.iam.functions.get(logical_id) if self.iam else None) or {}),
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

    def operator_env(self, function: str, *, lambda_runtime: bool = False) -> dict[str, str]:
        """``function``'s environment (the template's names) signed as the operator, not as the function.

        What operator tools (backfill, promote, backup) and tests' own reads act with: where the emulator
        evaluates IAM, a function's role may not do what an operator does.
        """
        operator = emu.credentials_for(self.endpoint) if self.endpoint else None
        return self.env_for(function, lambda_runtime=lambda_runtime, credentials=operator)

    # ------------------------------------------------------------ persistence
    def save(self, state_dir: Path = emu.STATE_DIR) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / STACK_FILE
        data = asdict(dataclasses.replace(self, iam=None))  # the record of calls is not state
        data.pop("admin_token")
        data.pop("iam")
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
            stack = cls(**data)
        except (ValueError, TypeError) as exc:
            raise StackError(f"{path} is unreadable ({exc}); run `nbaml stack down` and `stack up` again") from exc
        if stack.operator_credentials:
            emu.use_credentials(stack.endpoint, stack.operator_credentials)
        return stack


def read_cloudformation(stack_name: str, client: Callable[[str], Any] | None = None) -> LocalStack:
    """A stack CloudFormation deployed (on AWS by default; wherever ``client`` reaches otherwise).

    Resources and parameters from CloudFormation, each function's environment as Lambda holds it: nothing is
    guessed from names. ``client`` defaults to boto3's default session (the operator's profile and region).
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or boto3.session.Session().client
    try:
        described = client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
        pages = client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
        rows = [row for page in pages for row in page["StackResourceSummaries"]]
        resources = {row["LogicalResourceId"]: row["PhysicalResourceId"] for row in rows}
        sam = tpl.load()
        functions = {lid: path for lid, path in tpl.function_dirs(sam).items() if lid in resources}
        environments = {
            lid: client("lambda").get_function_configuration(FunctionName=resources[lid]).get("Environment", {})
            for lid in functions
        }
    except (ClientError, BotoCoreError) as exc:
        raise StackError(f"cannot read CloudFormation stack {stack_name}: {exc}") from exc
    types = {row["LogicalResourceId"]: row["ResourceType"] for row in rows}
    return LocalStack(
        endpoint="",
        stack_name=stack_name,
        template_path=str(tpl.DEFAULT_TEMPLATE),
        parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in described.get("Parameters", [])},
        resources=resources,
        resource_types=types,
        function_environments={lid: dict(env.get("Variables") or {}) for lid, env in environments.items()},
        function_dirs={lid: str(path) for lid, path in functions.items()},
        function_settings={lid: tpl.function_settings(sam, lid) for lid in functions},
        api_id=next((resources[lid] for lid, kind in types.items() if kind == "AWS::ApiGatewayV2::Api"), None),
        admin_token_param=None,
        secure_parameters=[],
        outputs={o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])},
    )


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
    from infra.reconcile import Deployment  # it builds a LocalStack: imported here, not at the top

    deployment = Deployment(endpoint, name, sam, translated, params)
    stack = deployment.run(template_path)
    stack.deploy_seconds = round(time.monotonic() - started, 2)
    if state_dir is not None:
        stack.save(state_dir)
    return stack


_LINTED: dict[str, list[str]] = {}
LINT_CACHE = emu.STATE_DIR / "lint-clean"  # one empty file per input that linted clean


def _lint_key(template_path: Path, parameters: Mapping[str, str] | None) -> str:
    """Everything the verdict depends on: the template, the parameters, the linters' versions and our passes."""
    from importlib import metadata

    digest = hashlib.sha256(template_path.read_bytes())
    digest.update(json.dumps(dict(parameters or {}), sort_keys=True).encode())
    for package in ("cfn-lint", "aws-sam-translator"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    for module in (tpl, tpl.cron):  # the translation and the schedule checks are ours
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def lint(template_path: Path, parameters: Mapping[str, str] | None = None, *, cache: Path = LINT_CACHE) -> None:
    """Refuse a template cfn-lint finds an error in.

    cfn-lint takes 6 to 13 s a template here, and every deploy asks. The same inputs (see ``_lint_key``) give
    the same verdict, so a clean one is remembered in the process and on disk under ``cache`` (the replay, the
    CLI and each test process ask once per template); a failing one is never stored, so its findings are
    always printed fresh.
    """
    key = _lint_key(template_path, parameters)
    if key not in _LINTED:
        _LINTED[key] = [] if (cache / key).exists() else tpl.lint(template_path, parameters)
        if not _LINTED[key]:
            with contextlib.suppress(OSError):  # a read-only checkout lints every time
                cache.mkdir(parents=True, exist_ok=True)
                (cache / key).touch()
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
    ("scheduler", "list_schedules"),
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
    iam: bool = False,
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

    ``iam`` switches on moto's IAM evaluation once the stack is deployed (``infra.iam.enforced``, in-process
    emulators only): each function then signs with its own execution role and a call its policy does not
    allow is refused as on AWS; everything else signs as an operator role with administrator rights.
    ``stack.iam`` holds the credentials and the record of every call.
    """
    from infra import iam as iam_mod
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
        if iam:
            cleanup.enter_context(iam_mod.enforced(stack))
            if state_dir is not None:
                stack.save(state_dir)  # now with the operator's credentials, for the command line
            if point_environment:
                cleanup.enter_context(runtime.function_environment(emu.local_aws_env(endpoint)))
        yield stack


def teardown(state_dir: Path = emu.STATE_DIR) -> emu.BackgroundEmulator | None:
    """The local stack lives only in the emulator's memory: stopping the emulator is the teardown."""
    stopped = emu.stop(state_dir)
    (state_dir / STACK_FILE).unlink(missing_ok=True)
    return stopped
