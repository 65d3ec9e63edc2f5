"""A deployed stack for SAM's containers: the emulator container, template.yaml in it, the env file, the template.

``deployed`` is to the SAM tier what ``infra.stack.deployed`` is to the in-process runtime, and uses it:
the same lint, translate, deploy and reconcile, only into moto running as ``nbaml-moto`` on the project
network. Each function gets its own access key (``function_credentials``): moto accepts any key for its
default account, and the key names the caller in every request the emulator records, so the cost model
can tell which function made which AWS call. Once the emulator evaluates IAM, a role's keys go there.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import emulator as emu
from infra import stack as stk
from infra.samcli import NETWORK, STATE_DIR, docker, environment, images, sam
from infra.samcli import emulator as container

# A path inside the emulator container (security/FINDINGS.md F-08).
RECORDING = "/tmp/moto-recording.jsonl"  # noqa: S108  # nosec B108


def function_credentials(stack: stk.LocalStack) -> dict[str, dict[str, str]]:
    """One access key per function (``nbaml-local-<LogicalId>``), the emulator's test secret for all."""
    return {
        logical_id: {**emu.LOCAL_CREDENTIALS, "AWS_ACCESS_KEY_ID": f"nbaml-local-{logical_id}"}
        for logical_id in stack.functions
    }


def caller_of(access_key_id: str) -> str | None:
    """The logical id a per-function access key belongs to, or None for anything else (this process)."""
    prefix = "nbaml-local-"
    return access_key_id[len(prefix) :] if access_key_id.startswith(prefix) else None


@dataclass
class SamStack:
    """Everything a ``sam local`` command needs against one deployed stack."""

    stack: stk.LocalStack
    emulator: container.EmulatorContainer
    env_vars: Path
    template: Path
    local: sam.SamLocal
    environments: dict[str, dict[str, str]]

    def host_environment(self) -> dict[str, str]:
        """How this process reaches the same emulator (the published port, the test credentials)."""
        return emu.local_aws_env(self.emulator.endpoint)

    # ------------------------------------------------------------ the emulator's request recording
    def start_recording(self) -> None:
        self._moto_api("recorder/reset-recording")
        self._moto_api("recorder/start-recording")

    def stop_recording(self) -> list[dict[str, Any]]:
        """Every request the emulator received since ``start_recording`` (method, URL, headers, body)."""
        self._moto_api("recorder/stop-recording")
        text = self._moto_api("recorder/download-recording", method="GET")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _moto_api(self, path: str, method: str = "POST") -> str:
        request = urllib.request.Request(f"{self.emulator.endpoint}/moto-api/{path}", method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310  # nosec B310
            return response.read().decode()


def refresh(target: SamStack, extra: Mapping[str, Mapping[str, str]]) -> None:
    """Rewrite the env file with ``extra`` settings (keyed by logical id) for the next SAM command."""
    target.environments = environment.function_environments(
        target.stack,
        target.emulator.internal_endpoint,
        credentials=function_credentials(target.stack),
        extra=extra,
    )
    environment.write_env_vars(target.env_vars, target.environments)
    target.template = environment.local_template(sam.BUILT_TEMPLATE, target.environments)
    target.local.template = target.template


@contextlib.contextmanager
def deployed(
    parameters: Mapping[str, str] | None = None,
    *,
    extra: Mapping[str, Mapping[str, str]] | None = None,
    name: str = container.CONTAINER,
    port: int | None = None,
    work_dir: Path = STATE_DIR,
    network: str = NETWORK,
) -> Iterator[SamStack]:
    """The emulator container with template.yaml deployed into it, and the env file and template SAM reads.

    ``extra`` adds settings per function (logical id) to its environment. The emulator container is removed
    after the block, and the network once nothing else uses it; images stay (cached by their inputs).
    """
    docker.require_engine()
    image = images.require(images.plan().emulator, "lambda-image")
    work_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        moto = container.start(image, port=port, network=network, name=name, recording=RECORDING)
        cleanup.callback(_remove_network_when_unused, network)
        cleanup.callback(container.stop, moto.name)
        stack = cleanup.enter_context(stk.deployed(parameters, endpoint=moto.endpoint))
        env_vars = work_dir / f"env-vars.{name}.json"
        target = SamStack(
            stack=stack,
            emulator=moto,
            env_vars=env_vars,
            template=sam.BUILT_TEMPLATE,
            local=sam.SamLocal.for_environment(sam.BUILT_TEMPLATE, env_vars, network),
            environments={},
        )
        refresh(target, extra or {})
        yield target


def _remove_network_when_unused(network: str) -> None:
    if not docker.containers_on(network):
        docker.remove_network(network)
