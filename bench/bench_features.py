"""Benchmark of the feature module on the real history: full rebuild and the daily incremental update.

Why: retrain rebuilds every feature from scratch and the daily collect job updates the stored state in
a Lambda; both must stay cheap as history grows. Targets: full build <= 0.3 s, one game day <= 20 ms.
Exits non-zero when a target is missed, so CI can run it. Run: `.venv/bin/python bench/bench_features.py`.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from nbaml.features import LeagueState, build_features, update_state
from nbaml.games.records import Game, GameStatus

SHARED_FILE = Path(__file__).resolve().parents[1].parent / "shared/data/nba_games_2009_2023.csv"
FULL_BUILD_TARGET_S = 0.3
DAY_TARGET_MS = 20.0


def load_games(path: Path) -> list[Game]:
    """Final games of the shared file: rows with missing or zero values skipped, repeats removed."""
    rows: dict[tuple[str, str, str], tuple[dt.date, str, str, int, int]] = {}
    skipped = 0
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            date, home, away = row["GAME_DATE"], row["home.TEAM_ABBREVIATION"], row["away.TEAM_ABBREVIATION"]
            try:
                day = dt.date.fromisoformat(date)
                home_pts, away_pts = int(float(row["home.PTS"])), int(float(row["away.PTS"]))
            except ValueError:
                skipped += 1
                continue
            if not home or not away or home_pts <= 0 or away_pts <= 0 or home_pts == away_pts:
                skipped += 1
                continue
            rows[(date, home, away)] = (day, home, away, home_pts, away_pts)
    print(f"loaded {len(rows)} games from {path.name} ({skipped} rows skipped as defects, repeats removed)")
    return [
        Game.create(game_date=d, home=h, away=a, status=GameStatus.FINAL, source="file", home_score=hs, away_score=aw)
        for d, h, a, hs, aw in rows.values()
    ]


def bench_full_build(games: list[Game], repeats: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        build_features(games)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_daily(games: list[Game]) -> tuple[float, float, int]:
    """Median time of one game day's update, and of the Lambda's whole round (load JSON, update, dump)."""
    days: dict[dt.date, list[Game]] = {}
    for g in games:
        days.setdefault(g.game_date, []).append(g)
    ordered = sorted(days.items())
    # Warm the state with the first half of history, then time every later day as the daily job would see it.
    half = len(ordered) // 2
    state = build_features(g for _, batch in ordered[:half] for g in batch).state
    assert state is not None
    update_times, round_times = [], []
    for i, (_, batch) in enumerate(ordered[half:]):
        if i % 10 == 0:  # the Lambda's round on every tenth day: stored JSON in, update, JSON out
            stored = json.dumps(state.to_dict())
            start = time.perf_counter()
            loaded = update_state(LeagueState.from_dict(json.loads(stored)), batch)
            json.dumps(loaded.to_dict())
            round_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        update_state(state, batch)
        update_times.append(time.perf_counter() - start)
    return statistics.median(update_times) * 1000, statistics.median(round_times) * 1000, len(update_times)


def main() -> int:
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"python {platform.python_version()} ({platform.python_implementation()})")
    if not SHARED_FILE.exists():
        print(f"shared history not found at {SHARED_FILE}: nothing to benchmark")
        return 2
    games = load_games(SHARED_FILE)
    best, median = bench_full_build(games)
    day_ms, round_ms, n_days = bench_daily(games)
    ok_build = best <= FULL_BUILD_TARGET_S
    ok_day = day_ms <= DAY_TARGET_MS
    print(f"full build of {len(games)} games: best of 5 {best:.3f} s, median {median:.3f} s")
    verdict = "OK" if ok_build else "MISSED"
    print(f"  target <= {FULL_BUILD_TARGET_S} s (best of 5): {best / FULL_BUILD_TARGET_S:.2f} of target -> {verdict}")
    print(f"daily update, median over {n_days} game days: {day_ms:.3f} ms")
    print(f"  target <= {DAY_TARGET_MS} ms: {day_ms / DAY_TARGET_MS:.3f} of target -> {'OK' if ok_day else 'MISSED'}")
    print(f"  (with the stored state's JSON load and dump around it: {round_ms:.3f} ms)")
    return 0 if ok_build and ok_day else 1


if __name__ == "__main__":
    sys.exit(main())
