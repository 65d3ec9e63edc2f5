"""Operator commands of ``nbaml``: the model registry, promote, rollback, canary, shadow, retrain.

Every role change goes through ``nbaml.deployment.Deployment``, the one implementation the admin API uses
too: the version must be registered and its bundle must verify before the SSM parameter is written, and the
registry records who, when and why. The only exception is ``rollback --raw``, the unchecked one-parameter
write behind ``infra/rollback.sh`` when the ``aws`` CLI is missing (break glass: a predict instance still
refuses a missing or tampered version and keeps its last good model).

Where the commands act:
- the local stack (``nbaml stack up``), with the predict function's environment from the template, so the
  names are the ones the running server reads;
- real AWS with ``--aws``, or when no local stack is deployed and ``AWS_ENDPOINT_URL`` is unset: the names
  come from the CloudFormation stack's outputs and parameters (``--stack-name``, by default the one
  samconfig.toml deploys for ``--stage``), matched to the template's environment variables by their ``Ref``.
  ``AWS_ENDPOINT_URL``, when set, still applies (LocalStack, a moto server).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from infra import InfraError, runtime
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
    """Where a command acts: the local stack (``stack`` set) or an AWS CloudFormation stack."""

    where: str
    env: dict[str, str]
    stack: stk.LocalStack | None = None


# ---------------------------------------------------------------- where the commands act
def _local_target(state_dir: Path) -> Target:
    stack = stk.LocalStack.load(state_dir)
    where = f"local stack {stack.stack_name} at {stack.endpoint}"
    return Target(where=where, env=stack.env_for("predict"), stack=stack)


def aws_environment(
    outputs: Mapping[str, str], parameters: Mapping[str, str], template: Mapping[str, Any]
) -> dict[str, str]:
    """The serving function's environment resolved from a deployed stack's outputs and parameters.

    Each variable the template declares as ``!Ref X`` takes the stack parameter X, or the output whose value
    is ``!Ref X``; plain strings are kept. Nothing is guessed from naming patterns, so a renamed resource
    stays found as long as the template exports it.
    """
    by_ref = {
        output["Value"]["Ref"]: name
        for name, output in (template.get("Outputs") or {}).items()
        if isinstance(output.get("Value"), dict) and "Ref" in output["Value"]
    }
    env: dict[str, str] = {}
    for variable, value in tpl.function_environment(template, SERVING_FUNCTION).items():
        if isinstance(value, str | int | float):
            env[variable] = str(value)
        elif isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            if ref in parameters:
                env[variable] = parameters[ref]
            elif ref in by_ref and by_ref[ref] in outputs:
                env[variable] = outputs[by_ref[ref]]
    return env


def _aws_target(stack_name: str) -> Target:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        described = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    except (ClientError, BotoCoreError) as exc:
        raise InfraError(f"cannot read CloudFormation stack {stack_name}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in described.get("Parameters", [])}
    env = aws_environment(outputs, parameters, tpl.load())
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return Target(where=f"AWS stack {stack_name}" + (f" at {endpoint}" if endpoint else ""), env=env)


def resolve_target(args: argparse.Namespace) -> Target:
    state_dir = Path(args.state_dir)
    if args.aws:
        return _aws_target(args.stack_name or tpl.stack_name_for(args.stage))
    if (state_dir / stk.STACK_FILE).exists():
        return _local_target(state_dir)
    if os.environ.get("AWS_ENDPOINT_URL"):
        raise InfraError(
            f"no local stack is deployed (run `nbaml stack up`), and AWS_ENDPOINT_URL is set to "
            f"{os.environ['AWS_ENDPOINT_URL']}: pass --aws to use the CloudFormation stack there"
        )
    return _aws_target(args.stack_name or tpl.stack_name_for(args.stage))


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
def _cell(value: Any, digits: int = 3) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


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
    rows = []
    for item in overview.get("versions", []):
        metrics = item.get("metrics") or {}
        rows.append(
            [
                str(item["version"]),
                _cell(_number(metrics.get("accuracy"))),
                _cell(_number(metrics.get("roc_auc"))),
                _cell(item.get("status")),
                _cell(item.get("deployed_at")),
                ", ".join(roles.get(str(item["version"]), [])) or "-",
            ]
        )
    parts = [
        f"active {overview.get('active')}   canary "
        + (f"{canary['version']} at {canary['percent']}%" if canary else "none")
        + f"   shadow {overview.get('shadow') or 'none'}",
        "",
        _table(["version", "accuracy", "roc_auc", "status", "deployed_at", "role"], rows)
        if rows
        else "no registered versions",
        "",
        "active parameter history (the audit trail):",
    ]
    history = overview.get("active_history", [])
    parts.append(
        _table(
            ["#", "value", "at", "why"],
            [[str(h["parameter_version"]), str(h["value"]), str(h["at"]), str(h.get("why") or "-")] for h in history],
        )
        if history
        else "  (no history)"
    )
    return "\n".join(parts)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _print_change(change: Any, target: Target) -> None:
    max_age = target.env.get("MODEL_PARAM_MAX_AGE_SECONDS", "?")
    print(f"{change.role}: {change.before} -> {change.after} by {change.by} ({change.why}) on {target.where}")
    print(f"every warm predict instance follows within MODEL_PARAM_MAX_AGE_SECONDS={max_age} s")


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


def _promote(args: argparse.Namespace) -> int:
    from nbaml.deployment import Deployment

    target = resolve_target(args)
    with acting_on(target) as settings:
        change = Deployment(settings).promote(args.version, by=_who(args), why=args.reason)
        _print_change(change, target)
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from nbaml.deployment import PREVIOUS, Deployment
    from nbaml.storage import parameters

    if args.raw:
        if args.version == PREVIOUS:
            raise InfraError('--raw writes one parameter and reads nothing: name a version, not "previous"')
        why = f"{_who(args)}: raw rollback to {args.version} (unchecked)" + (f": {args.reason}" if args.reason else "")
        if args.parameter:
            # rollback.sh's fallback: the same single write the aws CLI would make, to the same endpoint.
            version = parameters.write(args.parameter, args.version, why=why)
            print(f"wrote {args.parameter} = {args.version} (parameter version {version}; unchecked, no registry)")
            return 0
        target = resolve_target(args)
        with acting_on(target) as settings:
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
    target = resolve_target(args)
    with acting_on(target) as settings:
        change = Deployment(settings).rollback(args.version, by=_who(args), why=args.reason)
        _print_change(change, target)
    return 0


def _canary(args: argparse.Namespace) -> int:
    from nbaml.deployment import Deployment

    if args.clear == bool(args.version):
        raise InfraError("canary: give VERSION --percent N, or --clear")
    if args.version and args.percent is None:
        raise InfraError("canary: --percent N (1-100) is required with a version")
    target = resolve_target(args)
    with acting_on(target) as settings:
        deployment = Deployment(settings)
        if args.clear:
            change = deployment.clear_canary(by=_who(args), why=args.reason)
        else:
            change = deployment.set_canary(args.version, args.percent, by=_who(args), why=args.reason)
        _print_change(change, target)
    return 0


def _shadow(args: argparse.Namespace) -> int:
    from nbaml.deployment import Deployment

    if args.clear == bool(args.version):
        raise InfraError("shadow: give VERSION, or --clear")
    target = resolve_target(args)
    with acting_on(target) as settings:
        deployment = Deployment(settings)
        if args.clear:
            change = deployment.clear_shadow(by=_who(args), why=args.reason)
        else:
            change = deployment.set_shadow(args.version, by=_who(args), why=args.reason)
        _print_change(change, target)
    return 0


def _retrain(args: argparse.Namespace) -> int:
    from nbaml.events import RetrainRequest, RetrainTrigger
    from nbaml.storage.queue import send_retrain_request

    target = resolve_target(args)
    request = RetrainRequest(trigger=RetrainTrigger.MANUAL, reason=args.reason, requested_by=_who(args), force=True)
    with acting_on(target) as settings:
        message_id = send_retrain_request(settings.retrain_queue_url, request)
        print(f"queued retrain request {request.request_id} (message {message_id}) on {target.where}")
        if target.stack is None:
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
        )
        for result in results:
            for run in result.get("runs", []):
                failed = failed or run.get("status") == "failed"
                metrics = run.get("metrics") or {}
                print(
                    f"retrain {run.get('request_id')}: {run.get('status')} {run.get('version') or ''} "
                    f"accuracy {_cell(_number(metrics.get('accuracy')))} "
                    f"roc_auc {_cell(_number(metrics.get('roc_auc')))}"
                    + (f" ({'; '.join(run['reasons'])})" if run.get("reasons") else "")
                )
    return 1 if failed else 0


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
        help="write the active parameter and nothing else: no existence check, no verification, no registry "
        "(infra/rollback.sh's fallback when the aws CLI is missing)",
    )
    rollback.add_argument(
        "--parameter", help="with --raw: the parameter to write, in the ambient AWS environment (as the aws CLI)"
    )
    _common(rollback)
    rollback.set_defaults(func=_rollback)

    canary = subparsers.add_parser("canary", help="serve a version to a share of games (stable hash), or --clear")
    canary.add_argument("version", nargs="?")
    canary.add_argument("--percent", type=int, help="share of games, 1-100")
    canary.add_argument("--clear", action="store_true", help="stop the canary")
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
