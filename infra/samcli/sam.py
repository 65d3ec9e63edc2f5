"""The SAM CLI itself: ``sam build``, ``sam local invoke``, ``sam local start-lambda`` and ``start-api``.

Every call runs the real ``sam`` of ``.venv-sam`` on the built template (``environment.local_template``)
with the generated ``--env-vars`` file, on the project network, with the locally built base image
(``--invoke-image``, ``--skip-pull-image``) unless ``NBAML_LAMBDA_IMAGE=official``. SAM runs with a clean
environment: the emulator's test credentials and region, never the operator's AWS profile.

Each invocation yields the function's answer and the REPORT line the Runtime Interface Emulator printed
for it (duration, billed duration, memory size): what ``infra.samcli.cost`` prices.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess  # nosec B404
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import emulator as emu
from infra import template as tpl
from infra.emulator import REPO_ROOT
from infra.samcli import NETWORK, STATE_DIR, SamError, docker, engine, images, process

SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
_READY_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 60.0
REPORT = re.compile(
    r"REPORT RequestId: (?P<request_id>\S+)\s+(?:Init Duration: (?P<init>[\d.]+) ms\s+)?"
    r"Duration: (?P<duration>[\d.]+) ms\s+Billed Duration: (?P<billed>\d+) ms\s+"
    r"Memory Size: (?P<memory>\d+) MB\s+Max Memory Used: (?P<used>\d+) MB"
)


@dataclass(frozen=True)
class Report:
    """One REPORT line: what Lambda bills an invocation by."""

    function: str
    request_id: str
    duration_ms: float
    billed_ms: int
    memory_mb: int
    max_memory_mb: int
    init_ms: float | None = None

    @classmethod
    def parse(cls, function: str, line: str) -> Report | None:
        match = REPORT.search(line)
        if match is None:
            return None
        return cls(
            function=function,
            request_id=match["request_id"],
            duration_ms=float(match["duration"]),
            billed_ms=int(match["billed"]),
            memory_mb=int(match["memory"]),
            max_memory_mb=int(match["used"]),
            init_ms=float(match["init"]) if match["init"] else None,
        )


@dataclass
class Invocation:
    """A function's answer through SAM, its REPORT line, and the wall time the caller waited."""

    function: str
    result: Any
    report: Report | None
    seconds: float
    logs: str = ""

    @property
    def error(self) -> str | None:
        """The function's own error (an unhandled exception), as Lambda returns it."""
        if isinstance(self.result, dict) and "errorType" in self.result:
            return f"{self.result['errorType']}: {self.result.get('errorMessage', '')}"
        return None


class FunctionError(SamError):
    """A function raised inside its container (Lambda's FunctionError: Unhandled)."""


def sam_executable() -> Path:
    if not SAM.exists():
        raise SamError(f"{SAM} is missing: run `make venv` (aws-sam-cli lives in .venv-sam)")
    return SAM


def sam_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The SAM process's environment: this one without any AWS setting, plus the emulator's test credentials
    (SAM hands its own credentials to functions that declare none) and no telemetry."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAM_"))}
    return {
        **keep,
        **emu.LOCAL_CREDENTIALS,
        "AWS_DEFAULT_REGION": emu.LOCAL_REGION,
        "AWS_REGION": emu.LOCAL_REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAM_CLI_TELEMETRY": "0",
        **(extra or {}),
    }


def build(*, progress: Any = print) -> float:
    """``sam build`` of template.yaml with a python3.12 found on this machine (cached), then the request path's
    bytecode (``compile_bytecode``); returns the seconds of both."""
    python = images.find_python312()
    started = time.monotonic()
    env = sam_environment({"PATH": f"{python.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    template = REPO_ROOT / "template.yaml"
    done = process.run([sam_executable(), "build", "--template", template], env=env, cwd=REPO_ROOT, timeout=1800)
    output = (done.stdout + done.stderr).decode(errors="replace").splitlines()
    built = [line for line in output if line.startswith(("Build Succeeded", "Built Artifacts", "Built Template"))]
    compiled = compile_bytecode(python.executable)
    seconds = time.monotonic() - started
    progress(f"sam build with {python.executable}: {seconds:.1f} s; " + "; ".join(built))
    progress(f"bytecode for the request path, {', '.join(compiled)}")
    return seconds


def compile_bytecode(python: Path, build_dir: Path = BUILD_DIR) -> list[str]:
    """Write python3.12 bytecode into the built code and layers of the functions an HTTP caller waits on.

    ``sam build`` ships sources only, and Lambda's /var/task and /opt are read-only, so every cold start compiled
    every module it imported, again: the built predict function's imports and model load took 0.95 s under
    python3.12 without bytecode and 0.50 s with it (median of 5 on this machine, boto3 with its bytecode as the
    runtime has it). Hash-checked pycs (PEP 552):
    Python compares each with its source's hash, so a source changed without a rebuild is compiled as before,
    never served stale; timestamps (which zips round) play no part. Only the request path (the HTTP API's
    functions and authorizers, ``template.request_path_functions``): the scheduled functions run for seconds to
    minutes, and the ML layer's bytecode would take retrain past Lambda's 250 MB (it is at 230 MB).
    Returns the logical ids compiled.
    """
    built = tpl.load(build_dir / "template.yaml")
    ids: list[str] = []
    for function in tpl.request_path_functions(built):
        ids += [i for i in (function, *tpl.function_layers(built, function)) if i not in ids]
    code = tpl.code_dirs(built, build_dir)
    ids = [i for i in ids if i in code and code[i].is_dir()]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    args = ["-m", "compileall", "-q", "-f", "-j", "0", "--invalidation-mode", "checked-hash"]
    process.run([str(python), *args, *(str(code[i]) for i in ids)], env=env, cwd=REPO_ROOT, timeout=900)
    return ids


@dataclass
class SamLocal:
    """What every ``sam local`` command of the tier shares: template, env file, network, base image."""

    template: Path
    env_vars: Path
    network: str = NETWORK
    invoke_image: str | None = None  # None: SAM's default (the official image, pulled)

    @classmethod
    def for_environment(cls, template: Path, env_vars: Path, network: str = NETWORK) -> SamLocal:
        """The base image NBAML_LAMBDA_IMAGE picks: ours (built first with `make lambda-image`), AWS's, or one named."""
        setting = images.invoke_image_setting()
        if setting == images.OFFICIAL:
            image = None
        elif setting == images.OURS:
            image = images.require(images.plan().lambda_image, "lambda-image")
        else:
            image = setting
        return cls(template=template, env_vars=env_vars, network=network, invoke_image=image)

    def args(self) -> list[str]:
        args = ["--template", str(self.template), "--env-vars", str(self.env_vars), "--docker-network", self.network]
        args += ["--region", emu.LOCAL_REGION, "--container-host-interface", "127.0.0.1"]
        if self.invoke_image is not None:
            args += ["--invoke-image", self.invoke_image, "--skip-pull-image"]
        return args

    # ------------------------------------------------------------ sam local invoke
    def invoke(self, function: str, event: Any, *, timeout: float = 1200) -> Invocation:
        """``sam local invoke FUNCTION --event -``: a new container for this one call (a cold start)."""
        engine.guard()
        started = time.monotonic()
        done = process.run(
            [sam_executable(), "local", "invoke", function, "--event", "-", *self.args()],
            input=json.dumps(event).encode(),
            env=sam_environment(),
            cwd=REPO_ROOT,
            timeout=timeout,
            check=False,
        )
        seconds = time.monotonic() - started
        logs = done.stderr.decode(errors="replace")
        out = done.stdout.decode(errors="replace").strip()
        if done.returncode != 0 or not out:
            tail = " | ".join(logs.strip().splitlines()[-6:])
            raise SamError(f"sam local invoke {function} failed (exit {done.returncode}): {tail}")
        result = json.loads(out.splitlines()[-1])
        report = next((r for line in logs.splitlines() if (r := Report.parse(function, line))), None)
        return Invocation(function=function, result=result, report=report, seconds=seconds, logs=logs)


# ---------------------------------------------------------------- the servers
class _SamServer:
    """A ``sam local start-*`` process on 127.0.0.1, its output in a log file the REPORT lines are read from."""

    command = ""

    def __init__(self, local: SamLocal, *, port: int | None = None, warm: str = "EAGER", log_dir: Path = STATE_DIR):
        self.local = local
        self.port = port or emu.free_port()
        self.warm = warm
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{self.command}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _SamServer:
        if not emu.port_is_free(self.port):
            raise SamError(f"port {self.port} on 127.0.0.1 is in use: pick another")
        engine.guard()
        args = [sam_executable(), "local", self.command, *self.local.args(), "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--warm-containers", self.warm]
        with self.log_path.open("wb") as log:
            self.process = process.spawn(args, log=log, env=sam_environment(), cwd=REPO_ROOT)
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__()
            raise
        self._offset = self.log_path.stat().st_size
        return self

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise SamError(f"sam local {self.command} exited (code {self.process.returncode}): {self.tail()}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise SamError(f"sam local {self.command} did not serve on {self.url} within {_READY_TIMEOUT_S:.0f} s")
            time.sleep(0.5)

    def _ready(self) -> bool:
        # SAM listens only once every warm container (EAGER) has started.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def tail(self, lines: int = 8) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def new_output(self) -> str:
        """Whole lines SAM printed since the last call (the containers' logs and REPORT lines among them)."""
        with self._lock, self.log_path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
            self._offset += len(data)
            data, newline, self._partial = (self._partial + data).rpartition(b"\n")
        return (data + newline).decode(errors="replace")

    def wait_for_report(self, function: str, seen: io.StringIO, timeout: float = 10.0) -> Report | None:
        """The next REPORT line SAM prints (containers' logs reach SAM's output a little after the answer)."""
        deadline = time.monotonic() + timeout
        while True:
            seen.write(self.new_output())
            for line in seen.getvalue().splitlines():
                if report := Report.parse(function, line):
                    return report
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        """SIGINT to SAM's process group (SAM then stops its warm containers), harder signals if it hangs;
        then any container SAM left on the project network is removed by name."""
        if self.process is not None and self.process.poll() is None:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
                try:
                    self.process.wait(timeout=_STOP_TIMEOUT_S / 3)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        for name in docker.containers_on(self.local.network):
            if name != "nbaml-moto" and _started_by_sam(name):
                docker.remove_container(name)


def _started_by_sam(name: str) -> bool:
    labels = docker.inspect(name)["Config"].get("Labels") or {}
    return labels.get("sam.cli.container.type") == "lambda"


class LambdaServer(_SamServer):
    """``sam local start-lambda``: Lambda's Invoke API, each function in its warm container."""

    command = "start-lambda"

    def __enter__(self) -> LambdaServer:
        import boto3
        from botocore.config import Config

        super().__enter__()
        creds = emu.LOCAL_CREDENTIALS  # SAM's Invoke API checks no signature; the fake keys sign it
        session = boto3.session.Session(
            aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
            region_name=emu.LOCAL_REGION,
        )
        # One attempt, a read timeout past retrain's 900 s: a retried invoke would run a job twice.
        self._client = session.client(
            "lambda",
            endpoint_url=self.url,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=1000),
        )
        return self

    def invoke(self, function: str, event: Any) -> Invocation:
        seen = io.StringIO()
        self.new_output()  # what came before this call belongs to earlier ones
        started = time.monotonic()
        response = self._client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        seconds = time.monotonic() - started
        payload = response["Payload"].read().decode()
        result = json.loads(payload) if payload else None
        report = self.wait_for_report(function, seen)
        invocation = Invocation(function=function, result=result, report=report, seconds=seconds, logs=seen.getvalue())
        if response.get("FunctionError"):
            raise FunctionError(f"{function} raised in its container: {invocation.error or payload[:300]}")
        return invocation


class ApiServer(_SamServer):
    """``sam local start-api``: the HTTP API's routes and its Lambda authorizer, each function warm."""

    command = "start-api"

    def __enter__(self) -> ApiServer:
        super().__enter__()
        return self
