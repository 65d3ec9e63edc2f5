"""The Docker engine as the tier uses it: is one there, images, the project network, containers by name."""

from __future__ import annotations

import json
from typing import Any

from infra.samcli import NETWORK, PREFIX, SamError, process

NO_ENGINE_HINT = "start one with `make engine-up` (as root: dockerd --ip-masq=false and the egress guard)"


def engine_problem() -> str | None:
    """Why no container can run here (one line), or None when a Docker engine answers."""
    try:
        process.tool("docker")
    except SamError as exc:
        return str(exc)
    done = process.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, timeout=20)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        return f"no Docker engine answers ({reason[0][:120]}): {NO_ENGINE_HINT}"
    return None


def require_engine() -> None:
    problem = engine_problem()
    if problem is not None:
        raise SamError(problem)


def docker(*args: str, check: bool = True, timeout: float | None = 600, input: bytes | None = None) -> str:
    """Run ``docker ARGS`` and return its stdout."""
    return process.text(["docker", *args], check=check, timeout=timeout, input=input)


def _ours(name: str) -> str:
    if not name.startswith(PREFIX):
        raise SamError(f"{name!r}: every container, network and image nbaml creates is named {PREFIX}...")
    return name


def image_exists(reference: str) -> bool:
    return process.run(["docker", "image", "inspect", reference], check=False, timeout=30).returncode == 0


def image_label(reference: str, label: str) -> str | None:
    out = docker("image", "inspect", "--format", "{{json .Config.Labels}}", reference)
    labels = json.loads(out or "null") or {}
    return labels.get(label)


def ensure_network(name: str = NETWORK) -> None:
    """The project's bridge network (containers on it reach each other by name); created once."""
    if process.run(["docker", "network", "inspect", name], check=False, timeout=30).returncode != 0:
        docker("network", "create", "--driver", "bridge", "--label", "nbaml=1", _ours(name))


def remove_network(name: str = NETWORK) -> None:
    """Remove the project's network; refused (SamError) while a container still uses it."""
    if process.run(["docker", "network", "inspect", name], check=False, timeout=30).returncode == 0:
        docker("network", "rm", _ours(name))


def containers_on(network: str = NETWORK) -> list[str]:
    """Names of the containers attached to ``network`` (ours and the ones SAM started there)."""
    out = docker("network", "inspect", "--format", "{{json .Containers}}", network, check=False)
    return sorted(entry["Name"] for entry in (json.loads(out or "null") or {}).values())


def remove_container(name: str) -> None:
    """Stop and remove container ``name`` if it exists (by name: never any other container)."""
    process.run(["docker", "rm", "--force", name], check=False, timeout=60)


def inspect(name: str) -> dict[str, Any]:
    out = docker("container", "inspect", name)
    return json.loads(out)[0]


def environment_of(name: str) -> dict[str, str]:
    """A container's environment as the engine holds it (what its processes start with)."""
    pairs = inspect(name)["Config"].get("Env") or []
    return dict(pair.split("=", 1) for pair in pairs)


def running(name: str) -> bool:
    done = process.run(["docker", "container", "inspect", "--format", "{{.State.Running}}", name], check=False)
    return done.returncode == 0 and done.stdout.decode().strip() == "true"


def logs(name: str, tail: int = 20) -> str:
    done = process.run(["docker", "logs", "--tail", str(tail), name], check=False, timeout=30)
    return (done.stdout + done.stderr).decode(errors="replace")
