"""Speed claims that were wall-clock assertions in unit tests, measured here beside their baselines.

Why: the unit tests run on shared, noisy machines, where a timing assertion fails for the load, not the code
(tests/README.md). The two claims they made are measured here, each next to a baseline run in the same process:

- the synthetic league generates five seasons (2019-2023) in well under a second; baseline: parsing the same
  number of real seasons from the shared games file (``../shared/data``), the other way to get five seasons of
  games, when it is beside the checkout;
- the pure-Python ``Forest`` scores one row of a serving-sized model (300 trees of depth 6, 20 features) in
  under 0.5 ms; baseline: xgboost's ``Booster.inplace_predict`` on the same row and model.

Each figure is the best of several runs (the least disturbed by other jobs). A missed target exits 1.
Run: ``.venv/bin/python bench/bench_units.py`` (needs the ``ml`` extra: numpy, xgboost).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xgboost as xgb

from nbaml.forest import Forest
from nbaml.games.feeds.generator import SyntheticLeague
from nbaml.games.feeds.history_file import load_games

SHARED_FILE = Path(__file__).resolve().parents[1].parent / "shared/data/nba_games_2009_2023.csv"
SEASONS = range(2019, 2024)
GENERATOR_TARGET_S = 1.0
FOREST_TARGET_S = 0.5e-3
RUNS = 5
CALLS = 200


def _best(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _five_generated_seasons() -> None:
    league = SyntheticLeague(seed=11)  # fresh: nothing cached
    for season in SEASONS:
        league.games(season)


def _forest_and_booster() -> tuple[Forest, xgb.Booster, list[float], np.ndarray]:
    rng = np.random.default_rng(15)
    x = rng.normal(size=(3000, 20))
    y = (x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3] + rng.normal(scale=0.7, size=3000) > 0).astype(int)
    model = xgb.XGBClassifier(
        n_estimators=300, max_depth=6, learning_rate=0.05, tree_method="hist", n_jobs=1, random_state=0
    ).fit(x, y)
    forest = Forest.from_json(bytes(model.get_booster().save_raw("json")))
    row = x[0].tolist()
    assert abs(forest.predict_proba(row) - float(model.predict_proba(x[:1])[0, 1])) < 1e-6, "Forest != xgboost"
    return forest, model.get_booster(), row, x[:1]


def main() -> int:
    print(f"machine: {platform.platform()} | cpus {os.cpu_count()} | load {os.getloadavg()[0]:.1f}")
    missed = []

    generated = _best(_five_generated_seasons)
    line = f"synthetic league, 5 seasons: {generated:.3f} s (target < {GENERATOR_TARGET_S} s)"
    if SHARED_FILE.exists():
        parsed = _best(lambda: load_games(SHARED_FILE), runs=2) * len(SEASONS) / 14  # the file holds 14 seasons
        line += f"; baseline, 5 real seasons parsed from the games file: {parsed:.3f} s ({generated / parsed:.2f}x)"
    print(line)
    if generated >= GENERATOR_TARGET_S:
        missed.append("generator")

    forest, booster, row, one_row = _forest_and_booster()
    ours = _best(lambda: [forest.predict_proba(row) for _ in range(CALLS)]) / CALLS
    theirs = _best(lambda: [booster.inplace_predict(one_row) for _ in range(CALLS)]) / CALLS
    print(
        f"Forest, one row, 300 trees of depth 6: {ours * 1e6:.1f} µs (target < {FOREST_TARGET_S * 1e6:.0f} µs); "
        f"baseline Booster.inplace_predict: {theirs * 1e6:.1f} µs ({ours / theirs:.2f}x)"
    )
    if ours >= FOREST_TARGET_S:
        missed.append("forest")
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
