"""``nbaml sam ...``: the SAM tier's commands (the make targets call these).

nbaml sam engine up|down     dockerd --ip-masq=false and the egress guard (root), or undo it
nbaml sam image              build the Lambda base image and the emulator image (cached by their inputs)
nbaml sam python             the bin directory of the python3.12 `sam build` and the image use
nbaml sam build              sam build with that python3.12
nbaml sam up / down          the emulator container with the stack deployed, and the sam commands to run
nbaml sam replay             the season replay through start-lambda / start-api, and its monthly cost
"""

from __future__ import annotations

import argparse
import json
import shlex
from typing import Any

from infra import stack as stk
from infra.samcli import STATE_DIR, SamError, docker, engine, environment, images, sam
from infra.samcli import emulator as container
from infra.samcli import replay as sam_replay
from infra.samcli import stack as sam_stack

UP_FILE = STATE_DIR / "up.json"


def _engine(args: argparse.Namespace) -> int:
    if args.action == "up":
        state = engine.up()
        started = f"dockerd pid {state.pid} (log {state.log_file})" if state.pid else "an engine that already ran"
        print(f"engine: {started}; DROP in DOCKER-USER for {', '.join(state.uplinks)}")
    else:
        state = engine.down()
        print("engine: nothing recorded by `engine up`" if state is None else "engine: stopped what `up` started")
    return 0


def _image(args: argparse.Namespace) -> int:
    docker.require_engine()
    engine.guard()
    plan = images.plan()
    images.build_emulator_image(plan)
    print(f"invoke image: {plan.lambda_image}\nemulator image: {plan.emulator}")
    return 0


def _python(args: argparse.Namespace) -> int:
    print(images.find_python312().bin_dir)
    return 0


def _build(args: argparse.Namespace) -> int:
    sam.build()
    return 0


def _up(args: argparse.Namespace) -> int:
    """The emulator container and the deployed stack, left running for `sam local` commands typed by hand."""
    docker.require_engine()
    image = images.require(images.plan().emulator, "lambda-image")
    moto = container.start(image, port=args.port)
    try:
        stack = stk.deploy(moto.endpoint, parameters={"Stage": args.stage}, state_dir=STATE_DIR)
        environments = environment.function_environments(
            stack, moto.internal_endpoint, credentials=sam_stack.function_credentials(stack)
        )
        env_vars = environment.write_env_vars(STATE_DIR / f"env-vars.{moto.name}.json", environments)
        template = environment.local_template(sam.BUILT_TEMPLATE, environments)
        local = sam.SamLocal.for_environment(template, env_vars)
    except BaseException:
        container.stop(moto.name)
        raise
    UP_FILE.write_text(json.dumps({"container": moto.name, "port": moto.port}) + "\n")
    shared = " ".join(shlex.quote(a) for a in local.args())
    print(f"emulator  {moto.name} on {local.network}: {moto.endpoint} here, {moto.internal_endpoint} in containers")
    print(f"stack     {stack.stack_name}: {len(stack.resources)} resources; env file {env_vars}")
    if stack.admin_token:
        print(f"admin token ({stack.admin_token_param}), shown once: {stack.admin_token}")
    print("\nrun the built functions (from the repository root):")
    print(f"  .venv-sam/bin/sam local invoke CollectFunction --event events/collect-scheduled.json {shared}")
    print(f"  .venv-sam/bin/sam local start-api --warm-containers EAGER --port 3000 {shared}")
    print(
        f"\nthis shell reaches the same emulator with:\n  export AWS_ENDPOINT_URL={moto.endpoint} "
        "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1"
    )
    return 0


def _down(args: argparse.Namespace) -> int:
    if not UP_FILE.exists():
        print("nothing started by `nbaml sam up`")
        return 0
    info = json.loads(UP_FILE.read_text())
    container.stop(info["container"])
    if not docker.containers_on():
        docker.remove_network()
    UP_FILE.unlink()
    (STATE_DIR / stk.STACK_FILE).unlink(missing_ok=True)
    print(f"stopped {info['container']} (the stack lived in its memory)")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sam", help="the real SAM CLI in Docker: engine, images, build, stack, replay")
    commands = parser.add_subparsers(dest="sam_command", required=True)
    eng = commands.add_parser("engine", help="start dockerd --ip-masq=false with the egress guard (root), or stop it")
    eng.add_argument("action", choices=["up", "down"])
    eng.set_defaults(func=_engine)
    commands.add_parser("image", help="build the Lambda python3.12 base image and the emulator image").set_defaults(
        func=_image
    )
    commands.add_parser("python", help="print the bin directory of the python3.12 used").set_defaults(func=_python)
    commands.add_parser("build", help="sam build with a python3.12 of this machine").set_defaults(func=_build)
    up = commands.add_parser("up", help="the emulator container with template.yaml deployed, left running")
    up.add_argument("--port", type=int, default=5006, help="port on 127.0.0.1 (default 5006)")
    up.add_argument("--stage", default="dev")
    up.set_defaults(func=_up)
    commands.add_parser("down", help="stop what `sam up` started").set_defaults(func=_down)
    sam_replay.register(commands)


__all__ = ["SamError", "register"]
