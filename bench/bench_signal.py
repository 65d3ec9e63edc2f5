"""The ablation of the model's signal on real seasons: what each feature set and the calibrator earn.

Each row is one walk-forward: the retrain's own search (``nbaml.training.search.fit``, staged, time-ordered
folds) on every season before the evaluated ones, then every game of those seasons predicted once. Two
periods: the validation seasons 2019-20 and 2020-21 (trained on 2009-2018), where an addition must earn its
place, and the test seasons 2021-22 and 2022-23 (trained on 2009-2020), which chose nothing. Scores pooled
over each period's two seasons, with always-home and Elo on the same games.

    python bench/bench_signal.py [--games ../shared/data/nba_games_2009_2023.csv] [--json out.json]

Exits non-zero if the shipped feature set (all features, calibrated) does not beat Elo on both periods, or
misses ``make evaluate``'s calibration target (ECE <= 0.025) on the test seasons.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "layers" / "nbaml"))

import numpy as np  # noqa: E402

from nbaml.features import FEATURE_NAMES, SEED_FEATURES  # noqa: E402
from nbaml.games.feeds.history_file import HistoryFileFeed  # noqa: E402
from nbaml.metrics import always_home, elo_baseline, score  # noqa: E402
from nbaml.training.dataset import feature_table, select  # noqa: E402
from nbaml.training.search import TrainConfig, fit  # noqa: E402

SHARED = REPO_ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"
PERIODS = {"validation 2019-20, 2020-21": 2019, "test 2021-22, 2022-23": 2021}
TARGET_ECE = 0.025
SETS: list[tuple[str, tuple[str, ...], bool]] = [
    ("the seed's 19 (points relative to the league)", SEED_FEATURES, False),
    ("+ Elo", (*SEED_FEATURES, "elo_diff"), False),
    ("+ Elo + margin rating", FEATURE_NAMES, False),
    ("+ Elo + margin rating, calibrated (shipped)", FEATURE_NAMES, True),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", type=Path, default=SHARED)
    parser.add_argument("--json", type=Path, help="also write the table as JSON")
    args = parser.parse_args()
    if not args.games.exists():
        print(f"no games file at {args.games}: the ablation needs the shared real results", file=sys.stderr)
        return 2
    started = time.perf_counter()
    table = feature_table(HistoryFileFeed(args.games).load().games)
    y, seasons = np.asarray(table.labels), np.asarray(table.seasons)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}; {len(y)} games")
    rows: list[dict[str, object]] = []
    for period, first in PERIODS.items():
        train, test = seasons < first, (seasons >= first) & (seasons < first + 2)
        elo = elo_baseline(select(table, FEATURE_NAMES)[test], FEATURE_NAMES)
        for name, p in (("always home", always_home(y[train], int(test.sum()))), ("Elo alone", elo)):
            rows.append({"period": period, "model": name, **_scores(y[test], p)})
        for name, features, calibrate in SETS:
            X = select(table, features)
            fitted = fit(X[train], y[train], TrainConfig(calibrate=calibrate), features)
            row = {"period": period, "model": name, **_scores(y[test], fitted.predict_proba(X[test]))}
            kept = fitted.calibration
            unkept = "not kept" if calibrate else "off"
            row["calibrator"] = ("kept, Elo term" if kept.elo else "kept") if kept else unkept
            rows.append(row)
            print(f"  {period}: {name} ... {row['log_loss']:.4f}", file=sys.stderr, flush=True)
    print(_render(rows))
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return _verdict(rows)


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    s = score(y, p)
    return {"n": s.n, "log_loss": round(s.log_loss, 4), "accuracy": round(s.accuracy, 4), "ece": round(s.ece, 4)}


def _render(rows: list[dict[str, object]]) -> str:
    lines = [
        "| period | model | n | log-loss | accuracy | ECE | calibrator |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['period']} | {r['model']} | {r['n']} | {r['log_loss']:.4f} | {r['accuracy']:.1%} | "
            f"{r['ece']:.4f} | {r.get('calibrator', '')} |"
        )
    return "\n".join(lines)


def _verdict(rows: list[dict[str, object]]) -> int:
    failed = []
    for period in PERIODS:
        shipped = next(r for r in rows if r["period"] == period and "shipped" in str(r["model"]))
        elo = next(r for r in rows if r["period"] == period and r["model"] == "Elo alone")
        if not float(shipped["log_loss"]) < float(elo["log_loss"]):  # type: ignore[arg-type]
            failed.append(f"{period}: the shipped model does not beat Elo")
    test = next(r for r in rows if r["period"].startswith("test") and "shipped" in str(r["model"]))  # type: ignore[union-attr]
    if float(test["ece"]) > TARGET_ECE:  # type: ignore[arg-type]
        failed.append(f"test ECE {test['ece']} above {TARGET_ECE}")
    for line in failed:
        print(f"MISSED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
