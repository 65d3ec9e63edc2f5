"""The images the SAM tier runs, built here because no image registry is reachable.

Three images, each named by a digest of its inputs, so a build is skipped when nothing it is made of
changed and redone when anything did:

- ``nbaml-debian:bookworm-<key>``: ``debootstrap --variant=minbase bookworm`` with the shared libraries
  CPython links against, imported with ``tar | docker import``. Only Debian's packages.
- ``nbaml-lambda-python3.12:<key>``: that, plus a local CPython 3.12 (pyenv's here: its libpython carries
  an absolute RUNPATH, so it sits at the same path inside), ``awslambdaric`` and ``boto3`` from PyPI in
  ``/var/runtime`` as Lambda's runtime has them (``requirements/lambda-runtime.txt``), and a
  ``/var/runtime/bootstrap`` that sets Lambda's python3.12 search path and starts the runtime interface
  client. SAM takes it with ``--invoke-image`` and adds its Runtime Interface Emulator and the layers.
- ``nbaml-moto:<key>``: the Lambda image plus moto's server (``requirements/emulator.txt``) in
  ``/opt/moto``, started as ``python3.12 -m moto.server``.

Nothing is downloaded inside a container: Debian's packages come through debootstrap on the host, the
Python packages through the host's pip, and the result is copied in. No file of AWS's official image is
used. Which base image SAM runs is ``NBAML_LAMBDA_IMAGE``'s choice: unset (``auto``), SAM's default
(``public.ecr.aws/lambda/python:3.12``, pulled by SAM) where AWS's registry answers, and ours where it does
not (these machines); ``official`` or ``nbaml`` force one, any other value names an image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from infra.emulator import REPO_ROOT
from infra.samcli import SamError, docker, process

# Bump when the recipe below changes in a way its inputs do not show.
RECIPE = "3"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What pyenv's CPython 3.12 links against beyond minbase (ldd of python3.12 and lib-dynload/*.so, minus
# Tk and X11: tkinter is left out of the image, as it is out of Lambda's).
DEBIAN_PACKAGES = (
    "libbz2-1.0",
    "libexpat1",
    "libffi8",
    "libgdbm6",
    "liblzma5",
    "libncursesw6",
    "libnsl2",
    "libreadline8",
    "libsqlite3-0",
    "libssl3",
    "libtirpc3",
    "libuuid1",
    "zlib1g",
)
RUNTIME_LOCK = REPO_ROOT / "requirements" / "lambda-runtime.txt"
EMULATOR_LOCK = REPO_ROOT / "requirements" / "emulator.txt"
OFFICIAL = "official"
OURS = "nbaml"  # the image make lambda-image builds

# Lambda's python3.12 search path: the function, then its layers, then the runtime's own libraries last
# (from python3.12 on, a layer's boto3 wins over the runtime's).
BOOTSTRAP = """#!/bin/sh
# Lambda's python3.12 bootstrap, for nbaml's locally built image (infra/samcli/images.py): the Runtime
# Interface Emulator SAM adds runs this; awslambdaric talks to it over AWS_LAMBDA_RUNTIME_API.
export PYTHONPATH="${LAMBDA_TASK_ROOT:-/var/task}:/opt/python/lib/python3.12/site-packages:/opt/python:/var/runtime"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
"""
# The variables Lambda defines for every python3.12 function that an image must carry itself.
LAMBDA_ENV = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    # Lambda sets en_US.UTF-8; minbase has no locale data, and C.UTF-8 is the same encoding.
    "LANG": "C.UTF-8",
    "TZ": ":UTC",
}
EMULATOR_PORT = 5000
# moto listens on every interface of its container's own network namespace; the host publishes the port on
# 127.0.0.1 only (security/FINDINGS.md F-08).
CONTAINER_INTERFACES = "0.0.0.0"  # noqa: S104  # nosec B104
EMULATOR_COMMAND = [
    "/var/lang/bin/python3.12",
    "-m",
    "moto.server",
    "-H",
    CONTAINER_INTERFACES,
    "-p",
    str(EMULATOR_PORT),
]
EMULATOR_ENV = {"PYTHONPATH": "/opt/moto", "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "PYTHONUNBUFFERED": "1"}
# Parts of the interpreter's tree no Lambda function imports; site-packages is the host's, never the image's.
_PYTHON_SKIP = re.compile(
    r"^lib/python3\.12/(test|idlelib|tkinter|turtledemo|ensurepip|config-3\.12[^/]*|site-packages/.+)(/|$)"
    r"|^lib/python3\.12/lib-dynload/_tkinter\."
    r"|^(include|share|lib/pkgconfig)(/|$)"
    r"|^bin/(idle|pip|pydoc|2to3|python3\.12-config|python3-config)"
)

Progress = Callable[[str], None]


# ---------------------------------------------------------------- the local CPython 3.12
@dataclass(frozen=True)
class Python312:
    """A CPython 3.12 of this machine whose installation tree can be copied into an image."""

    executable: Path
    prefix: Path  # sys.base_prefix: the tree, at the same path inside the image
    version: str

    @property
    def bin_dir(self) -> Path:
        return self.executable.parent


def find_python312() -> Python312:
    """The first python3.12 that runs: on PATH, else under pyenv; a SamError says how to get one.

    A pyenv shim named python3.12 exists even when that version is not selected, so each candidate is run,
    not just found. ``sam build`` (``make build``) uses the same one.
    """
    candidates: list[str] = []
    if found := shutil.which("python3.12"):
        candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    with contextlib.suppress(OSError, SamError):
        pyenv_root = process.text(["pyenv", "root"], timeout=20) or pyenv_root
    candidates += sorted(str(p) for p in Path(pyenv_root).glob("versions/3.12*/bin/python3.12"))[::-1]
    probe = "import json, sys; print(json.dumps([sys.executable, sys.base_prefix, sys.version.split()[0]]))"
    for candidate in candidates:
        done = process.run([candidate, "-c", probe], check=False, timeout=30)
        if done.returncode == 0:
            executable, prefix, version = json.loads(done.stdout)
            if version.startswith("3.12."):
                return Python312(Path(executable), Path(prefix), version)
    raise SamError("no python3.12 runs here (the template's runtime): put one on PATH or `pyenv install 3.12`")


# ---------------------------------------------------------------- inputs and names
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _digest(parts: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def apt_mirror() -> str:
    """The Debian mirror apt on this machine uses (debootstrap fetches from the same), else Debian's CDN."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for path in sources:
        with contextlib.suppress(OSError):
            text = path.read_text()
            if match := re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(
                rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+{SUITE}\s", text, re.M
            ):
                return match[1]
    return DEFAULT_MIRROR


@dataclass(frozen=True)
class ImagePlan:
    """The three images as they would be built from this checkout on this machine."""

    python: Python312
    mirror: str

    @cached_property
    def debian_key(self) -> str:
        return _digest({"recipe": RECIPE, "suite": SUITE, "mirror": self.mirror, "packages": DEBIAN_PACKAGES})

    @cached_property
    def lambda_key(self) -> str:
        libpython = self.python.prefix / "lib" / "libpython3.12.so.1.0"
        return _digest(
            {
                "debian": self.debian_key,
                "python": [self.python.version, str(self.python.prefix), _sha256(self.python.executable)]
                + ([_sha256(libpython)] if libpython.exists() else []),
                "runtime": _sha256(RUNTIME_LOCK),
                "bootstrap": BOOTSTRAP,
                "env": LAMBDA_ENV,
                "left_out": _PYTHON_SKIP.pattern,
            }
        )

    @cached_property
    def emulator_key(self) -> str:
        return _digest(
            {
                "lambda": self.lambda_key,
                "emulator": _sha256(EMULATOR_LOCK),
                "env": EMULATOR_ENV,
                "cmd": EMULATOR_COMMAND,
            }
        )

    @property
    def debian(self) -> str:
        return f"nbaml-debian:{SUITE}-{self.debian_key[:12]}"

    @property
    def lambda_image(self) -> str:
        return f"nbaml-lambda-python3.12:{self.lambda_key[:12]}"

    @property
    def emulator(self) -> str:
        return f"nbaml-moto:{self.emulator_key[:12]}"


def plan() -> ImagePlan:
    return ImagePlan(python=find_python312(), mirror=apt_mirror())


OFFICIAL_REGISTRY = ("public.ecr.aws", 443)  # where SAM pulls public.ecr.aws/lambda/python:3.12 from


def registry_reachable(address: tuple[str, int] = OFFICIAL_REGISTRY, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to AWS's public registry opens within ``timeout`` (no name or no route: no).

    ``invoke_image_setting`` asks it once per process (``_official_registry_answers``): a network that
    resolves the name but drops the packets costs the timeout, which every ``sam local`` command would pay.
    """
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


@cache
def _official_registry_answers() -> bool:
    return registry_reachable()


def invoke_image_setting(reachable: Callable[[], bool] = _official_registry_answers) -> str:
    """``NBAML_LAMBDA_IMAGE``: ``official`` (SAM pulls AWS's), ``nbaml`` (ours), an image name, or ``auto``
    (unset): SAM's default where AWS's registry answers, ours where it does not."""
    setting = os.environ.get("NBAML_LAMBDA_IMAGE", "auto").strip() or "auto"
    if setting == "auto":
        return OFFICIAL if reachable() else OURS
    return setting


def require(reference: str, make_target: str) -> str:
    """``reference`` if the engine holds it, else a SamError naming the make target that builds it."""
    if not docker.image_exists(reference):
        raise SamError(f"image {reference} is missing: run `make {make_target}` (cached by its inputs)")
    return reference


# ---------------------------------------------------------------- building
def build_lambda_image(images: ImagePlan | None = None, *, progress: Progress = print) -> str:
    """The Lambda python3.12 base image, built unless an image of the same inputs exists; returns its name."""
    images = images or plan()
    if docker.image_exists(images.lambda_image):
        progress(f"{images.lambda_image}: up to date")
        return images.lambda_image
    base = _build_debian(images, progress)
    with _staging("lambda") as root:
        started = time.monotonic()
        _stage_python(images.python, root)
        progress(f"  CPython {images.python.version} from {images.python.prefix} ({time.monotonic() - started:.1f} s)")
        started = time.monotonic()
        _pip_install(images.python, RUNTIME_LOCK, root / "var" / "runtime")
        progress(f"  /var/runtime from {RUNTIME_LOCK.relative_to(REPO_ROOT)} ({time.monotonic() - started:.1f} s)")
        bootstrap = root / "var" / "runtime" / "bootstrap"
        bootstrap.write_text(BOOTSTRAP)
        bootstrap.chmod(0o755)
        (root / "var" / "task").mkdir(parents=True)
        (root / "opt").mkdir()
        changes = [f"ENV {k}={v}" for k, v in LAMBDA_ENV.items()] + ["WORKDIR /var/task"]
        _commit_on_top(base, root, images.lambda_image, changes, images.lambda_key, progress)
    return images.lambda_image


def build_emulator_image(images: ImagePlan | None = None, *, progress: Progress = print) -> str:
    """moto's server on top of the Lambda image (same CPython, same libraries), built unless it exists."""
    images = images or plan()
    if docker.image_exists(images.emulator):
        progress(f"{images.emulator}: up to date")
        return images.emulator
    base = build_lambda_image(images, progress=progress)
    with _staging("moto") as root:
        started = time.monotonic()
        _pip_install(images.python, EMULATOR_LOCK, root / "opt" / "moto")
        progress(f"  /opt/moto from {EMULATOR_LOCK.relative_to(REPO_ROOT)} ({time.monotonic() - started:.1f} s)")
        command = [
            "/var/lang/bin/python3.12",
            "-m",
            "moto.server",
            "-H",
            CONTAINER_INTERFACES,
            "-p",
            str(EMULATOR_PORT),
        ]
        changes = [f"ENV {k}={v}" for k, v in EMULATOR_ENV.items()]
        changes += ["WORKDIR /", f"EXPOSE {EMULATOR_PORT}", f"CMD {json.dumps(command)}"]
        _commit_on_top(base, root, images.emulator, changes, images.emulator_key, progress)
    return images.emulator


def _build_debian(images: ImagePlan, progress: Progress) -> str:
    if docker.image_exists(images.debian):
        return images.debian
    if os.geteuid() != 0:
        raise SamError("debootstrap needs root: run `sudo make lambda-image`")
    started = time.monotonic()
    progress(f"  debootstrap --variant=minbase {SUITE} from {images.mirror} (about a minute) ...")
    with _staging("debian") as root:
        rootfs = root / "rootfs"
        process.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                SUITE,
                rootfs,
                images.mirror,
            ],
            timeout=1200,
        )
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        archive = root / "rootfs.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        with archive.open("rb") as stream:
            process.run(
                ["docker", "import", "--change", 'CMD ["/bin/bash"]', "-", images.debian], stdin=stream, timeout=600
            )
    progress(f"  {images.debian} ({time.monotonic() - started:.0f} s)")
    return images.debian


def _stage_python(python: Python312, root: Path) -> None:
    """Copy the interpreter's tree to the same path under ``root``, and Lambda's /var/lang/bin links to it."""
    target = root / python.prefix.relative_to("/")
    for path in sorted(python.prefix.rglob("*")):
        relative = path.relative_to(python.prefix).as_posix()
        if _PYTHON_SKIP.search(relative):
            continue
        destination = target / relative
        if path.is_symlink():
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.symlink_to(os.readlink(path))
        elif path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
    (target / "lib" / "python3.12" / "site-packages").mkdir(parents=True, exist_ok=True)
    lang_bin = root / "var" / "lang" / "bin"
    lang_bin.mkdir(parents=True)
    for name in ("python3.12", "python3", "python"):
        (lang_bin / name).symlink_to(python.prefix / "bin" / "python3.12")


def _pip_install(python: Python312, lock: Path, target: Path) -> None:
    """``pip install --target`` with the host's python3.12: exactly the lock's versions, checked by hash."""
    target.mkdir(parents=True, exist_ok=True)
    pip = [python.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    process.run(
        [*pip, "--no-warn-script-location", "--require-hashes", "--no-deps", "--target", target, "-r", lock],
        timeout=1200,
    )


def _commit_on_top(base: str, root: Path, reference: str, changes: list[str], key: str, progress: Progress) -> None:
    """``root``'s files copied onto ``base`` in a stopped container, committed as ``reference``."""
    started = time.monotonic()
    builder = f"nbaml-image-build-{key[:12]}"
    docker.remove_container(builder)
    docker.docker("create", "--name", builder, "--network", "none", base, "/bin/true")
    try:
        archive = root.parent / f"{root.name}.tar"
        with tarfile.open(archive, "w") as tar:
            for entry in sorted(root.iterdir()):
                tar.add(entry, arcname=entry.name)
        with archive.open("rb") as stream:
            process.run(["docker", "cp", "-", f"{builder}:/"], stdin=stream, timeout=600)
        args = ["commit"]
        for change in [*changes, f"LABEL nbaml.inputs={key}"]:
            args += ["--change", change]
        docker.docker(*args, builder, reference)
    finally:
        docker.remove_container(builder)
    size = int(docker.docker("image", "inspect", "--format", "{{.Size}}", reference)) / 1e6
    progress(f"{reference}: built ({size:.0f} MB, {time.monotonic() - started:.0f} s to commit)")


@contextlib.contextmanager
def _staging(what: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"nbaml-{what}-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        yield root
