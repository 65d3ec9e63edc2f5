"""What ``sam build`` (``make build``, ``infra.samcli.sam.build``) leaves for Lambda to run: bytecode on the request
path, checked against its sources by the runtime's own Python.

Lambda's /var/task and /opt are read-only, so a module shipped without bytecode is compiled again on every cold
start. The check runs in the python3.12 the build used (a pyc's magic number and source hash belong to one
Python version), over the built directories, not the sources.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404
from pathlib import Path

from infra import template as tpl
from infra.samcli import images, sam

# Run by python3.12: for every .py under each directory, whether a checked-hash pyc of this Python sits beside it
# and hashes its source as the import system will.
CHECK = """
import importlib.util, json, pathlib, sys
result = {}
for top in sys.argv[1:]:
    counts = {"sources": 0, "current": 0, "missing": [], "stale": []}
    for source in pathlib.Path(top).rglob("*.py"):
        counts["sources"] += 1
        cached = pathlib.Path(importlib.util.cache_from_source(str(source)))
        if not cached.exists():
            counts["missing"].append(str(source))
            continue
        header = cached.read_bytes()[:16]
        flags = int.from_bytes(header[4:8], "little")
        expected = importlib.util.source_hash(source.read_bytes())
        if header[:4] == importlib.util.MAGIC_NUMBER and flags == 0b11 and header[8:16] == expected:
            counts["current"] += 1
        else:
            counts["stale"].append(str(source))
    result[pathlib.Path(top).name] = counts
print(json.dumps(result))
"""


def _bytecode_of(dirs: list[Path]) -> dict[str, dict]:
    python = images.find_python312().executable
    done = subprocess.run(  # nosec B603 - our own script, on the build's directories
        [str(python), "-c", CHECK, *map(str, dirs)], capture_output=True, check=True, timeout=300
    )
    return json.loads(done.stdout)


def test_given_the_build_then_every_module_on_the_request_path_has_current_checked_bytecode() -> None:
    # Given what sam build wrote (the tier's session fixture builds first)
    built = tpl.load(sam.BUILT_TEMPLATE)
    request_path = tpl.request_path_functions(built)
    assert request_path == ["PredictFunction", "AuthorizerFunction"]
    layers = {layer for function in request_path for layer in tpl.function_layers(built, function)}
    # When the runtime's Python checks each module's pyc against its source
    found = _bytecode_of([sam.BUILD_DIR / name for name in [*request_path, *sorted(layers)]])
    # Then every one is there, checked-hash, and current: none is compiled at a cold start, none served stale
    for name, counts in found.items():
        assert counts["sources"] > 0, f"{name}: no sources"
        assert counts["missing"] == [], f"{name}: no bytecode for {counts['missing'][:3]}"
        assert counts["stale"] == [], f"{name}: bytecode of other sources for {counts['stale'][:3]}"
    assert {"NbamlLayer", "ApiLayer"} <= set(found)


def test_given_the_build_then_the_ml_layer_keeps_sources_only_and_retrain_stays_under_lambdas_limit() -> None:
    # Given the ML layer (only retrain uses it) and the size rule
    from infra.size import LIMIT_MB, function_sizes

    # When both are read
    found = _bytecode_of([sam.BUILD_DIR / "MlLayer"])["MlLayer"]
    sizes = function_sizes(sam.BUILD_DIR)
    # Then no pyc was added there, and every function, retrain included, is under 250 MB unzipped
    assert found["current"] == 0 and found["sources"] > 0
    assert all(row["total"] <= LIMIT_MB for row in sizes.values()), sizes
