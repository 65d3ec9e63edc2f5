"""The moto server that stands in for AWS: in-process for tests, a background process for the command line.

Fixed, fake credentials and moto's own account and region, so nothing here can ever reach a real account:
a local call that somehow escaped to AWS would be refused for its credentials. The background server's
pid and port live in ``.nbaml/emulator.json`` so ``stack down`` stops exactly the process ``stack up``
started, and never anything else.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from infra import InfraError

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".nbaml"
HOST = "127.0.0.1"
DEFAULT_PORT = 5005

# moto's default account; the region every local resource lives in.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
# What CloudFormation's pseudo parameters are in the emulator (AWS::StackName is each stack's own).
LOCAL_PSEUDO_PARAMETERS = {
    "AWS::AccountId": LOCAL_ACCOUNT_ID,
    "AWS::Region": LOCAL_REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
}

# moto attaches AWS managed policies (AWSLambdaBasicExecutionRole ...) only when it has loaded them; about
# 0.7 s once, on the first IAM call.
EMULATOR_ENV = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}

# The background server's module: moto's server, taught what AWS does first (infra.iam.teach_moto).
SERVER_MODULE = "infra.emulator"
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 10.0


class EmulatorError(InfraError):
    """The emulator could not be started, reached or stopped."""


# Credentials an emulator wants instead of the fake ones: an emulator that evaluates IAM (infra.iam) knows
# only the keys it issued, so the operator's own tools and tests use the operator role's.
_OPERATOR_CREDENTIALS: dict[str, dict[str, str]] = {}


def use_credentials(endpoint: str, credentials: dict[str, str] | None) -> None:
    """Sign every local client and environment for ``endpoint`` with ``credentials`` (None: the fake ones)."""
    if credentials is None:
        _OPERATOR_CREDENTIALS.pop(endpoint, None)
    else:
        _OPERATOR_CREDENTIALS[endpoint] = dict(credentials)


def credentials_for(endpoint: str) -> dict[str, str]:
    """The credentials the operator signs with at ``endpoint``: the fake ones unless IAM is evaluated there."""
    return _OPERATOR_CREDENTIALS.get(endpoint, LOCAL_CREDENTIALS)


def local_aws_env(endpoint: str) -> dict[str, str]:
    """The environment that points boto3 (ours and the handlers') at the emulator with the operator's credentials."""
    return {
        **credentials_for(endpoint),
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "AWS_REGION": LOCAL_REGION,
    }


@functools.cache
def _session(key_id: str, secret: str, token: str) -> boto3.session.Session:
    """One session per identity: botocore then loads each service model once (a deploy needs ~12)."""
    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token, region_name=LOCAL_REGION
    )


def client(service: str, endpoint: str) -> Any:
    """A boto3 client bound to ``endpoint`` explicitly, so the operator's own AWS profile never leaks in."""
    creds = credentials_for(endpoint)
    session = _session(creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"], creds["AWS_SESSION_TOKEN"])
    return session.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60),
    )


def endpoint_for(port: int) -> str:
    return f"http://{HOST}:{port}"


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it), for servers that tests start and stop."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def is_reachable(endpoint: str, timeout: float = 1.0) -> bool:
    """True when a moto server answers at ``endpoint`` (its config API is a cheap, moto-only probe)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/config", timeout=timeout) as response:  # noqa: S310
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait_until_reachable(endpoint: str, alive: Any) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if is_reachable(endpoint, timeout=0.5):
            return
        if not alive():
            raise EmulatorError(f"the moto server exited before answering at {endpoint}")
        time.sleep(0.1)
    raise EmulatorError(f"the moto server did not answer at {endpoint} within {_START_TIMEOUT_S:.0f} s")


LIVE: list[str] = []  # endpoints of the in-process emulators running now


def _reset(endpoint: str) -> None:
    """Empty moto's backends (its own /moto-api/reset); ``endpoint`` is always our loopback server."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


# ---------------------------------------------------------------- in-process (tests)
@contextlib.contextmanager
def in_process(port: int | None = None) -> Iterator[str]:
    """Run moto in a thread of this process for the duration of the block; yields its endpoint.

    Tests use this: nothing outlives the test session, and no pid file is touched.
    """
    import logging

    from moto.server import ThreadedMotoServer

    # The server shares our process: its request log and its "No Moto CloudFormation support" warnings
    # (the gaps infra.stack fills) would drown the output of the tests.
    quiet = {name: logging.getLogger(name) for name in ("werkzeug", "moto")}
    levels = {name: logger.level for name, logger in quiet.items()}
    for logger in quiet.values():
        logger.setLevel(logging.ERROR)
    # moto warns once per resource type its CloudFormation skips; infra.stack fills and reports each.
    warnings.filterwarnings("ignore", message="Tried to parse .* not supported by moto", category=UserWarning)
    from infra.iam import teach_moto

    saved = {key: os.environ.get(key) for key in EMULATOR_ENV}
    os.environ.update(EMULATOR_ENV)
    teach_moto()
    server = ThreadedMotoServer(ip_address=HOST, port=port or 0, verbose=False)
    server.start()  # returns once the socket listens; port 0 lets the OS pick a free one
    endpoint = endpoint_for(server.get_host_and_port()[1])
    try:
        # moto keeps its backends in module globals, shared by every server of this process. The first
        # in-process emulator starts empty and the last one leaves nothing behind ("stack nbaml-dev
        # already exists" otherwise); one started while another runs shares its state, so it must deploy
        # under another stack name (or run as a background process: `stack up`).
        if not LIVE:
            _reset(endpoint)
        LIVE.append(endpoint)
        yield endpoint
    finally:
        if endpoint in LIVE:
            LIVE.remove(endpoint)
        if not LIVE:
            with contextlib.suppress(OSError):
                _reset(endpoint)
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for name, logger in quiet.items():
            logger.setLevel(levels[name])


# ---------------------------------------------------------------- background process (command line)
@dataclass(frozen=True)
class BackgroundEmulator:
    """What ``.nbaml/emulator.json`` records about the server ``stack up`` started."""

    pid: int
    port: int
    endpoint: str
    started_at: float
    log_file: str

    @staticmethod
    def state_file(state_dir: Path = STATE_DIR) -> Path:
        return state_dir / "emulator.json"


def _pid_is_moto(pid: int) -> bool:
    """True when ``pid`` is alive and, where /proc can tell, is a moto server (a reused pid is not ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return SERVER_MODULE.encode() in cmdline.read_bytes()
        except OSError:
            return False
    return True


def reap(pid: int) -> bool:
    """Collect ``pid`` if it is our exited child; True once it is gone (a zombie still answers kill -0)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        done = 0
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 0)
            return False
        return True
    return done == pid


def status(state_dir: Path = STATE_DIR) -> BackgroundEmulator | None:
    """The running background emulator, or None; a pid file whose process is gone is removed as stale."""
    path = BackgroundEmulator.state_file(state_dir)
    if not path.exists():
        return None
    try:
        info = BackgroundEmulator(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise EmulatorError(f"{path} is unreadable ({exc}); delete it if no emulator runs") from exc
    if not _pid_is_moto(info.pid):
        path.unlink(missing_ok=True)
        return None
    return info


def start(port: int = DEFAULT_PORT, state_dir: Path = STATE_DIR) -> BackgroundEmulator:
    """Start moto's server (``python -m infra.emulator``) on 127.0.0.1:``port`` in the background; record its pid.

    Refuses a second server: two emulators would split the local stack between them.
    """
    running = status(state_dir)
    if running is not None:
        raise EmulatorError(
            f"an emulator already runs (pid {running.pid}, {running.endpoint}); run `nbaml stack down` first"
        )
    if not port_is_free(port):
        raise EmulatorError(f"port {port} on {HOST} is in use; pick another with --port")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_dir / "emulator.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", SERVER_MODULE, "-H", HOST, "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the shell that ran `stack up`, and its Ctrl-C
            env={**os.environ, **LOCAL_CREDENTIALS, **EMULATOR_ENV, "AWS_DEFAULT_REGION": LOCAL_REGION},
        )
    info = BackgroundEmulator(
        pid=process.pid, port=port, endpoint=endpoint_for(port), started_at=time.time(), log_file=str(log_file)
    )
    try:
        _wait_until_reachable(info.endpoint, alive=lambda: process.poll() is None)
    except EmulatorError as exc:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        raise EmulatorError(f"{exc}; log {log_file}: {' | '.join(tail)}") from exc
    BackgroundEmulator.state_file(state_dir).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def stop(state_dir: Path = STATE_DIR) -> BackgroundEmulator | None:
    """Stop the background emulator by its recorded pid and wait until it is gone; None if none ran."""
    info = status(state_dir)
    path = BackgroundEmulator.state_file(state_dir)
    if info is None:
        path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_TIMEOUT_S
    killed = False
    while not reap(info.pid):
        if time.monotonic() > deadline:
            if killed:
                raise EmulatorError(f"the emulator (pid {info.pid}) survived SIGKILL; {path} is kept")
            with contextlib.suppress(ProcessLookupError):
                os.kill(info.pid, signal.SIGKILL)
            killed, deadline = True, time.monotonic() + _STOP_TIMEOUT_S
        time.sleep(0.05)
    path.unlink(missing_ok=True)
    return info


if __name__ == "__main__":  # python -m infra.emulator -H 127.0.0.1 -p PORT: what `start` runs
    from moto.server import main

    from infra.iam import teach_moto

    teach_moto()
    main(sys.argv[1:])
