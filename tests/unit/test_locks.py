"""The locks: every layer, the runtime image, the emulator and the development environment install exact, hashed
versions, and a package two of them share has one version, so the container and the development environment
train and serve with the same libraries (issue 10, item 7). ``make lock`` writes them; these tests read them.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER_LOCKS = sorted(ROOT.glob("layers/*/requirements.txt"))
RUNTIME_LOCKS = [*LAYER_LOCKS, ROOT / "requirements/lambda-runtime.txt", ROOT / "requirements/emulator.txt"]
DEV_LOCK = ROOT / "requirements/dev.txt"
# The SAM CLI and Checkov have environments of their own (each pins what the others cannot share).
ALL_LOCKS = [*RUNTIME_LOCKS, DEV_LOCK, ROOT / "requirements/sam.txt", ROOT / "requirements/checkov.txt"]
# The runtime interface client and what only it needs run in the Lambda image alone, never in-process.
RUNTIME_CLIENT_ONLY = {"awslambdaric", "simplejson", "snapshot-restore-py"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, set[str]]:
    """Package -> the versions a lock pins (one, unless the resolution forked by Python version)."""
    found: dict[str, set[str]] = {}
    for line in lock.read_text().splitlines():
        if match := _PIN.match(line):
            found.setdefault(normalized(match[1]), set()).add(match[2])
    return found


def requirement_blocks(lock: Path) -> list[str]:
    """Each requirement with its continuation lines (the hashes), comments dropped."""
    blocks: list[str] = []
    for line in lock.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith(" ") and blocks:
            blocks[-1] += " " + line.strip()
        else:
            blocks.append(line.strip())
    return blocks


def declared(source: Path) -> set[str]:
    """Top-level names of a .in file (extras and version ranges dropped)."""
    names = set()
    for line in source.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(normalized(re.split(r"[\[<>=!~ ;]", line, maxsplit=1)[0]))
    return names


@pytest.mark.parametrize("lock", ALL_LOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_requirement_of_a_lock_is_an_exact_version_with_hashes(lock: Path) -> None:
    # Given a lock written by `make lock`; then each entry is name==version with at least one sha256
    blocks = requirement_blocks(lock)
    assert blocks, f"{lock} pins nothing"
    for block in blocks:
        assert _PIN.match(block), f"{lock.name}: {block[:80]!r} is not an exact pin"
        assert "--hash=sha256:" in block, f"{lock.name}: {block[:60]!r} has no hash"


@pytest.mark.parametrize(
    "source", sorted([*ROOT.glob("layers/*/requirements.in"), *ROOT.glob("requirements/*.in")]), ids=lambda p: p.name
)
def test_every_declared_package_is_in_its_lock(source: Path) -> None:
    # Given the ranges a person edits (.in); then its lock (.txt beside it) pins each of them
    locked = pins(source.with_suffix(".txt"))
    missing = declared(source) - set(locked)
    assert not missing, f"{source.with_suffix('.txt')} lacks {sorted(missing)}: run make lock"


def test_a_package_has_one_version_in_every_lock_it_appears_in() -> None:
    # Given the locks of what runs in a container and of the development environment (the tools have their own)
    versions: dict[str, dict[str, set[str]]] = {}
    for lock in [*RUNTIME_LOCKS, DEV_LOCK]:
        for name, pinned in pins(lock).items():
            versions.setdefault(name, {})[lock.relative_to(ROOT).as_posix()] = pinned
    # Then no package is pinned to two versions, within a lock or across locks
    split = {name: where for name, where in versions.items() if len({v for vs in where.values() for v in vs}) > 1}
    assert not split, f"packages pinned to different versions: {split}"


def test_the_development_environment_lock_holds_everything_a_container_runs() -> None:
    # Given the development lock; then every package of a layer, the runtime image and the emulator is in it
    dev = pins(DEV_LOCK)
    for lock in RUNTIME_LOCKS:
        missing = set(pins(lock)) - set(dev) - RUNTIME_CLIENT_ONLY
        assert not missing, f"{DEV_LOCK.name} lacks {sorted(missing)} of {lock.relative_to(ROOT)}"


def test_the_installed_environment_is_the_locked_one_for_every_layer_package() -> None:
    # Given this interpreter's environment (installed by make venv from requirements/dev.txt)
    stale = {}
    for lock in LAYER_LOCKS:
        for name, pinned in pins(lock).items():
            try:
                installed = metadata.version(name)
            except metadata.PackageNotFoundError:
                stale[name] = "missing"
                continue
            if installed not in pinned:
                stale[name] = f"{installed}, locked {sorted(pinned)}"
    # Then each package a layer ships has the layer's version here too (else the two runtimes could differ)
    assert not stale, f"the environment differs from the layer locks ({stale}): run make venv"
