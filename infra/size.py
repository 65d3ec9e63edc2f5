"""Lambda's 250 MB limit, checked on what ``sam build`` produced: each function's directory plus its layers'.

Run after ``sam build`` (``make size``). Layers come from the built template, so a function gets the
layers it will really be deployed with (Globals included). Fails, exit 1, when one is over the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from infra import template as tpl

LIMIT_MB = 250.0
MB = 1024 * 1024


def tree_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (symlinks not followed, as the zip stores them)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            file = Path(root) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def function_sizes(build_dir: Path) -> dict[str, dict[str, float]]:
    """For each function: its own MB, each layer's MB and the total, from ``build_dir``/template.yaml."""
    built = tpl.load(build_dir / "template.yaml")
    sizes: dict[str, dict[str, float]] = {}
    for logical_id in tpl.resources_of_type(built, tpl.FUNCTION):
        props = tpl.function_properties(built, logical_id)
        row = {logical_id: tree_bytes(build_dir / str(props.get("CodeUri", logical_id))) / MB}
        for layer_id in tpl.function_layers(built, logical_id):  # Globals' layers included
            layer = built["Resources"][layer_id]
            row[layer_id] = tree_bytes(build_dir / str(layer["Properties"]["ContentUri"])) / MB
        row["total"] = sum(row.values())
        sizes[logical_id] = row
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    args = parser.parse_args(argv)
    if not (args.build_dir / "template.yaml").exists():
        print(f"size: {args.build_dir}/template.yaml not found: run `make build` first", file=sys.stderr)
        return 2
    sizes = function_sizes(args.build_dir)
    print(f"{'function':<22} {'code MB':>8}  {'layers (MB)':<48} {'total MB':>9}  vs {args.limit_mb:.0f} MB")
    over = []
    for logical_id, row in sizes.items():
        layers = ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k not in (logical_id, "total"))
        verdict = "OK" if row["total"] <= args.limit_mb else "OVER"
        if verdict == "OVER":
            over.append(logical_id)
        print(f"{logical_id:<22} {row[logical_id]:>8.2f}  {layers:<48} {row['total']:>9.1f}  {verdict}")
    if over:
        print(f"size: over Lambda's {args.limit_mb:.0f} MB unzipped limit: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
