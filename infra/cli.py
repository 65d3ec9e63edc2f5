"""``nbaml``: the local stack's command line (``python -m infra`` is the same).

Each group of commands is a ``register(subparsers)`` function that adds its parsers and sets ``func``:
the stack, invoke and serve here, the others in ``COMMAND_MODULES`` (backfill, the operator tools, backup,
the replay). Errors nbaml and the local stack raise on purpose print one line and exit 2; anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infra import InfraError, mlflow_server, tables
from infra import emulator as emu
from infra import stack as stk
from infra import template as tpl

EXIT_ERROR = 2
Registrar = Callable[[Any], None]
# The other command groups, each a module with its own register(subparsers).
COMMAND_MODULES = (
    "infra.backfill",
    "infra.operator",
    "infra.backup",
    "infra.replay",
    "infra.samcli.cli",
    "infra.canary_cases",
)


def _key_values(pairs: Sequence[str] | None, what: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InfraError(f"{what} {pair!r} is not KEY=VALUE")
        values[key] = value
    return values


def _print_resources(stack: stk.LocalStack) -> None:
    rows = [(lid, stack.resource_types.get(lid, "?"), physical) for lid, physical in stack.resources.items()]
    print(tables.table(["logical id", "type", "physical id"], rows))


# ---------------------------------------------------------------- stack up / down / status, resources
def _stack_up(args: argparse.Namespace) -> int:
    parameters = {"Stage": args.stage, **_key_values(args.param, "--param")}
    template_path = Path(args.template)
    stk.lint(template_path, parameters)  # before starting anything: a broken template leaves no emulator behind
    info = emu.start(port=args.port)
    tracking_server = None
    try:
        if args.mlflow:
            tracking_server = mlflow_server.start(port=args.mlflow_port)
            parameters["TrackingUri"] = tracking_server.url  # the retrain function logs its runs there
        stack = stk.deploy(info.endpoint, template_path, parameters)
        # moto keeps nothing on disk: the state the last `stack down` saved comes back (unless --fresh).
        restored = None
        if not args.fresh:
            from infra.backup import restore_on_up

            restored = restore_on_up(stack)
    except BaseException:
        if tracking_server is not None:
            mlflow_server.stop()
        emu.stop()
        raise
    print(f"emulator  {info.endpoint} (pid {info.pid}, log {info.log_file})")
    if tracking_server is not None:
        _print_tracking_server(tracking_server, stack)
    print(f"stack     {stack.stack_name}: {len(stack.resources)} resources, deployed in {stack.deploy_seconds:.1f} s\n")
    _print_resources(stack)
    print(f"\nfilled or patched by hand (moto's CloudFormation skipped or ignored them): {len(stack.fills)}")
    for fill in stack.fills:
        print(f"  {fill.logical_id}: {fill.action}")
    if restored is not None:
        print(f"\nstate restored from the last `stack down`: {restored.summary()}")
        print(f"the admin token ({stack.admin_token_param}) is the restored one")
    elif stack.admin_token:
        print(f"\nadmin token ({stack.admin_token_param}), shown once: {stack.admin_token}")
    print("\nexport the local endpoint and credentials to use the stack from a shell:")
    print("  export " + " ".join(f"{k}={v}" for k, v in emu.local_aws_env(stack.endpoint).items()))
    return 0


def _print_tracking_server(server: mlflow_server.BackgroundTrackingServer, stack: stk.LocalStack) -> None:
    from nbaml.training.tracking import TrackingError, TrackingServer

    experiment = stack.env_for("retrain", lambda_runtime=False)["MLFLOW_EXPERIMENT_NAME"]
    try:  # created now, so its page exists before the first retrain logs to it
        page = server.experiment_url(TrackingServer(server.url).experiment_id(experiment))
    except TrackingError as exc:
        page = f"(experiment {experiment} not created: {exc})"
    print(f"mlflow    {server.url} (pid {server.pid}, store {server.backend_store_uri}, log {server.log_file})")
    print(f"          retrain runs of experiment {experiment}: {page}")


def _stack_down(args: argparse.Namespace) -> int:
    if not args.discard:
        from infra.backup import snapshot_on_down

        with contextlib.suppress(stk.StackError):
            folder = snapshot_on_down(stk.LocalStack.load())
            if folder:
                print(f"state saved to {folder} (the next `stack up` restores it; `stack up --fresh` does not)")
    tracking_server = mlflow_server.stop()
    if tracking_server is not None:
        print(f"mlflow server stopped (pid {tracking_server.pid}); its runs stay in {mlflow_server.data_dir()}")
    stopped = stk.teardown()
    print(f"emulator stopped (pid {stopped.pid})" if stopped else "no emulator was running")
    return 0


def _stack_status(args: argparse.Namespace) -> int:
    info = emu.status()
    if info is None:
        print("no emulator is running")
        return 1
    reachable = emu.is_reachable(info.endpoint)
    print(f"emulator  {info.endpoint} (pid {info.pid}) {'answering' if reachable else 'NOT answering'}")
    tracking_server = mlflow_server.status()
    if tracking_server is not None:
        answering = "answering" if mlflow_server.is_reachable(tracking_server.url) else "NOT answering"
        print(f"mlflow    {tracking_server.url} (pid {tracking_server.pid}) {answering}")
    try:
        stack = stk.LocalStack.load()
    except stk.StackError:
        print("stack     none deployed")
        return 1
    print(f"stack     {stack.stack_name} ({len(stack.resources)} resources, parameters {stack.parameters})")
    for name, value in stack.outputs.items():
        print(f"  {name} = {value}")
    return 0 if reachable else 1


def _resources(args: argparse.Namespace) -> int:
    _print_resources(stk.LocalStack.load())
    return 0


def register_stack(subparsers: Any) -> None:
    stack = subparsers.add_parser("stack", help="the local stack: moto on 127.0.0.1 with template.yaml deployed")
    actions = stack.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="start the emulator and deploy the template (the local `sam deploy`)")
    up.add_argument("--port", type=int, default=emu.DEFAULT_PORT)
    up.add_argument("--stage", default="dev", help="the template's Stage parameter")
    up.add_argument("--param", action="append", metavar="KEY=VALUE", help="another template parameter")
    up.add_argument("--template", default=str(tpl.DEFAULT_TEMPLATE))
    up.add_argument("--fresh", action="store_true", help="start empty: do not restore what the last `stack down` saved")
    up.add_argument(
        "--mlflow", action="store_true", help="also start an MLflow tracking server; the retrain function logs to it"
    )
    up.add_argument("--mlflow-port", type=int, default=mlflow_server.DEFAULT_PORT)
    up.set_defaults(func=_stack_up)
    down = actions.add_parser(
        "down", help="save the stack's state to models/backups/, then stop the emulator (and the MLflow server)"
    )
    down.add_argument("--discard", action="store_true", help="stop without saving the state")
    down.set_defaults(func=_stack_down)
    actions.add_parser("status", help="is the emulator up, what is deployed").set_defaults(func=_stack_status)
    subparsers.add_parser("resources", help="logical id -> type -> physical id").set_defaults(func=_resources)


# ---------------------------------------------------------------- invoke
def _invoke(args: argparse.Namespace) -> int:
    from infra.runtime import invoke

    stack = stk.LocalStack.load()
    try:
        event = json.loads(Path(args.event).read_text()) if args.event else {}
    except (OSError, ValueError) as exc:
        raise InfraError(f"cannot read event {args.event}: {exc}") from exc
    result = invoke(stack, args.function, event, extra_env=_key_values(args.env, "--env"))
    print(json.dumps(result, indent=2, default=str))
    return 0


def register_invoke(subparsers: Any) -> None:
    parser = subparsers.add_parser("invoke", help="run a function's handler in-process (the local `sam local invoke`)")
    parser.add_argument("function", help="logical id (CollectFunction) or short name (collect)")
    parser.add_argument("--event", "-e", help="JSON event file (see events/)")
    parser.add_argument("--env", action="append", metavar="KEY=VALUE", help="override an environment variable")
    parser.set_defaults(func=_invoke)


# ---------------------------------------------------------------- serve
def _serve(args: argparse.Namespace) -> int:
    import os

    stack = stk.LocalStack.load()
    api_functions = tpl.http_api_functions(tpl.load(stack.template_path))
    if not api_functions:
        raise InfraError("the template has no function with an HttpApi event to serve")
    env = stack.env_for(api_functions[0], lambda_runtime=False)
    import uvicorn

    os.environ.update(env)
    print(f"serving {api_functions[0]} on http://{emu.HOST}:{args.port} against {stack.endpoint}", flush=True)
    uvicorn.run("nbaml.serving.api:create_app", factory=True, host=emu.HOST, port=args.port, log_level="info")
    return 0


def register_serve(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="the prediction API on 127.0.0.1 (the local `sam local start-api`)")
    parser.add_argument("--port", type=int, default=3000)
    parser.set_defaults(func=_serve)


REGISTRARS: list[Registrar] = [register_stack, register_invoke, register_serve]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="nbaml", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(subparsers)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nbaml.errors import NbamlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InfraError, NbamlError) as exc:
        print(f"nbaml: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
