"""The Docker engine for the SAM tier: started with no way out of this machine.

``up`` starts ``dockerd --ip-masq=false`` (no NAT: a container's packets cannot be rewritten to leave
through the host) unless an engine already answers, then inserts ``iptables -I DOCKER-USER -o <uplink>
-j DROP`` for every interface a default route leaves by, before any container runs. Containers then
reach only each other (the project network) and ports published on 127.0.0.1. ``down`` undoes exactly
what ``up`` did, by the pid and the rule it recorded. ``guard`` is what every container start calls:
no rule, no container.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from infra.samcli import STATE_DIR, SamError, docker, process

DOCKERD_ARGS = ("--ip-masq=false",)
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


@dataclass
class EngineState:
    """What ``up`` did, so ``down`` undoes only that (``.nbaml/sam/engine.json``)."""

    pid: int | None  # the dockerd we started, or None when one already ran
    uplinks: list[str]
    rules_added: list[str]
    log_file: str

    @staticmethod
    def path(state_dir: Path = STATE_DIR) -> Path:
        return state_dir / "engine.json"


def uplinks() -> list[str]:
    """The interfaces default routes leave by (``ip route``): where a packet would go to reach the internet."""
    found = default_route_devices(process.text(["ip", "-o", "route", "show", "default"]))
    if not found:
        raise SamError("`ip route` shows no default route: cannot tell which interface to block containers from")
    return found


def default_route_devices(routes: str) -> list[str]:
    """The ``dev`` of every ``default`` line of ``ip route`` output, sorted, each once."""
    found = set()
    for line in routes.splitlines():
        words = line.split()
        if words[:1] == ["default"] and "dev" in words and words.index("dev") + 1 < len(words):
            found.add(words[words.index("dev") + 1])
    return sorted(found)


def _rule(interface: str) -> list[str]:
    return ["DOCKER-USER", "-o", interface, "-j", "DROP"]


def _has_rule(interface: str) -> bool:
    return process.run(["iptables", "-C", *_rule(interface)], check=False, timeout=30).returncode == 0


def guard() -> list[str]:
    """Make sure every uplink has its DROP rule in DOCKER-USER; returns the rules it had to add.

    Called before any container starts. An engine we did not start gets the rule too; without root (no
    iptables) it refuses, because an unguarded container could reach AWS's public endpoints.
    """
    added = []
    for interface in uplinks():
        if _has_rule(interface):
            continue
        done = process.run(["iptables", "-I", *_rule(interface)], check=False, timeout=30)
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip()[:160]
            raise SamError(
                f"cannot insert `iptables -I DOCKER-USER -o {interface} -j DROP` ({reason}): containers would reach "
                "beyond this machine; run as root, or add the rule yourself"
            )
        added.append(interface)
    return added


def up(state_dir: Path = STATE_DIR) -> EngineState:
    """Start dockerd (unless one answers) and guard the uplinks; record what was done."""
    state_path = EngineState.path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_dir / "dockerd.log"
    pid = None
    if docker.engine_problem() is not None:
        if os.geteuid() != 0:
            raise SamError("dockerd must start as root: run `sudo make engine-up`, or start your engine yourself")
        with log_file.open("ab") as log:
            daemon = process.spawn(["dockerd", *DOCKERD_ARGS], log=log)
        pid = daemon.pid
        deadline = time.monotonic() + _START_TIMEOUT_S
        while docker.engine_problem() is not None:
            if daemon.poll() is not None:
                tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
                raise SamError(f"dockerd exited (code {daemon.returncode}); {log_file}: {' | '.join(tail)}")
            if time.monotonic() > deadline:
                _terminate(pid)
                raise SamError(f"dockerd did not answer within {_START_TIMEOUT_S:.0f} s; see {log_file}")
            time.sleep(0.5)
    previous = _load(state_path)
    added = guard()
    state = EngineState(
        pid=pid if pid is not None else (previous.pid if previous else None),
        uplinks=uplinks(),
        rules_added=sorted({*added, *(previous.rules_added if previous else [])}),
        log_file=str(log_file),
    )
    state_path.write_text(json.dumps(asdict(state), indent=2) + "\n")
    return state


def down(state_dir: Path = STATE_DIR) -> EngineState | None:
    """Stop the dockerd ``up`` started and remove the rules it inserted; an engine it found running stays."""
    state_path = EngineState.path(state_dir)
    state = _load(state_path)
    if state is None:
        return None
    if state.pid is not None:
        _terminate(state.pid)
    for interface in state.rules_added:
        if _has_rule(interface):
            process.run(["iptables", "-D", *_rule(interface)], check=False, timeout=30)
    state_path.unlink(missing_ok=True)
    return state


def _load(path: Path) -> EngineState | None:
    if not path.exists():
        return None
    try:
        return EngineState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise SamError(f"{path} is unreadable ({exc}); delete it once no dockerd of ours runs") from exc


def _is_dockerd(pid: int) -> bool:
    try:
        return b"dockerd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _terminate(pid: int) -> None:
    """SIGTERM the dockerd we started (it stops its containers and containerd), SIGKILL if it hangs."""
    if not _is_dockerd(pid):
        return  # gone already, or the pid was reused by something that is not ours
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    while _is_dockerd(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + _STOP_TIMEOUT_S
        time.sleep(0.2)
