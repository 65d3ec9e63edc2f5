"""Drift-rule benchmark: how often each rule fires on real seasons where nothing changed, and how fast it sees a change.

Why (issue 6.1): the seed's rule compares the accuracy of the last 50 resolved predictions with the baseline and
calls a drop over 0.05 drift. On 50 games the standard error of an accuracy near 0.65 is about 0.067, so the rule
fires on noise. drift_check's default is a CUSUM on per-game log-loss instead (nbaml.monitoring.rules). This bench
measures both on the shared history, the way drift_check would have seen them:

- for each test season S, a model is trained on the seasons before S and its baseline (accuracy and log-loss) is
  taken on the newest 15 % of its training window, exactly as the retrain pipeline splits it (``time_split``);
- the model then serves all of season S unchanged, and every Monday (drift_check runs at 04:00 UTC, after the
  03:00 collect resolved the games up to Sunday) both rules look at the predictions resolved so far: the seed
  rule at the last 50, CUSUM at every one since the season start. A firing is a false alarm: nothing changed.
- detection: the same season with a change injected from the first Monday after its middle game: (1) ``swap``, a
  feed bug that swaps home and away in the features of 30 % of games; (2) ``dumb``, a deliberately degraded model
  (the same learner trained on shuffled labels, so it knows only the home-win rate) swapped in as the champion.
  The delay is the number of weekly checks after the change until the rule fires.

The model is a fixed-parameter fit (``search.refit`` with depth 2, 300 trees, learning rate 0.03, min_child_weight
10: the region the default staged search picks on this history) rather than the full search, so eleven seasons
take seconds; ``--search`` uses ``nbaml.training.search.fit`` with its default config instead (~9 s a season).

Two counts of false alarms: ``FA`` weeks (every Monday the rule is over its limit; a CUSUM once over stays over)
and ``req`` (retrain requests: after each firing the rule starts over, as it does for the new version a retrain
serves). ``--tune`` searches CUSUM's (allowance, threshold) on the seasons up to 2018: the fewest needless retrain
requests among the settings that detect every injected change with a mean delay of at most 3 weekly checks (a
slower rule adds little to the forced monthly retrain), ties to the smaller delay; the choice is then reported on
2019-2022, which chose nothing.

Run: ``.venv/bin/python bench/bench_drift_rules.py [--games ../shared/data/nba_games_2009_2023.csv] [--tune]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nbaml.features import FEATURE_NAMES, FeatureTable, build_features
from nbaml.games.feeds.history_file import load_games
from nbaml.metrics import accuracy, game_log_loss, log_loss, picks_home
from nbaml.monitoring import rules
from nbaml.training.dataset import time_split
from nbaml.training.search import TrainConfig, fit, refit

DEFAULT_GAMES = Path(__file__).resolve().parents[1].parent / "shared/data/nba_games_2009_2023.csv"
TEST_SEASONS = range(2012, 2023)
TUNE_UNTIL = 2018  # constants are chosen on seasons <= this one and reported on the later ones
# Seasons whose conditions really changed mid-season (so a firing there is not necessarily false):
ODD_SEASONS = {
    2019: "COVID suspension, then the neutral-court bubble (no home advantage) from July 2020",
    2020: "72 games from Dec 22, mostly empty arenas (home advantage down)",
}
FIXED_PARAMS = {"max_depth": 2, "n_estimators": 300, "learning_rate": 0.03, "min_child_weight": 10, "reg_lambda": 1.0}
SWAP_SHARE = 0.3
SEED_WINDOW, SEED_THRESHOLD = 50, 0.05
ALLOWANCES = (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08)
THRESHOLDS = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)
MAX_MEAN_DELAY = 3.0  # weekly checks


@dataclass
class SeasonRun:
    """One test season: its games in resolution order, the model's probabilities, and the scenarios."""

    season: int
    dates: list[dt.date]
    outcomes: list[bool]
    baseline_accuracy: float
    baseline_log_loss: float
    mondays: list[dt.date]
    change_monday: dt.date
    scenarios: dict[str, list[float]] = field(default_factory=dict)  # name -> probability per game

    def resolved_before(self, monday: dt.date) -> int:
        """Games drift_check sees on ``monday``: every game dated before it (collect ran at 03:00)."""
        return int(np.searchsorted(np.asarray([d.toordinal() for d in self.dates]), monday.toordinal()))


# ---------------------------------------------------------------- building the runs
def _subset(table: FeatureTable, mask: np.ndarray) -> FeatureTable:
    keep = np.flatnonzero(mask)
    return FeatureTable(
        game_ids=[table.game_ids[i] for i in keep],
        dates=[table.dates[i] for i in keep],
        seasons=[table.seasons[i] for i in keep],
        rows=[table.rows[i] for i in keep],
        labels=[table.labels[i] for i in keep],
    )


def swapped(rows: np.ndarray) -> np.ndarray:
    """The features with home and away exchanged: what a feed that mixes up the two sides would produce."""
    names = list(FEATURE_NAMES)
    out = rows.copy()
    for j, name in enumerate(names):
        if name.startswith("home_"):
            k = names.index("away_" + name[5:])
            out[:, j], out[:, k] = rows[:, k], rows[:, j]
    wins, losses = names.index("h2h_home_wins"), names.index("h2h_home_losses")
    out[:, wins], out[:, losses] = rows[:, losses], rows[:, wins]
    for name in ("h2h_avg_margin", "elo_diff"):
        out[:, names.index(name)] = -rows[:, names.index(name)]
    return out


def _mondays(first: dt.date, last: dt.date) -> list[dt.date]:
    monday = first + dt.timedelta(days=(7 - first.weekday()) % 7 or 7)
    days = []
    while monday <= last + dt.timedelta(days=7):
        days.append(monday)
        monday += dt.timedelta(days=7)
    return days


def build_run(table: FeatureTable, season: int, *, full_search: bool, rng: np.random.Generator) -> SeasonRun:
    seasons = np.asarray(table.seasons)
    train = _subset(table, seasons < season)
    test = _subset(table, seasons == season)
    split = time_split(train)  # the retrain pipeline's split: the newest 15 % (300-1230 games) is the holdout
    config = TrainConfig()
    if full_search:
        model = fit(split.X_train, split.y_train, config).pipeline
    else:
        model = refit(split.X_train, split.y_train, FIXED_PARAMS, config)
    p_holdout = model.predict_proba(split.X_holdout)[:, 1]
    y_holdout = split.y_holdout.astype(bool)
    baseline_accuracy = accuracy(y_holdout, p_holdout)
    baseline_log_loss = log_loss(y_holdout, p_holdout)

    X = np.asarray(test.rows, dtype=np.float64)
    outcomes = [bool(v) for v in test.labels]
    dates = list(test.dates)
    mondays = _mondays(dates[0], dates[-1])
    middle = dates[len(dates) // 2]
    change_monday = next(m for m in mondays if m >= middle)
    after = np.asarray([d >= change_monday for d in dates])

    p_none = model.predict_proba(X)[:, 1]
    p_swap = p_none.copy()
    chosen = after & (rng.random(len(dates)) < SWAP_SHARE)
    if chosen.any():
        p_swap[chosen] = model.predict_proba(swapped(X[chosen]))[:, 1]
    shuffled = rng.permutation(split.y_train)
    dumb = refit(split.X_train, shuffled, FIXED_PARAMS, config)
    p_dumb = np.where(after, dumb.predict_proba(X)[:, 1], p_none)
    return SeasonRun(
        season=season,
        dates=dates,
        outcomes=outcomes,
        baseline_accuracy=baseline_accuracy,
        baseline_log_loss=baseline_log_loss,
        mondays=mondays,
        change_monday=change_monday,
        scenarios={"none": p_none.tolist(), "swap": p_swap.tolist(), "dumb": p_dumb.tolist()},
    )


# ---------------------------------------------------------------- the weekly checks
def seed_fires(run: SeasonRun, scenario: str) -> list[bool]:
    """The seed rule on each Monday, through ``rules.seed_rule`` itself."""
    p = run.scenarios[scenario]
    correct = [picks_home(pi) == y for pi, y in zip(p, run.outcomes, strict=True)]
    return [
        rules.seed_rule(correct[: run.resolved_before(m)], run.baseline_accuracy, SEED_THRESHOLD, SEED_WINDOW).fired
        for m in run.mondays
    ]


def cusum_fires(run: SeasonRun, scenario: str, allowance: float, threshold: float) -> list[bool]:
    """CUSUM on each Monday, computed incrementally (one pass), equal to ``rules.cusum_rule`` on each prefix."""
    p = run.scenarios[scenario]
    losses = [game_log_loss(y, pi) for pi, y in zip(p, run.outcomes, strict=True)]
    fired, statistic, done = [], 0.0, 0
    for monday in run.mondays:
        n = run.resolved_before(monday)
        for loss in losses[done:n]:
            statistic = max(0.0, statistic + loss - run.baseline_log_loss - allowance)
        done = n
        fired.append(n >= 50 and statistic > threshold)
    return fired


def check_equivalence(run: SeasonRun) -> None:
    """The incremental CUSUM above must agree with the library's on every Monday (else the bench lies)."""
    pairs = list(zip(run.scenarios["none"], run.outcomes, strict=True))
    library = [rules.cusum_rule(pairs[: run.resolved_before(m)], run.baseline_log_loss).fired for m in run.mondays]
    mine = cusum_fires(run, "none", rules.CUSUM_ALLOWANCE, rules.CUSUM_THRESHOLD)
    if library != mine:
        raise AssertionError(f"season {run.season}: incremental CUSUM differs from rules.cusum_rule")


def delay(run: SeasonRun, fires: Sequence[bool]) -> int | None:
    """Weekly checks after the change until the first firing (None: not detected by the season's end)."""
    for monday, fired in zip(run.mondays, fires, strict=True):
        if monday > run.change_monday and fired:
            return (monday - run.change_monday).days // 7
    return None


def false_alarms(run: SeasonRun, fires: Sequence[bool]) -> int:
    return sum(fires)


def requests(run: SeasonRun, rule: Callable[[SeasonRun, int, int], bool]) -> int:
    """Retrain requests over the season when each firing restarts the rule on the games after it.

    ``rule(run, start)`` says whether the rule fires on the games from index ``start`` to the Monday's cut-off.
    """
    count, start = 0, 0
    for monday in run.mondays:
        end = run.resolved_before(monday)
        if end > start and rule(run, start, end):
            count += 1
            start = end
    return count


def seed_from(run: SeasonRun, start: int, end: int) -> bool:
    p, y = run.scenarios["none"][start:end], run.outcomes[start:end]
    correct = [picks_home(pi) == yi for pi, yi in zip(p, y, strict=True)]
    return rules.seed_rule(correct, run.baseline_accuracy, SEED_THRESHOLD, SEED_WINDOW).fired


def cusum_from(allowance: float, threshold: float) -> Callable[[SeasonRun, int, int], bool]:
    def fired(run: SeasonRun, start: int, end: int) -> bool:
        pairs = list(zip(run.scenarios["none"][start:end], run.outcomes[start:end], strict=True))
        return rules.cusum_rule(pairs, run.baseline_log_loss, allowance, threshold).fired

    return fired


# ---------------------------------------------------------------- reporting
def _fmt_delay(value: int | None) -> str:
    return "missed" if value is None else str(value)


def table(runs: list[SeasonRun], allowance: float, threshold: float, title: str) -> dict[str, float]:
    """Print one row per season and the totals; return the totals (for the tuning summary)."""
    print(f"\n{title}: seed rule (last {SEED_WINDOW}, drop > {SEED_THRESHOLD}) vs CUSUM (k={allowance}, h={threshold})")
    header = (
        f"{'season':<8}{'weeks':>6}{'base acc':>9}{'base ll':>9}{'live ll':>9}"
        f"{'seed FA':>8}{'req':>4}{'CUSUM FA':>9}{'req':>4}"
        f"{'seed d(swap)':>13}{'CUSUM d(swap)':>14}{'seed d(dumb)':>13}{'CUSUM d(dumb)':>14}"
    )
    print(header)
    print("-" * len(header))
    totals = {
        "weeks": 0,
        "seed_fa": 0,
        "cusum_fa": 0,
        "seed_fa_seasons": 0,
        "cusum_fa_seasons": 0,
        "seed_req": 0,
        "cusum_req": 0,
    }
    delays: dict[str, list[int | None]] = {"seed swap": [], "cusum swap": [], "seed dumb": [], "cusum dumb": []}
    for run in runs:
        seed_none = seed_fires(run, "none")
        cusum_none = cusum_fires(run, "none", allowance, threshold)
        live = log_loss(run.outcomes, run.scenarios["none"])
        row = {
            "seed swap": delay(run, seed_fires(run, "swap")),
            "cusum swap": delay(run, cusum_fires(run, "swap", allowance, threshold)),
            "seed dumb": delay(run, seed_fires(run, "dumb")),
            "cusum dumb": delay(run, cusum_fires(run, "dumb", allowance, threshold)),
        }
        for key, value in row.items():
            delays[key].append(value)
        flag = "*" if run.season in ODD_SEASONS else " "
        seed_req = requests(run, seed_from)
        cusum_req = requests(run, cusum_from(allowance, threshold))
        totals["seed_req"] += seed_req
        totals["cusum_req"] += cusum_req
        print(
            f"{run.season:<7}{flag}{len(run.mondays):>6}{run.baseline_accuracy:>9.3f}{run.baseline_log_loss:>9.4f}"
            f"{live:>9.4f}{false_alarms(run, seed_none):>8}{seed_req:>4}"
            f"{false_alarms(run, cusum_none):>9}{cusum_req:>4}"
            f"{_fmt_delay(row['seed swap']):>13}{_fmt_delay(row['cusum swap']):>14}"
            f"{_fmt_delay(row['seed dumb']):>13}{_fmt_delay(row['cusum dumb']):>14}"
        )
        totals["weeks"] += len(run.mondays)
        totals["seed_fa"] += false_alarms(run, seed_none)
        totals["cusum_fa"] += false_alarms(run, cusum_none)
        totals["seed_fa_seasons"] += int(any(seed_none))
        totals["cusum_fa_seasons"] += int(any(cusum_none))
    print("-" * len(header))
    summary = []
    for key, values in delays.items():
        found = [v for v in values if v is not None]
        mean = f"{np.mean(found):.1f}" if found else "-"
        summary.append(f"{key}: detected {len(found)}/{len(values)}, mean delay {mean} weeks")
    weeks = totals["weeks"]
    print(
        f"total   {weeks:>6} weeks; false-alarm weeks: seed {totals['seed_fa']} ({totals['seed_fa'] / weeks:.1%}, "
        f"{totals['seed_fa_seasons']} seasons), CUSUM {totals['cusum_fa']} ({totals['cusum_fa'] / weeks:.1%}, "
        f"{totals['cusum_fa_seasons']} seasons); needless retrain requests: seed {totals['seed_req']}, "
        f"CUSUM {totals['cusum_req']}"
    )
    print("        " + "; ".join(summary))
    odd = [r.season for r in runs if r.season in ODD_SEASONS]
    if odd:
        print("        * " + "; ".join(f"{s}: {ODD_SEASONS[s]}" for s in odd) + " (kept, but a firing may be true)")
    return {**totals, **{k: float(np.mean([v is not None for v in vals])) for k, vals in delays.items()}}


def tune(runs: list[SeasonRun]) -> tuple[float, float]:
    """The (allowance, threshold) with the fewest needless retrain requests that still sees every change in time.

    Requests, not firing weeks, are what a false alarm costs: each firing retrains, and the new version's rule
    starts over. "In time" is a mean delay of at most MAX_MEAN_DELAY weekly checks: a rule slower than that
    adds little to the forced monthly retrain.
    """
    changes = 2 * len(runs)
    print(
        f"\nCUSUM grid on seasons <= {TUNE_UNTIL}: needless retrain requests / changes detected (of {changes}) / "
        "mean delay in weeks"
    )
    best: tuple[int, float, float, float] | None = None
    for allowance in ALLOWANCES:
        cells = []
        for threshold in THRESHOLDS:
            needless = sum(requests(r, cusum_from(allowance, threshold)) for r in runs)
            found = [
                delay(r, cusum_fires(r, scenario, allowance, threshold)) for r in runs for scenario in ("swap", "dumb")
            ]
            hits = [d for d in found if d is not None]
            mean = float(np.mean(hits)) if hits else float("inf")
            cells.append(f"{needless:>3}/{len(hits):>2}/{mean:4.1f}")
            eligible = len(hits) == changes and mean <= MAX_MEAN_DELAY
            if eligible and (best is None or (needless, mean) < (best[0], best[3])):
                best = (needless, allowance, threshold, mean)
        print(f"  k={allowance:<5} " + "  ".join(f"h={h:<4}{c}" for h, c in zip(THRESHOLDS, cells, strict=True)))
    seed = sum(requests(r, seed_from) for r in runs)
    print(f"  the seed rule on the same seasons: {seed} needless retrain requests")
    if best is None:
        print(f"  no setting detects every change within {MAX_MEAN_DELAY} weeks on average: keeping the constants")
        return rules.CUSUM_ALLOWANCE, rules.CUSUM_THRESHOLD
    print(
        f"  chosen (fewest needless requests, every change detected, mean delay <= {MAX_MEAN_DELAY}): allowance "
        f"{best[1]}, threshold {best[2]} ({best[0]} requests, mean delay {best[3]:.1f} weeks on the tuning seasons)"
    )
    return best[1], best[2]


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), "")
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs {model}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", default=str(DEFAULT_GAMES), help="the games CSV (default: the shared history)")
    parser.add_argument("--search", action="store_true", help="train with search.fit's default staged search")
    parser.add_argument("--tune", action="store_true", help="tune CUSUM on seasons <= 2018, report on the rest")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injected changes")
    args = parser.parse_args(argv)
    path = Path(args.games)
    if not path.exists():
        print(f"no games file at {path}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    games = load_games(path).games
    table_ = build_features(games)
    built = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    runs = [build_run(table_, s, full_search=args.search, rng=rng) for s in TEST_SEASONS]
    for run in runs:
        check_equivalence(run)
    trained = time.perf_counter()
    how = "search.fit (default staged search)" if args.search else f"fixed-parameter XGBoost {FIXED_PARAMS}"
    print(f"machine: {machine()}")
    print(
        f"{len(games)} games, features in {built - started:.1f} s; {len(runs)} models ({how}) in "
        f"{trained - built:.1f} s. Changes injected from the first Monday after each season's middle game: "
        f"swap = home/away swapped in the features of {SWAP_SHARE:.0%} of games, dumb = a model trained on "
        "shuffled labels. FA = weeks fired with nothing changed; d = weekly checks from the change to detection."
    )
    table(runs, rules.CUSUM_ALLOWANCE, rules.CUSUM_THRESHOLD, "All test seasons, current constants")
    if args.tune:
        tuning = [r for r in runs if r.season <= TUNE_UNTIL]
        held_out = [r for r in runs if r.season > TUNE_UNTIL]
        allowance, threshold = tune(tuning)
        table(tuning, allowance, threshold, f"Tuning seasons (<= {TUNE_UNTIL}), chosen constants")
        table(held_out, allowance, threshold, f"Held-out seasons (> {TUNE_UNTIL}), chosen constants")
        table(held_out, rules.CUSUM_ALLOWANCE, rules.CUSUM_THRESHOLD, f"Held-out seasons (> {TUNE_UNTIL}), current")
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
