"""The local stack's MLflow tracking server: ``mlflow server`` on 127.0.0.1, its runs kept under ``.nbaml/mlflow/``.

The real server from the ``tracking`` extra (the full ``mlflow`` package), with a SQLite backend store
(``.nbaml/mlflow/mlflow.db``) and its artifact proxy writing to ``.nbaml/mlflow/artifacts/``: what the
retrain function logs to (``TrackingUri`` points it there) and what its UI shows. Unlike the emulator's
state, the runs are on disk and outlive the server: the next ``stack up --mlflow`` shows them again.

Started in its own session like the emulator (``infra.emulator``): its pid and URL live in
``.nbaml/mlflow.json``, so ``stack down`` stops exactly this server (its process group: the server and the
uvicorn worker it forks), never anything else. MLflow's background job runner (for GenAI features) is
switched off: it adds seven processes and nothing a training run uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess  # nosec B404 - our own interpreter, fixed arguments
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from infra import InfraError
from infra import emulator as emu

DEFAULT_PORT = 5500
SERVER_MARKER = b"mlflow"
_START_TIMEOUT_S = 90.0  # a first start creates and migrates the SQLite store (~20 s on this machine)
_STOP_TIMEOUT_S = 15.0
# Only what a training run needs: no GenAI job runner (huey consumers), one worker.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


class TrackingServerError(InfraError):
    """The MLflow server could not be started, reached or stopped."""


@dataclass(frozen=True)
class BackgroundTrackingServer:
    """What ``.nbaml/mlflow.json`` records about the server ``stack up --mlflow`` started."""

    pid: int
    port: int
    url: str
    started_at: float
    log_file: str
    backend_store_uri: str
    artifacts: str

    @staticmethod
    def state_file(state_dir: Path = emu.STATE_DIR) -> Path:
        return state_dir / "mlflow.json"

    def experiment_url(self, experiment_id: str) -> str:
        """The UI page listing an experiment's training runs."""
        return f"{self.url}/#/experiments/{experiment_id}/runs"


def data_dir(state_dir: Path = emu.STATE_DIR) -> Path:
    return state_dir / "mlflow"


def server_command(port: int, state_dir: Path = emu.STATE_DIR) -> list[str]:
    """``mlflow server`` with the stack's store and artifact folder, bound to 127.0.0.1 only."""
    data = data_dir(state_dir).resolve()
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        emu.HOST,
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{data / 'mlflow.db'}",
        "--artifacts-destination",
        str(data / "artifacts"),
        "--workers",
        "1",
    ]


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """True when an MLflow server answers its health check at ``url``."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310  # nosec B310
            return bool(response.status == 200 and response.read().strip() == b"OK")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _pid_is_ours(pid: int) -> bool:
    """True when ``pid`` is alive and, where /proc can tell, is an mlflow server (a reused pid is not ours)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return SERVER_MARKER in cmdline.read_bytes() if cmdline.exists() else True
    except OSError:
        return False


def status(state_dir: Path = emu.STATE_DIR) -> BackgroundTrackingServer | None:
    """The running server, or None; a pid file whose process is gone is removed as stale."""
    path = BackgroundTrackingServer.state_file(state_dir)
    if not path.exists():
        return None
    try:
        info = BackgroundTrackingServer(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise TrackingServerError(f"{path} is unreadable ({exc}); delete it if no MLflow server runs") from exc
    if not _pid_is_ours(info.pid):
        path.unlink(missing_ok=True)
        return None
    return info


def start(port: int = DEFAULT_PORT, state_dir: Path = emu.STATE_DIR) -> BackgroundTrackingServer:
    """Start ``mlflow server`` on 127.0.0.1:``port`` in the background and wait for its health check."""
    try:
        import mlflow  # noqa: F401 - only to fail early with the install command
    except ImportError:
        raise TrackingServerError(
            "the MLflow server needs the full mlflow package: pip install -e '.[tracking]' (make venv installs it)"
        ) from None
    running = status(state_dir)
    if running is not None:
        raise TrackingServerError(f"an MLflow server already runs (pid {running.pid}, {running.url})")
    if not emu.port_is_free(port):
        raise TrackingServerError(f"port {port} on {emu.HOST} is in use; pick another with --mlflow-port")
    data = data_dir(state_dir)
    (data / "artifacts").mkdir(parents=True, exist_ok=True)
    log_file = state_dir / "mlflow.log"
    command = server_command(port, state_dir)
    with log_file.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603  # nosec B603 - our own interpreter, fixed arguments
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=data,  # anything MLflow writes beside its store stays in the stack's folder
            start_new_session=True,
            env={**os.environ, **SERVER_ENV},
        )
    info = BackgroundTrackingServer(
        pid=process.pid,
        port=port,
        url=f"http://{emu.HOST}:{port}",
        started_at=time.time(),
        log_file=str(log_file),
        backend_store_uri=command[command.index("--backend-store-uri") + 1],
        artifacts=command[command.index("--artifacts-destination") + 1],
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not is_reachable(info.url, timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop_group(process.pid)
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            why = "exited" if process.poll() is not None else f"did not answer within {_START_TIMEOUT_S:.0f} s"
            raise TrackingServerError(f"the MLflow server {why} at {info.url}; log {log_file}: {' | '.join(tail)}")
        time.sleep(0.2)
    BackgroundTrackingServer.state_file(state_dir).write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def stop(state_dir: Path = emu.STATE_DIR) -> BackgroundTrackingServer | None:
    """Stop the server by its recorded pid (its process group) and wait until it is gone; None if none ran."""
    info = status(state_dir)
    path = BackgroundTrackingServer.state_file(state_dir)
    if info is None:
        path.unlink(missing_ok=True)
        return None
    _stop_group(info.pid)
    path.unlink(missing_ok=True)
    return info


def _stop_group(pid: int) -> None:
    """SIGTERM the session ``start`` created (the server and its worker), SIGKILL what outlives the wait."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if emu.reap(pid) and not _group_alive(pid):
                return
            time.sleep(0.1)
    raise TrackingServerError(f"the MLflow server (pid {pid}) survived SIGKILL")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def running(state_dir: Path, port: int | None = None) -> Iterator[BackgroundTrackingServer]:
    """A server for the block (tests, benchmarks), stopped after it; its runs stay in ``state_dir``."""
    info = start(port or emu.free_port(), state_dir)
    try:
        yield info
    finally:
        stop(state_dir)
