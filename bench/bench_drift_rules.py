"""Drift-rule benchmark: how often each rule asks for a retrain on real seasons where nothing changed, and how
fast it sees a change, counted as drift_check behaves.

The rules are ``nbaml.monitoring.rules``: the seed's (accuracy of the last 50 more than 0.05 below the
baseline) and the default sequential rule (CUSUMs on observed minus expected log-loss, and on the model's
expected log-loss against its own recent level). This bench measures both on the shared history:

- for each test season S, a model is trained the way the retrain pipeline trains it (``time_split``: the
  newest 15 % of the seasons before S is the holdout; Platt calibration kept only where it helps), with
  fixed hyperparameters (depth 2, 300 trees, learning rate 0.03, min_child_weight 10: the region the staged
  search picks on this history) so eleven seasons take seconds; ``--search`` runs the full search instead;
- the model then serves all of season S unchanged, and every Monday (drift_check runs at 04:00 UTC, after
  the 03:00 collect resolved the games up to Sunday) each rule looks at the games resolved since its
  evidence last restarted. A firing is a retrain request; drift_check then restarts the evidence after the
  newest game it used (``rules`` module docstring), so here too. With nothing changed every request is
  needless: ``req`` counts them.
- detection: the same season with a change injected from the first Monday after its middle game: ``swap``,
  a feed bug that swaps home and away for 30 % of games (served the features the swapped matchup gets,
  ``drift_scenarios.swapped_rows``); ``dumb``, the served model replaced
  by the same learner trained on shuffled labels (it knows only the home-win rate), the same version to
  drift_check (a broken serving state, not a new release: a new release is the gates' job). ``d`` is the
  number of weekly checks after the change until the rule fires (earlier needless restarts included).

``--tune`` searches the sequential rule's constants on the seasons up to 2018: first the settings within
the target's needless-request budget (15 in 291 weekly checks, scaled to the tuning weeks), then the most
changes caught within 3 weekly checks, then the fewest needless requests, then the smaller mean delay. The
choice is reported on 2019-2022, which chose nothing, and the run fails if it differs from the constants
``rules`` ships (so the code's constants are the ones this benchmark picks). The search uses a vectorised
twin of ``rules.sequential_statistics``; the tables call the library itself, and the twin is checked
against it on every Monday of every scenario.

Run: ``.venv/bin/python bench/bench_drift_rules.py [--games ../shared/data/nba_games_2009_2023.csv] [--tune]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from drift_scenarios import swapped_rows

from nbaml.features import FEATURE_NAMES, FeatureTable, build_features
from nbaml.games.feeds.history_file import load_games
from nbaml.metrics import CLIP, accuracy, expected_log_loss, log_loss, picks_home
from nbaml.monitoring import rules
from nbaml.training.dataset import time_split
from nbaml.training.search import TrainConfig, calibrated, elo_column, fit, fit_calibration, refit

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
TARGET_NEEDLESS, TARGET_WEEKS, MAX_DELAY = 15, 291, 3  # the target: <= 15 in 291, each within 3
GRID = {
    "surprise_allowance": (0.0, 0.02, 0.03, 0.04, 0.05, 0.06),
    "surprise_threshold": (3.0, 4.0, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 25.0),
    "sharpness_allowance": (0.0, 0.0025, 0.005, 0.0075, 0.01),
    "sharpness_threshold": (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0),
    "reference_games": (300, 500),
}
SCENARIOS = ("none", "swap", "dumb")
ELO = elo_column(FEATURE_NAMES)  # the calibrator's Elo term reads this column, as the pipeline's does

Rule = Callable[[list[tuple[float, bool]], int], bool]  # (the season's outcomes so far, restart index) -> fired


@dataclass
class SeasonRun:
    """One test season: its games in resolution order, the model's probabilities, and the scenarios."""

    season: int
    dates: list[dt.date]
    outcomes: list[bool]
    baseline_accuracy: float
    mondays: list[dt.date]
    change_monday: dt.date
    calibrated: bool
    scenarios: dict[str, list[float]] = field(default_factory=dict)  # name -> probability per game
    cuts: list[int] = field(default_factory=list)  # games resolved before each Monday

    def __post_init__(self) -> None:
        ordinals = np.asarray([d.toordinal() for d in self.dates])
        self.cuts = [int(np.searchsorted(ordinals, m.toordinal())) for m in self.mondays]


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


def mondays_of(first: dt.date, last: dt.date) -> list[dt.date]:
    monday = first + dt.timedelta(days=(7 - first.weekday()) % 7 or 7)
    days = []
    while monday <= last + dt.timedelta(days=7):
        days.append(monday)
        monday += dt.timedelta(days=7)
    return days


def build_run(
    table: FeatureTable, swaps: dict[str, list[float]], season: int, *, full_search: bool, rng: np.random.Generator
) -> SeasonRun:
    seasons = np.asarray(table.seasons)
    split = time_split(_subset(table, seasons < season))  # the retrain pipeline's split
    test = _subset(table, seasons == season)
    config = TrainConfig()
    if full_search:
        fitted = fit(split.X_train, split.y_train, config, FEATURE_NAMES)
        model, calibration = fitted.pipeline, fitted.calibration
    else:
        model = refit(split.X_train, split.y_train, FIXED_PARAMS, config)
        calibration, _ = fit_calibration(split.X_train, split.y_train, FIXED_PARAMS, config, ELO)

    def serve(X: np.ndarray) -> np.ndarray:
        return calibrated(model.predict_proba(X)[:, 1], calibration, X[:, ELO])

    X = np.asarray(test.rows, dtype=np.float64)
    dates = list(test.dates)
    mondays = mondays_of(dates[0], dates[-1])
    middle = dates[len(dates) // 2]
    change_monday = next(m for m in mondays if m >= middle)
    after = np.asarray([d >= change_monday for d in dates])

    p_none = serve(X)
    p_swap = p_none.copy()
    chosen = after & (rng.random(len(dates)) < SWAP_SHARE)
    if chosen.any():
        ids = [test.game_ids[i] for i in np.flatnonzero(chosen)]
        p_swap[chosen] = serve(np.asarray([swaps[g] for g in ids], dtype=np.float64))
    dumb = refit(split.X_train, rng.permutation(split.y_train), FIXED_PARAMS, config)
    p_dumb = np.where(after, dumb.predict_proba(X)[:, 1], p_none)
    return SeasonRun(
        season=season,
        dates=dates,
        outcomes=[bool(v) for v in test.labels],
        baseline_accuracy=accuracy(split.y_holdout.astype(bool), serve(split.X_holdout)),
        mondays=mondays,
        change_monday=change_monday,
        calibrated=calibration is not None,
        scenarios={"none": p_none.tolist(), "swap": p_swap.tolist(), "dumb": p_dumb.tolist()},
    )


# ---------------------------------------------------------------- the weekly checks, as drift_check runs them
def weekly(run: SeasonRun, scenario: str, rule: Rule) -> list[bool]:
    """Each Monday's verdict; after a firing the evidence restarts after the newest game it used."""
    pairs = list(zip(run.scenarios[scenario], run.outcomes, strict=True))
    fired, start = [], 0
    for cut in run.cuts:
        fires = cut > start and rule(pairs[:cut], start)
        fired.append(fires)
        if fires:
            start = cut
    return fired


def seed_for(run: SeasonRun) -> Rule:
    def fired(outcomes: list[tuple[float, bool]], start: int) -> bool:
        correct = [picks_home(p) == won for p, won in outcomes[start:]]
        return rules.seed_rule(correct, run.baseline_accuracy, SEED_THRESHOLD, SEED_WINDOW).fired

    return fired


def sequential_for(constants: rules.SequentialConstants) -> Rule:
    def fired(outcomes: list[tuple[float, bool]], start: int) -> bool:
        return rules.sequential_rule(outcomes, start, constants).fired

    return fired


def delay(run: SeasonRun, fires: Sequence[bool]) -> int | None:
    """Weekly checks after the change until the first firing (None: not detected by the season's end)."""
    for monday, fired in zip(run.mondays, fires, strict=True):
        if monday > run.change_monday and fired:
            return (monday - run.change_monday).days // 7
    return None


# ---------------------------------------------------------------- the vectorised twin, for the search
def _arrays(run: SeasonRun, scenario: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(np.asarray(run.scenarios[scenario]), CLIP, 1 - CLIP)
    y = np.asarray(run.outcomes)
    expected = -(p * np.log(p) + (1 - p) * np.log(1 - p))
    observed = -np.log(np.where(y, p, 1 - p))
    return observed - expected, expected


def _increments(run: SeasonRun, scenario: str, reference_games: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    key = (run.season, scenario, reference_games)
    if key not in cache:
        surprise, expected = _arrays(run, scenario)
        running = np.concatenate([[0.0], np.cumsum(expected)])
        i = np.arange(len(expected))
        first = np.maximum(0, i - reference_games)
        count = i - first
        reference = np.where(count > 0, (running[i] - running[first]) / np.maximum(count, 1), expected)
        cache[key] = (surprise, expected - reference)
    return cache[key]


def fast_weekly(run: SeasonRun, scenario: str, c: rules.SequentialConstants, cache: dict) -> list[bool]:
    surprise, sharp = _increments(run, scenario, c.reference_games, cache)
    fired, start, done, s1, s2 = [], 0, 0, 0.0, 0.0
    for cut in run.cuts:
        for i in range(done, cut):
            s1 = max(0.0, s1 + surprise[i] - c.surprise_allowance)
            s2 = max(0.0, s2 + sharp[i] - c.sharpness_allowance)
        done = cut
        fires = cut - start >= c.min_games and (s1 > c.surprise_threshold or s2 > c.sharpness_threshold)
        fired.append(fires)
        if fires:
            start, s1, s2 = cut, 0.0, 0.0
    return fired


def check_twin(runs: list[SeasonRun], c: rules.SequentialConstants) -> int:
    """Mondays where the twin and the library disagree (0, or the search's figures do not hold)."""
    cache: dict = {}
    return sum(
        a != b
        for run in runs
        for scenario in SCENARIOS
        for a, b in zip(fast_weekly(run, scenario, c, cache), weekly(run, scenario, sequential_for(c)), strict=True)
    )


# ---------------------------------------------------------------- reporting
def _fmt(value: int | None) -> str:
    return "missed" if value is None else str(value)


def table(runs: list[SeasonRun], c: rules.SequentialConstants, title: str) -> dict[str, object]:
    """One row per season and the totals, every figure from the library rules; returns the totals."""
    print(f"\n{title}: seed rule (last {SEED_WINDOW}, drop > {SEED_THRESHOLD}) vs sequential {constants_text(c)}")
    header = (
        f"{'season':<8}{'weeks':>6}{'cal':>4}{'live ll':>9}{'expected':>9}"
        f"{'seed req':>9}{'seq req':>8}{'seed d(swap)':>13}{'seq d(swap)':>12}{'seed d(dumb)':>13}{'seq d(dumb)':>12}"
    )
    print(header)
    print("-" * len(header))
    totals: dict[str, int] = {"weeks": 0, "seed": 0, "sequential": 0}
    delays: dict[str, list[int | None]] = {f"{r} {s}": [] for s in ("swap", "dumb") for r in ("seed", "sequential")}
    sequential = sequential_for(c)
    for run in runs:
        seed_rule = seed_for(run)
        requests = {"seed": sum(weekly(run, "none", seed_rule)), "sequential": sum(weekly(run, "none", sequential))}
        row = {
            f"{name} {scenario}": delay(run, weekly(run, scenario, rule))
            for scenario in ("swap", "dumb")
            for name, rule in (("seed", seed_rule), ("sequential", sequential))
        }
        for key, value in row.items():
            delays[key].append(value)
        for key, value in requests.items():
            totals[key] += value
        totals["weeks"] += len(run.mondays)
        p = run.scenarios["none"]
        expected = sum(expected_log_loss(q) for q in p) / len(p)
        flag = "*" if run.season in ODD_SEASONS else " "
        print(
            f"{run.season:<7}{flag}{len(run.mondays):>6}{'yes' if run.calibrated else 'no':>4}"
            f"{log_loss(run.outcomes, p):>9.4f}{expected:>9.4f}{requests['seed']:>9}{requests['sequential']:>8}"
            f"{_fmt(row['seed swap']):>13}{_fmt(row['sequential swap']):>12}"
            f"{_fmt(row['seed dumb']):>13}{_fmt(row['sequential dumb']):>12}"
        )
    print("-" * len(header))
    summary = []
    for key, values in delays.items():
        found = [v for v in values if v is not None]
        in_time = sum(v <= MAX_DELAY for v in found)
        mean = f"{np.mean(found):.1f}" if found else "-"
        summary.append(f"{key}: {in_time}/{len(values)} within {MAX_DELAY} checks, mean delay {mean}")
    print(
        f"total   {totals['weeks']} weekly checks; needless retrain requests: seed {totals['seed']}, "
        f"sequential {totals['sequential']}"
    )
    print("        " + "; ".join(summary))
    odd = [r.season for r in runs if r.season in ODD_SEASONS]
    if odd:
        print("        * " + "; ".join(f"{s}: {ODD_SEASONS[s]}" for s in odd) + " (kept, but a firing may be true)")
    return {**totals, "delays": delays}


def constants_text(c: rules.SequentialConstants) -> str:
    return (
        f"(surprise k={c.surprise_allowance} h={c.surprise_threshold}; sharpness k={c.sharpness_allowance} "
        f"h={c.sharpness_threshold} against the previous {c.reference_games} games)"
    )


def tune(runs: list[SeasonRun]) -> rules.SequentialConstants:
    """The constants the module docstring's order picks on ``runs``."""
    weeks = sum(len(r.mondays) for r in runs)
    budget = TARGET_NEEDLESS * weeks / TARGET_WEEKS
    changes = 2 * len(runs)
    cache: dict = {}
    scored = []
    for values in itertools.product(*GRID.values()):
        c = rules.SequentialConstants(**dict(zip(GRID, values, strict=True)))
        needless = sum(sum(fast_weekly(r, "none", c, cache)) for r in runs)
        found = [delay(r, fast_weekly(r, s, c, cache)) for r in runs for s in ("swap", "dumb")]
        in_time = sum(d is not None and d <= MAX_DELAY for d in found)
        hits = [d for d in found if d is not None]
        mean = float(np.mean(hits)) if hits else float("inf")
        scored.append(((needless > budget, -in_time, needless, mean), c, needless, in_time, mean))
    scored.sort(key=lambda item: item[0])
    print(
        f"\nSequential grid on seasons <= {TUNE_UNTIL} ({weeks} weekly checks, budget {budget:.1f} needless "
        f"requests): the best ten of {len(scored)} (needless requests, changes caught within {MAX_DELAY} of "
        f"{changes}, mean delay)"
    )
    for _, c, needless, in_time, mean in scored[:10]:
        print(f"  {needless:>3} {in_time:>3}/{changes} {mean:4.1f}  {constants_text(c)}")
    chosen = scored[0][1]
    print(f"  chosen: {constants_text(chosen)}")
    return chosen


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
    parser.add_argument("--tune", action="store_true", help="tune on seasons <= 2018; fail unless rules ships it")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injected changes")
    args = parser.parse_args(argv)
    path = Path(args.games)
    if not path.exists():
        print(f"no games file at {path}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    games = load_games(path).games
    features = build_features(games)
    swaps = swapped_rows(games)
    built = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    runs = []
    for season in TEST_SEASONS:
        runs.append(build_run(features, swaps, season, full_search=args.search, rng=rng))
        print(f"  season {season}: model trained ({time.perf_counter() - built:.0f} s)", file=sys.stderr)
    trained = time.perf_counter()
    how = "search.fit (default staged search)" if args.search else f"fixed-parameter XGBoost {FIXED_PARAMS}"
    print(f"machine: {machine()}")
    print(
        f"{len(games)} games, features in {built - started:.1f} s; {len(runs)} models ({how}) in "
        f"{trained - built:.1f} s. Changes injected from the first Monday after each season's middle game: "
        f"swap = home/away swapped in the features of {SWAP_SHARE:.0%} of games, dumb = a model trained on "
        "shuffled labels. req = retrain requests with nothing changed (each restarts the evidence, as "
        "drift_check does); d = weekly checks from the change to detection."
    )
    shipped = rules.SequentialConstants()
    mismatches = check_twin(runs, shipped)
    print(f"vectorised twin against rules.sequential_rule: {mismatches} differing Mondays")
    totals = table(runs, shipped, "All test seasons, shipped constants")
    code = 1 if mismatches else 0
    if args.tune:
        chosen = tune([r for r in runs if r.season <= TUNE_UNTIL])
        held_out = [r for r in runs if r.season > TUNE_UNTIL]
        table(held_out, chosen, f"Held-out seasons (> {TUNE_UNTIL}), chosen constants")
        if chosen != shipped:
            print(f"the shipped constants {constants_text(shipped)} are not the ones --tune picks", file=sys.stderr)
            code = 1
        else:
            print("the shipped constants are the ones --tune picks")
    caught = [d for key, v in totals["delays"].items() if key.startswith("sequential") for d in v]
    print(
        f"\ntarget: <= {TARGET_NEEDLESS} needless requests in {TARGET_WEEKS} checks, every change within {MAX_DELAY}: "
        f"{totals['sequential']} in {totals['weeks']}, {sum(d is not None and d <= MAX_DELAY for d in caught)}"
        f"/{len(caught)} in time"
    )
    print(f"total {time.perf_counter() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
