"""Operator commands of ``nbaml``: the model registry, promote, rollback, canary, shadow, retrain.

Every role change goes through ``nbaml.deployment.Deployment``, the one implementation the admin API uses
too: the version must be registered and its bundle must verify before the SSM parameter is written, and the
registry records who, when and why. The only exception is ``rollback --raw``, the one-parameter write behind
``infra/rollback.sh`` when the ``aws`` CLI is missing (break glass): it checks only that the version is one
and that its bundle is committed, verifies no checksum and records nothing (a warm predict instance still
refuses a tampered version and keeps its last good model).

Where the commands act:
- the local stack (``nbaml stack up``), with the predict function's environment from the template, so the
  names are the ones the running server reads;
- real AWS with ``--aws``, or when no local stack is deployed and ``AWS_ENDPOINT_URL`` is unset: the names
  are the predict function's environment as Lambda holds it in the CloudFormation stack (``--stack-name``,
  by default the one samconfig.toml deploys for ``--stage``). ``AWS_ENDPOINT_URL``, when set, still
  applies (LocalStack, a moto server).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from infra import InfraError, runtime, tables
from infra import emulator as emu
from infra import stack as stk
from infra import template as tpl
from nbaml.config import CommonSettings, load_settings

SERVING_FUNCTION = "PredictFunction"
RETRAIN_FUNCTION = "retrain"


class OperatorSettings(CommonSettings):
    """The names an operator command needs: the roles, the registry, and the retrain queue."""

    retrain_queue_url: str = Field(min_length=1)


@dataclass(frozen=True)
class Target:
    """Where a command acts: the local stack, or a CloudFormation stack on AWS (``local`` false)."""

    where: str
    stack: stk.LocalStack
    local: bool

    @property
    def env(self) -> dict[str, str]:
        """The predict function's environment there (the names the running server reads), signed as the operator."""
        return self.stack.operator_env(SERVING_FUNCTION)


# ---------------------------------------------------------------- where the commands act
def resolve_target(args: argparse.Namespace) -> Target:
    state_dir = Path(args.state_dir)
    if not args.aws and (state_dir / stk.STACK_FILE).exists():
        stack = stk.LocalStack.load(state_dir)
        return Target(f"local stack {stack.stack_name} at {stack.endpoint}", stack, local=True)
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not args.aws and endpoint:
        raise InfraError(
            f"no local stack is deployed (run `nbaml stack up`), and AWS_ENDPOINT_URL is set to "
            f"{endpoint}: pass --aws to use the CloudFormation stack there"
        )
    name = args.stack_name or tpl.stack_name_for(args.stage)
    where = f"AWS stack {name}" + (f" at {endpoint}" if endpoint else "")
    return Target(where, stk.read_cloudformation(name), local=False)


@contextlib.contextmanager
def acting_on(target: Target) -> Iterator[OperatorSettings]:
    """The target's environment applied for the block (and restored after), and the settings read from it."""
    with runtime.function_environment(target.env):
        yield load_settings(OperatorSettings)


def _who(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


# ---------------------------------------------------------------- printing
def render_overview(overview: Mapping[str, Any]) -> str:
    """The seed's model_versions table, the roles beside each version, then the active parameter's history."""
    canary = overview.get("canary") or None
    roles: dict[str, list[str]] = {}
    if overview.get("active") not in (None, "none"):
        roles.setdefault(str(overview["active"]), []).append("active")
    if canary:
        roles.setdefault(str(canary["version"]), []).append(f"canary {canary['percent']}%")
    if overview.get("shadow"):
        roles.setdefault(str(overview["shadow"]), []).append("shadow")
    versions = overview.get("versions", [])
    history = overview.get("active_history", [])
    return "\n".join(
        [
            f"active {overview.get('active')}   canary "
            + (f"{canary['version']} at {canary['percent']}%" if canary else "none")
            + f"   shadow {overview.get('shadow') or 'none'}",
            "",
            tables.model_versions(versions, roles=roles) if versions else "no registered versions",
            "",
            "active parameter history (the audit trail):",
            tables.table(
                ["#", "value", "at", "why"],
                [[h["parameter_version"], h["value"], h["at"], h.get("why")] for h in history],
            )
            if history
            else "  (no history)",
        ]
    )


# ---------------------------------------------------------------- commands
def _models(args: argparse.Namespace) -> int:
    from nbaml.deployment import Deployment

    target = resolve_target(args)
    with acting_on(target) as settings:
        overview = Deployment(settings).overview()
    if args.json:
        print(json.dumps(overview, indent=2, default=str))
    else:
        print(f"{target.where}\n")
        print(render_overview(overview))
    return 0


def _change_role(args: argparse.Namespace, change: Callable[[Any, str], Any]) -> int:
    """One role change through the checked path (``change(deployment, who)``), and where it acted."""
    from nbaml.deployment import Deployment

    target = resolve_target(args)
    with acting_on(target) as settings:
        done = change(Deployment(settings), _who(args))
    max_age = target.env.get("MODEL_PARAM_MAX_AGE_SECONDS", "?")
    print(f"{done.role}: {done.before} -> {done.after} by {done.by} ({done.why}) on {target.where}")
    print(f"every warm predict instance follows within MODEL_PARAM_MAX_AGE_SECONDS={max_age} s")
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _change_role(args, lambda deployment, by: deployment.promote(args.version, by=by, why=args.reason))


def _rollback(args: argparse.Namespace) -> int:
    from nbaml.deployment import PREVIOUS
    from nbaml.storage import parameters

    if args.raw:
        if args.version == PREVIOUS:
            raise InfraError('--raw writes one parameter and reads no history: name a version, not "previous"')
        _raw_version_or_refuse(args.version)
        why = f"{_who(args)}: raw rollback to {args.version} (unchecked)" + (f": {args.reason}" if args.reason else "")
        if args.parameter:
            # rollback.sh's fallback: the same checks and single write the aws CLI path makes, same endpoint.
            _committed_or_refuse(_ambient_bucket(args.stage), args.version)
            version = parameters.write(args.parameter, args.version, why=why)
            print(f"wrote {args.parameter} = {args.version} (parameter version {version}; unchecked, no registry)")
            return 0
        target = resolve_target(args)
        with acting_on(target) as settings:
            _committed_or_refuse(settings.nbaml_bucket, args.version)
            version = parameters.write(settings.active_model_param, args.version, why=why)
        print(
            f"wrote {settings.active_model_param} = {args.version} (parameter version {version}; unchecked, "
            f"no registry) on {target.where}"
        )
        return 0
    if args.parameter:
        raise InfraError("--parameter goes with --raw only: the checked rollback takes its names from the stack")
    if not args.reason:
        raise InfraError("rollback needs --reason (recorded in the registry and the parameter's history)")
    return _change_role(args, lambda deployment, by: deployment.rollback(args.version, by=by, why=args.reason))


def _raw_version_or_refuse(version: str) -> None:
    """A cold predict instance has no last good model: a raw write of a typo would make it answer 503."""
    from nbaml.bundle import is_valid_version

    if not is_valid_version(version):
        raise InfraError(f"{version!r} is not a model version (v1 or vYYYYMMDD_HHMMSS); nothing written")


def _committed_or_refuse(bucket: str, version: str) -> None:
    from nbaml.layout import manifest_key
    from nbaml.storage.artifacts import ArtifactStore

    if not ArtifactStore(bucket).bundle_committed(version):
        raise InfraError(f"{version} has no committed bundle (s3://{bucket}/{manifest_key(version)}); nothing written")


def _ambient_bucket(stage: str) -> str:
    """The artifact bucket's name as the template names it, for the account and region boto3 finds."""
    import boto3

    sam = tpl.load()
    (bucket,) = tpl.resources_of_type(sam, "AWS::S3::Bucket").values()
    session = boto3.session.Session()
    account = session.client("sts").get_caller_identity()["Account"]
    pseudo = {"AWS::AccountId": account, "AWS::Region": session.region_name or "", "AWS::Partition": "aws"}
    intrinsics = tpl.Intrinsics(tpl.parameters_with_defaults(sam, {"Stage": stage}), pseudo)
    return str(intrinsics.resolve(bucket["Properties"]["BucketName"]))


CANARY_MOVES = ("pause", "resume", "advance", "abort")


def _canary(args: argparse.Namespace) -> int:
    move = next((m for m in CANARY_MOVES if getattr(args, m)), None)
    if move is not None:
        if args.version or args.clear or args.percent is not None:
            raise InfraError(f"canary --{move} acts on the canary in flight: give no VERSION, --percent or --clear")
        return _change_role(args, lambda deployment, by: _canary_move(deployment, move, by, args.reason))
    if args.clear == bool(args.version):
        raise InfraError("canary: give VERSION --percent N, --clear, or one of --pause/--resume/--advance/--abort")
    if args.version and args.percent is None:
        raise InfraError("canary: --percent N (1-100) is required with a version")
    if args.clear:
        return _change_role(args, lambda deployment, by: deployment.clear_canary(by=by, why=args.reason))
    return _change_role(
        args, lambda deployment, by: deployment.set_canary(args.version, args.percent, by=by, why=args.reason)
    )


def _canary_move(deployment: Any, move: str, by: str, why: str) -> Any:
    """The operator's moves on the canary's ladder, through the rule's own code (nbaml.promotion.canary)."""
    from nbaml.promotion.canary import Rollout

    rollout = Rollout(deployment, deployment.settings.steps)
    return getattr(rollout, move)(by=by, why=why)


def _shadow(args: argparse.Namespace) -> int:
    if args.clear == bool(args.version):
        raise InfraError("shadow: give VERSION, or --clear")
    if args.clear:
        return _change_role(args, lambda deployment, by: deployment.clear_shadow(by=by, why=args.reason))
    return _change_role(args, lambda deployment, by: deployment.set_shadow(args.version, by=by, why=args.reason))


def _retrain(args: argparse.Namespace) -> int:
    from nbaml.events import RetrainRequest, RetrainTrigger
    from nbaml.storage.queue import send_retrain_request

    target = resolve_target(args)
    request = RetrainRequest(trigger=RetrainTrigger.MANUAL, reason=args.reason, requested_by=_who(args), force=True)
    with acting_on(target) as settings:
        message_id = send_retrain_request(settings.retrain_queue_url, request)
        print(f"queued retrain request {request.request_id} (message {message_id}) on {target.where}")
        if not target.local:
            print("the retrain function's SQS event source delivers it; follow it in its logs")
            return 0
        if args.no_run:
            print("not run (--no-run): `nbaml retrain` without it drains the queue into the retrain handler")
            return 0
        # No SQS event source runs locally: deliver each queued record as Lambda's event source mapping would,
        # one record per invocation, deleting it only after the handler returned.
        extra = {"TRAIN_PROFILE": "quick"} if args.quick else {}
        failed = False
        results = runtime.deliver_queue(
            settings.retrain_queue_url,
            lambda event: runtime.invoke(target.stack, RETRAIN_FUNCTION, event, extra_env=extra),
            target.stack.env_for(RETRAIN_FUNCTION),
        )
        for result in results:
            for run in result.get("runs", []):
                failed = failed or run.get("status") == "failed"
                print(describe_run(run))
    return 1 if failed else 0


def describe_run(run: Mapping[str, Any]) -> str:
    """One retrain outcome as `nbaml retrain` prints it: status, version, scores, how it ran, where it was tracked."""
    metrics = run.get("metrics") or {}
    line = (
        f"retrain {run.get('request_id')}: {run.get('status')} {run.get('version') or ''} "
        f"accuracy {tables.cell(metrics.get('accuracy'))} "
        f"roc_auc {tables.cell(metrics.get('roc_auc'))}"
        + (f" ({'; '.join(run['reasons'])})" if run.get("reasons") else "")
    )
    if run.get("answered_from_record"):
        line += "\n  a redelivery: answered with the outcome recorded when the request first ran"
    elif run.get("resumed"):
        line += "\n  resumed the version an earlier delivery of this request trained (not trained again)"
    tracked = run.get("tracking") or {}
    if tracked.get("error"):
        line += f"\n  not tracked (the retrain's outcome stands): {tracked['error']}"
    elif tracked.get("run_id"):
        line += f"\n  tracked: MLflow run {tracked['run_id']} in experiment {tracked['experiment_id']}"
    return line


# ---------------------------------------------------------------- the parsers
def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aws", action="store_true", help="act on the AWS CloudFormation stack, not the local one")
    parser.add_argument("--stack-name", help="CloudFormation stack (default: samconfig.toml's for --stage)")
    parser.add_argument("--stage", default="dev", help="the template's Stage (picks the default stack name)")
    parser.add_argument("--by", help="who is acting, recorded in the registry (default: the OS user)")
    parser.add_argument("--state-dir", default=str(emu.STATE_DIR), help=argparse.SUPPRESS)


def register(subparsers: Any) -> None:
    models = subparsers.add_parser("models", help="the model registry (model_versions), the roles, the audit trail")
    models.add_argument("--json", action="store_true", help="print GET /models' document instead of the table")
    _common(models)
    models.set_defaults(func=_models)

    promote = subparsers.add_parser("promote", help="make a registered, verified version the champion")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why: recorded in the registry and the parameter history")
    _common(promote)
    promote.set_defaults(func=_promote)

    rollback = subparsers.add_parser(
        "rollback",
        help='serve an earlier version again ("previous" by default), checked; --raw is the unchecked write',
    )
    rollback.add_argument("version", nargs="?", default="previous", help='a version, or "previous"')
    rollback.add_argument("--reason", help="why (required unless --raw)")
    rollback.add_argument(
        "--raw",
        action="store_true",
        help="write the active parameter and nothing else once the version's bundle is committed: no checksum "
        "verification, no registry, no lock (infra/rollback.sh's fallback when the aws CLI is missing)",
    )
    rollback.add_argument(
        "--parameter", help="with --raw: the parameter to write, in the ambient AWS environment (as the aws CLI)"
    )
    _common(rollback)
    rollback.set_defaults(func=_rollback)

    canary = subparsers.add_parser(
        "canary",
        help="serve a version to a share of games (stable hash), --clear it, or move it on its ladder "
        "(--pause, --resume, --advance, --abort)",
    )
    canary.add_argument("version", nargs="?")
    canary.add_argument("--percent", type=int, help="share of games, 1-100")
    canary.add_argument("--clear", action="store_true", help="stop the canary")
    moves = canary.add_mutually_exclusive_group()
    moves.add_argument("--pause", action="store_true", help="stop the drift check's automatic steps and aborts")
    moves.add_argument("--resume", action="store_true", help="let the drift check step the canary again")
    moves.add_argument("--advance", action="store_true", help="move the canary one step now (the last promotes)")
    moves.add_argument("--abort", action="store_true", help="clear the canary and reject its version")
    canary.add_argument("--reason", required=True)
    _common(canary)
    canary.set_defaults(func=_canary)

    shadow = subparsers.add_parser("shadow", help="score a version on every request without returning it, or --clear")
    shadow.add_argument("version", nargs="?")
    shadow.add_argument("--clear", action="store_true", help="stop the shadow")
    shadow.add_argument("--reason", required=True)
    _common(shadow)
    shadow.set_defaults(func=_shadow)

    retrain = subparsers.add_parser(
        "retrain", help="queue a retrain request; locally also deliver it to the retrain handler"
    )
    retrain.add_argument("--reason", required=True)
    retrain.add_argument("--no-run", action="store_true", help="only queue the request")
    retrain.add_argument("--quick", action="store_true", help="locally: TRAIN_PROFILE=quick (a one-point grid)")
    _common(retrain)
    retrain.set_defaults(func=_retrain)
