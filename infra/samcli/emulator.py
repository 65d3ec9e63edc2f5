"""moto's server as the container ``nbaml-moto`` on the project network.

Functions in SAM's containers reach it by name (``http://nbaml-moto:5000``); this process, the deploy,
``infra/rollback.sh`` and the tests reach the same server through its port published on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from infra import emulator as emu
from infra.samcli import NETWORK, SamError, docker, engine
from infra.samcli.images import EMULATOR_PORT

CONTAINER = "nbaml-moto"
_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EmulatorContainer:
    name: str
    image: str
    port: int  # on 127.0.0.1

    @property
    def endpoint(self) -> str:
        """How this machine reaches it."""
        return emu.endpoint_for(self.port)

    @property
    def internal_endpoint(self) -> str:
        """How a container on the project network reaches it."""
        return f"http://{self.name}:{EMULATOR_PORT}"


def start(
    image: str, *, port: int | None = None, network: str = NETWORK, name: str = CONTAINER, recording: str | None = None
) -> EmulatorContainer:
    """Run moto's server on ``network``, published on 127.0.0.1:``port``; refuses a second one of that name.

    ``recording``: where, inside the container, moto's recorder writes the requests it is asked to record.
    """
    if docker.running(name):
        raise SamError(f"container {name} already runs: stop it with `nbaml sam down` (or `docker rm -f {name}`)")
    port = port or emu.free_port()
    if not emu.port_is_free(port):
        raise SamError(f"port {port} on 127.0.0.1 is in use: pick another with --port")
    engine.guard()
    docker.ensure_network(network)
    docker.remove_container(name)  # a stopped leftover of ours, by its name
    options = ["--env", f"MOTO_RECORDER_FILEPATH={recording}"] if recording else []
    docker.docker(
        "run", "--detach", "--name", name, "--network", network, "--label", "nbaml=1",
        "--publish", f"127.0.0.1:{port}:{EMULATOR_PORT}", *options, image,
    )  # fmt: skip
    container = EmulatorContainer(name=name, image=image, port=port)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not emu.is_reachable(container.endpoint, timeout=0.5):
        if not docker.running(name):
            raise SamError(f"{name} exited before answering: {docker.logs(name)[-300:]}")
        if time.monotonic() > deadline:
            raise SamError(f"{name} did not answer at {container.endpoint} within {_START_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    return container


def stop(name: str = CONTAINER) -> None:
    docker.remove_container(name)


@contextlib.contextmanager
def running(image: str, *, port: int | None = None, network: str = NETWORK) -> Iterator[EmulatorContainer]:
    """The emulator container for the block; removed after it (moto keeps its state in memory only)."""
    container = start(image, port=port, network=network)
    try:
        yield container
    finally:
        stop(container.name)
