"""Benchmark: a full-season replay on the embedded generator, target <= 3 minutes on this machine.

Prints where the time goes (setup, backfill, collect, predict, drift, retrain, report) and the machine.
Exit 1 if the target is missed.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from infra.replay import ReplayOptions, run

TARGET_S = 180.0


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(ReplayOptions(out_dir=Path(tmp), progress=False))
    total = time.perf_counter() - started
    print(
        f"\nmachine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"full-season replay: {result.days} days, {result.games_predicted} games, {len(result.retrains)} retrains")
    for phase, seconds in result.timings.items():
        print(f"  {phase:<9} {seconds:7.1f} s  {seconds / total:6.1%}")
    verdict = "OK" if total <= TARGET_S else "MISSED"
    print(f"  {'total':<9} {total:7.1f} s   target <= {TARGET_S:.0f} s: {verdict}")
    return 0 if total <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
