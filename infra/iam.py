"""IAM, locally: moto's own policy evaluation switched on, each function under its role's credentials, every
call recorded and audited against the policies the template gives each function.

moto evaluates IAM only when asked (its ``INITIAL_NO_AUTH_ACTION_COUNT``), and its evaluation is basic:
for DynamoDB and SSM it checks every request against the resource ``*``, so a policy scoped to a table or
a parameter path (ours all are) would deny everything, and a policy granting ``*`` would hide a missing
grant; and it answers a read of a missing S3 key with 404 whatever the caller may do. ``teach_moto`` gives
moto what AWS does there (through moto's own ``_determine_resource`` hook, which its SQS, IAM and STS
responses already use); the evaluation itself, action and resource matching, Allow and explicit Deny,
stays moto's (``moto.iam.access_control``). What moto still does not evaluate, and this module does not
pretend to: condition operators other than StringEquals (our ``s3:prefix`` StringLike on ListBucket counts
as met), policy variables, and permission boundaries.

``enforced`` is the switch a local stack turns on after its deploy (``infra.stack.deployed(iam=True)``):
an operator role with administrator rights stands for the person at the keyboard (the tests, the replay's
client, the command line); each function gets the credentials of its own execution role, as Lambda hands
them to it. Every authorization an emulator in this process decides is recorded as a ``Call``; ``audit``
then says which calls a function's policies do not allow and which grants no recorded call used. No emulator
here runs EventBridge Scheduler, so what it does with each schedule's execution role (invoke the function,
dead-letter a failed invocation) is read off the schedules as Scheduler holds them (``scheduler_calls``) and
audited the same way.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra import emulator as emu

OPERATOR = "operator"
OPERATOR_ROLE = "nbaml-local-operator"
ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"
VERSION = "2012-10-17"
_SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Call:
    """One request moto authorized or refused: who (a function's logical id, or ``operator``), what, on what."""

    principal: str
    action: str
    resource: str
    allowed: bool


@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern of a function's inline policy statement."""

    function: str
    sid: str
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.function} {self.sid}: {self.action} on {self.resource}"


@dataclass
class Audit:
    """What the recorded calls say about the policies: grants missing (calls refused) and grants unused."""

    missing: list[Call] = field(default_factory=list)
    unused: list[Grant] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.unused

    def __str__(self) -> str:
        lines = [f"missing: {c.principal} {c.action} on {c.resource}" for c in self.missing]
        return "\n".join(lines + [f"unused: {g}" for g in self.unused]) or "clean"


# ---------------------------------------------------------------- what moto lacks
def _dynamodb_resource(response: Any) -> str:
    """The table (or index) a DynamoDB request names; ``*`` for one naming several (refused unless granted *)."""
    body = response.body if isinstance(response.body, Mapping) else {}
    tables = [body["TableName"]] if body.get("TableName") else list(body.get("RequestItems") or {})
    if len(tables) != 1:
        return "*"
    arn = f"arn:aws:dynamodb:{response.region}:{response.current_account}:table/{tables[0]}"
    return f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn


def _ssm_resource(response: Any) -> str:
    """The parameter an SSM request names (``Name``); ``*`` for requests naming several or none."""
    name = response._get_param("Name")
    if not isinstance(name, str) or not name:
        return "*"
    return f"arn:aws:ssm:{response.region}:{response.current_account}:parameter/{name.lstrip('/')}"


def teach_moto() -> None:
    """What AWS does and moto does not, taught to the moto of this process (idempotent; before it serves).

    - DynamoDB and SSM requests are authorized against the table, index or parameter they name.
    - A read of a missing S3 key is answered 404 only to a caller allowed s3:ListBucket on the bucket, and
      AccessDenied to anyone else, as S3 does: code expecting NotFound (a new season's training file, the
      first drift report) fails here as it would on AWS when its role lacks that grant.
    - Every authorization is recorded while a ``Recorder`` is listening (an emulator in this process).
    - The signature of a GET, HEAD or DELETE to a REST API (Lambda, API Gateway, Scheduler) is checked over
      its empty body: moto signs its parsed parameters as the body there, so no real client's signature
      ever matched and every such call was refused.
    """
    from moto.dynamodb.responses import DynamoHandler
    from moto.iam.access_control import IAMRequestBase
    from moto.ssm.responses import SimpleSystemManagerResponse

    DynamoHandler._determine_resource = _dynamodb_resource  # type: ignore[attr-defined]
    SimpleSystemManagerResponse._determine_resource = _ssm_resource  # type: ignore[attr-defined]
    if getattr(IAMRequestBase.check_action_permitted, "nbaml", False):
        return
    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(request: Any, resource: str) -> None:
        allowed = False
        try:
            original(request, resource)
            allowed = True
        finally:
            _record(request, str(request._action), resource, allowed)
        if str(request._action) == "s3:GetObject" and _missing_object(request.account_id, resource):
            bucket_arn = "arn:aws:s3:::" + resource.split(":::", 1)[1].split("/", 1)[0]
            policies = [_document(p) for p in request._access_key.collect_policies()]
            listing = _permitted(policies, "s3:ListBucket", bucket_arn)
            _record(request, "s3:ListBucket", bucket_arn, listing)
            if not listing:
                request._raise_access_denied()

    check_action_permitted.nbaml = True  # type: ignore[attr-defined]
    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
    signed_request = IAMRequestBase._create_aws_request

    def _create_aws_request(request: Any) -> Any:
        aws_request = signed_request(request)
        if str(request._method).upper() in ("GET", "HEAD", "DELETE") and not request._body:
            aws_request.data = b""
        return aws_request

    IAMRequestBase._create_aws_request = _create_aws_request  # type: ignore[method-assign]


class Recorder:
    """Every authorization moto decides in this process while it listens, with the principal that asked."""

    def __init__(self, principals: Mapping[str, str]) -> None:
        self.calls: list[Call] = []
        self.principals = dict(principals)  # role name -> who it stands for
        self._lock = threading.Lock()

    def __enter__(self) -> Recorder:
        _RECORDERS.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _RECORDERS.remove(self)

    def record(self, principal_arn: str, action: str, resource: str, allowed: bool) -> None:
        # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
        role = principal_arn.split(":assumed-role/", 1)[-1].split("/", 1)[0]
        if role not in self.principals:
            return  # another stack's principal (each stack has its own roles)
        with self._lock:
            self.calls.append(Call(self.principals[role], action, resource, allowed))


_RECORDERS: list[Recorder] = []


def _record(request: Any, action: str, resource: str, allowed: bool) -> None:
    for recorder in list(_RECORDERS):
        recorder.record(str(request._access_key.arn), action, resource, allowed)


def _missing_object(account_id: str, resource: str) -> bool:
    """True when ``resource`` (arn:aws:s3:::bucket/key) names a key the emulator's bucket does not hold."""
    from moto.s3.models import s3_backends

    bucket_name, _, key = resource.split(":::", 1)[-1].partition("/")
    bucket = s3_backends[account_id]["aws"].buckets.get(bucket_name)
    return bool(key) and bucket is not None and bucket.keys.get(key) is None


def _document(policy: Any) -> dict[str, Any]:
    """A policy as moto's access control collects it (a managed Policy object or an inline JSON string)."""
    from moto.iam.access_control import IAMPolicy

    return dict(IAMPolicy(policy)._policy_json)


# ---------------------------------------------------------------- the switch
@dataclass
class Enforcement:
    """What ``enforced`` set up: the credentials of the operator and of each function, and the record.

    The record holds every authorization of an emulator in this process; one in another process (an
    isolated stack, a container) evaluates IAM all the same, but its decisions are not recorded here.
    """

    operator: dict[str, str]
    functions: dict[str, dict[str, str]]
    roles: dict[str, str]  # function logical id -> its execution role's name
    recorder: Recorder

    @property
    def calls(self) -> list[Call]:
        return list(self.recorder.calls)

    def calls_of(self, function: str) -> list[Call]:
        return [c for c in self.recorder.calls if c.principal == function]

    def refused(self) -> list[Call]:
        """Calls of a function that moto refused (each one a grant the template lacks)."""
        return [c for c in self.recorder.calls if not c.allowed and c.principal != OPERATOR]

    def forget(self, calls: Iterable[Call]) -> None:
        """Drop ``calls`` from the record (a test's own deliberate refusals)."""
        unwanted = set(calls)
        self.recorder.calls[:] = [c for c in self.recorder.calls if c not in unwanted]


def _credentials(sts: Any, role_arn: str, session: str) -> dict[str, str]:
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=session, DurationSeconds=_SESSION_SECONDS)
    creds = issued["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
        "AWS_SECURITY_TOKEN": creds["SessionToken"],
    }


def function_roles(stack: Any) -> dict[str, str]:
    """Function logical id -> its execution role's name, read from the emulator (the template's Role).

    Read before IAM is evaluated: moto's signature check refuses its own Lambda API's signed paths.
    """
    lam = emu.client("lambda", stack.endpoint)
    roles = {}
    for logical_id in stack.functions:
        role_arn = lam.get_function_configuration(FunctionName=stack.resource(logical_id))["Role"]
        roles[logical_id] = str(role_arn).rsplit("/", 1)[-1]
    return roles


def _switch(endpoint: str, count: float) -> None:
    """moto's own switch: after ``count`` more unauthenticated requests, every request is authorized."""
    url, body = f"{endpoint}/moto-api/reset-auth", str(count).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "text/plain"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310  # nosec B310 - the emulator's loopback moto-api
        response.read()


@contextlib.contextmanager
def enforced(stack: Any) -> Iterator[Enforcement]:
    """Switch on moto's IAM evaluation at ``stack``'s emulator for the block.

    The emulator must be one of ours (``infra.emulator``, in this process or its own): both are taught by
    ``teach_moto`` before they serve. Before the switch: an operator role with AdministratorAccess, and one
    session per function on its own execution role (assumed while moto still lets anyone assume anything:
    the trust policies name Lambda). For the block, ``stack.iam`` is the Enforcement (``env_for`` hands each
    function its role's credentials) and the emulator's clients and environment sign as the operator.
    """
    iam, sts = emu.client("iam", stack.endpoint), emu.client("sts", stack.endpoint)
    trust = json.dumps(
        {"Version": VERSION, "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    )
    operator_arn = iam.create_role(RoleName=OPERATOR_ROLE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=OPERATOR_ROLE, PolicyArn=ADMINISTRATOR)
    roles = function_roles(stack)
    functions = {
        logical_id: _credentials(sts, iam.get_role(RoleName=role)["Role"]["Arn"], logical_id)
        for logical_id, role in roles.items()
    }
    principals = {role: logical_id for logical_id, role in roles.items()} | {OPERATOR_ROLE: OPERATOR}
    with Recorder(principals) as recorder:
        enforcement = Enforcement(_credentials(sts, operator_arn, OPERATOR), functions, roles, recorder)
        stack.iam, stack.operator_credentials = enforcement, enforcement.operator
        emu.use_credentials(stack.endpoint, enforcement.operator)
        _switch(stack.endpoint, 0)
        try:
            yield enforcement
        finally:
            _switch(stack.endpoint, float("inf"))
            emu.use_credentials(stack.endpoint, None)
            stack.iam, stack.operator_credentials = None, None


# ---------------------------------------------------------------- what EventBridge Scheduler does
def scheduler_principals(stack: Any) -> dict[str, str]:
    """Each Scheduler schedule's logical id -> its execution role's name, as Scheduler holds the schedule."""
    scheduler = emu.client("scheduler", stack.endpoint)
    roles = {}
    for logical_id, kind in stack.resource_types.items():
        if kind == "AWS::Scheduler::Schedule":
            target = scheduler.get_schedule(Name=stack.resource(logical_id), GroupName="default")["Target"]
            roles[logical_id] = str(target["RoleArn"]).rsplit("/", 1)[-1]
    return roles


def scheduler_calls(stack: Any) -> list[Call]:
    """The calls EventBridge Scheduler makes with each schedule's execution role, read off the schedule.

    No emulator here runs Scheduler (the local clock fires the handlers in-process), so the calls are what
    Scheduler documents for a Lambda target: ``lambda:InvokeFunction`` on the target at each firing, and
    ``sqs:SendMessage`` to the dead-letter queue once the retries are spent. Each is judged by moto's
    evaluator against the role's policies as the emulator holds them.
    """
    scheduler, iam = emu.client("scheduler", stack.endpoint), emu.client("iam", stack.endpoint)
    calls = []
    for logical_id, role in scheduler_principals(stack).items():
        target = scheduler.get_schedule(Name=stack.resource(logical_id), GroupName="default")["Target"]
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        documents = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
        wanted = [("lambda:InvokeFunction", str(target["Arn"]))]
        if target.get("DeadLetterConfig", {}).get("Arn"):
            wanted.append(("sqs:SendMessage", str(target["DeadLetterConfig"]["Arn"])))
        calls += [Call(logical_id, action, arn, _permitted(documents, action, arn)) for action, arn in wanted]
    return calls


# ---------------------------------------------------------------- the audit
def _roles(stack: Any) -> dict[str, str]:
    return stack.iam.roles if stack.iam is not None else function_roles(stack)


def inline_policies(stack: Any, roles: Mapping[str, str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each function's (or each of ``roles``': principal -> role name) inline policy documents as the emulator
    holds them.

    The deploy rewrote each from the translated template and read it back equal (infra.reconcile.functions),
    so these are the template's policies with the stack's real names.
    """
    iam = emu.client("iam", stack.endpoint)
    documents: dict[str, list[dict[str, Any]]] = {}
    for logical_id, role in (roles or _roles(stack)).items():
        names = iam.list_role_policies(RoleName=role)["PolicyNames"]
        documents[logical_id] = [iam.get_role_policy(RoleName=role, PolicyName=n)["PolicyDocument"] for n in names]
    return documents


def managed_policies(stack: Any) -> dict[str, list[dict[str, Any]]]:
    """Each function's attached AWS managed policies (basic execution, X-Ray, the SQS poller), as documents."""
    iam = emu.client("iam", stack.endpoint)
    documents: dict[str, list[dict[str, Any]]] = {}
    for logical_id, role in _roles(stack).items():
        documents[logical_id] = []
        for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            arn = attached["PolicyArn"]
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            documents[logical_id].append(
                iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
            )
    return documents


def _permitted(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """moto's evaluation of one request against a set of policy documents: some Allow, no explicit Deny."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    results = [IAMPolicy(json.dumps(doc)).is_action_permitted(action, resource) for doc in documents]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def allows(statements: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Whether policy ``statements`` allow ``action`` on ``resource`` (moto's evaluation; conditions count as met)."""
    return _permitted([{"Version": VERSION, "Statement": list(statements)}], action, resource)


def role_statements(role_properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies (an ``AWS::IAM::Role``'s resolved properties)."""
    return [s for policy in role_properties.get("Policies", []) for s in _statements(policy["PolicyDocument"])]


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statement = document.get("Statement", [])
    return [statement] if isinstance(statement, dict) else list(statement)


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def audit(
    calls: Iterable[Call],
    policies: Mapping[str, list[dict[str, Any]]],
    managed: Mapping[str, list[dict[str, Any]]] | None = None,
) -> Audit:
    """Judge recorded calls against each function's policies, both ways, with moto's evaluator.

    Missing: a call of a function that its inline and managed policies together do not allow. Unused: an
    action on a resource pattern of an inline Allow statement that no call of that function matched
    (managed policies are AWS's, shared by every function, and not ours to trim).
    """
    calls = [c for c in calls if c.principal in policies]
    result = Audit()
    for call in calls:
        documents = [*policies[call.principal], *(managed or {}).get(call.principal, [])]
        if not _permitted(documents, call.action, call.resource):
            result.missing.append(call)
    seen = {(c.principal, c.action, c.resource) for c in calls}
    for function, documents in policies.items():
        used = [(action, resource) for who, action, resource in seen if who == function]
        for document in documents:
            for number, statement in enumerate(_statements(document)):
                if statement.get("Effect") != "Allow":
                    continue
                sid = str(statement.get("Sid") or f"statement {number}")
                for action in _as_list(statement.get("Action")):
                    for resource in _as_list(statement.get("Resource")):
                        grant = {"Effect": "Allow", "Action": action, "Resource": resource}
                        if not any(_permitted([{"Version": VERSION, "Statement": [grant]}], a, r) for a, r in used):
                            result.unused.append(Grant(function, sid, action, resource))
    return result
