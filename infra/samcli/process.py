"""Every program the SAM tier runs (docker, sam, debootstrap, iptables, ip) goes through ``run`` or ``spawn``.

Arguments are always a list (never a shell), and a program that is missing fails with one line saying how
to install it (the tier exists to run these programs: security/FINDINGS.md F-08).
"""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from infra.samcli import SamError

INSTALL_HINTS = {
    "docker": "apt-get install -y docker.io",
    "dockerd": "apt-get install -y docker.io",
    "debootstrap": "apt-get install -y debootstrap",
    "iptables": "apt-get install -y iptables",
    "ip": "apt-get install -y iproute2",
}


def tool(name: str) -> str:
    """The full path of program ``name``, or a SamError that says how to install it."""
    found = shutil.which(name)
    if found is None:
        hint = INSTALL_HINTS.get(name, f"install {name}")
        raise SamError(f"{name} is not on PATH: {hint}")
    return found


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input: bytes | None = None,
    stdin: IO[bytes] | None = None,
    timeout: float | None = 600,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` to completion; stdout and stderr are captured. ``check`` turns a failure into a SamError
    carrying the command and the tail of its stderr."""
    args = [str(a) for a in argv]
    args[0] = tool(args[0]) if os.sep not in args[0] else args[0]
    try:
        done = subprocess.run(  # noqa: S603  # nosec B603
            args,
            input=input,
            stdin=stdin,
            capture_output=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SamError(f"{' '.join(args[:4])} ... did not finish within {timeout:.0f} s") from exc
    if check and done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise SamError(f"{' '.join(args[:6])} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done


def text(argv: Sequence[str | Path], **kwargs: object) -> str:
    """``run`` and return stdout as text, stripped."""
    return run(argv, **kwargs).stdout.decode(errors="replace").strip()  # type: ignore[arg-type]


def spawn(
    argv: Sequence[str | Path], *, log: IO[bytes], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running program (dockerd, sam local start-*) in its own session, output to ``log``.

    Its own session, so stopping it by its process group stops its children too (SAM's threads and
    docker clients), and never anything else.
    """
    args = [str(a) for a in argv]
    args[0] = tool(args[0]) if os.sep not in args[0] else args[0]
    return subprocess.Popen(  # noqa: S603  # nosec B603
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
