"""Every function's container points at the emulator, and no container reaches beyond this machine.

A function whose environment lacks AWS_ENDPOINT_URL would send its calls to AWS's public endpoints from its
container. SAM CLI drops an ``--env-vars`` value it has no declared variable for, so checking the file is
not enough: these tests read each running function container's environment from the engine.
"""

from __future__ import annotations

import json

import pytest

from infra import template as tpl
from infra.samcli import docker, images, sam
from infra.samcli.stack import SamStack

DIAL = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=4); print('connected')"


def test_given_the_env_file_then_every_function_of_the_template_has_the_emulator_and_its_own_key(
    sam_stack: SamStack,
) -> None:
    environments = json.loads(sam_stack.env_vars.read_text())
    functions = set(tpl.resources_of_type(tpl.load(sam.BUILT_TEMPLATE), tpl.FUNCTION))
    assert set(environments) == functions
    for function, env in environments.items():
        assert env["AWS_ENDPOINT_URL"] == sam_stack.emulator.internal_endpoint, function
        assert env["AWS_ACCESS_KEY_ID"] == f"nbaml-local-{function}"


def test_given_start_lambda_when_every_function_runs_warm_then_each_container_holds_the_emulator_endpoint(
    sam_stack: SamStack,
) -> None:
    # Given every function started in its warm container (EAGER)
    with sam.LambdaServer(sam_stack.local):
        names = [n for n in docker.containers_on(sam_stack.local.network) if n != sam_stack.emulator.name]
        containers = {}
        for name in names:
            labels = docker.inspect(name)["Config"].get("Labels") or {}
            if labels.get("sam.cli.container.type") == "lambda":
                containers[labels["sam.cli.function.name"]] = docker.environment_of(name)
    # Then there is one per function and each one's environment names the emulator and the function's own key
    assert set(containers) == set(sam_stack.stack.functions)
    for function, env in containers.items():
        assert env.get("AWS_ENDPOINT_URL") == sam_stack.emulator.internal_endpoint, f"{function}: {env}"
        assert env.get("AWS_ACCESS_KEY_ID") == f"nbaml-local-{function}"
        assert env.get("AWS_REGION") == "us-east-1"


@pytest.mark.parametrize(("host", "port"), [("1.1.1.1", 443), ("8.8.8.8", 53)])
def test_given_the_egress_guard_when_a_container_dials_out_then_nothing_leaves_but_the_emulator_answers(
    sam_stack: SamStack, sam_tier: images.ImagePlan, host: str, port: int
) -> None:
    run = ["run", "--rm", "--network", sam_stack.local.network, sam_tier.lambda_image, "/var/lang/bin/python3.12"]
    # When a container on the project network dials a public address, and the emulator by its name
    outside = docker.docker(*run, "-c", DIAL, host, str(port), check=False, timeout=60)
    inside = docker.docker(*run, "-c", DIAL, sam_stack.emulator.name, "5000", timeout=60)
    # Then only the emulator answers
    assert "connected" not in outside
    assert inside == "connected"
