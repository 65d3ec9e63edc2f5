"""Feature-drift benchmark: is drift_check's PSI alarm quiet on normal real seasons, and does it fire on a
broken feed within two weekly checks?

For each test season S, the reference is what a model trained for S stores in its bundle
(``candidate.feature_distribution`` of the training rows the retrain pipeline's ``time_split`` keeps, on
the seasons before S: quintile edges, shares, and each feature's normal PSI level). Every Monday the
features of the requests of the last ``days`` days (``--days``; 28 in drift_check) are checked, from
``MIN_PSI_ROWS`` requests up. Two checks:

- ``all weeks``: drift_check before this change: PSI against the training shares, alarm when any feature
  reaches 0.2 (with the deciles it used then the figures are the same: never quiet);
- ``shipped``: ``rules.feature_drift`` itself: PSI against the requests of the four weeks before, each
  feature alarmed above the higher of 0.2 and its normal level on the training seasons (no verdict until
  both windows hold enough requests, so the first weeks of a season are not judged).

Injected from the first Monday after each season's middle game: ``swap``, a feed that swaps home and away
for 30 % of games (``drift_scenarios.swapped_rows``); ``low``, a feed whose home scores come 15 % low
(``drift_scenarios.low_home_scores``; the features are rebuilt from it, so the bug reaches every team's
state as it would in production). ``d`` is the number of weekly checks after the change until the alarm
is on (target: within 2). Exits non-zero if the shipped check or the results check is quiet on fewer than 90 %
of the judged normal checks.

``results`` is drift_check's check of the feed's own results (``rules.results_drift``): the mean home
margin of the last RESULTS_DAYS of games against the training window's, in standard errors. The swap
reads the same 30 % of games backwards (their margins negated), the low feed's margins come from its games.

Run: ``.venv/bin/python bench/bench_feature_drift.py [--games ../shared/data/nba_games_2009_2023.csv]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_drift_rules import DEFAULT_GAMES, TEST_SEASONS, machine, mondays_of
from drift_scenarios import low_home_scores, swapped_rows

from nbaml.features import FEATURE_NAMES, FeatureTable, build_features
from nbaml.games.feeds.history_file import load_games
from nbaml.monitoring import rules
from nbaml.monitoring.rules import MIN_PSI_ROWS, PSI_DAYS, RESULTS_DAYS
from nbaml.training.candidate import feature_distribution
from nbaml.training.dataset import time_split

ALARM = 0.2  # drift_check's default PSI_ALARM
SWAP_SHARE = 0.3
TARGET_QUIET, TARGET_DELAY = 0.90, 2
REFERENCES = ("all weeks", "shipped")  # the feature checks; then the results check ("results")
CHECKS = (*REFERENCES, "results")


def _rows_of(table: FeatureTable, season: int) -> tuple[list[str], list[dt.date], np.ndarray]:
    keep = [i for i, s in enumerate(table.seasons) if s == season]
    return (
        [table.game_ids[i] for i in keep],
        [table.dates[i] for i in keep],
        np.asarray([table.rows[i] for i in keep], dtype=np.float64),
    )


def _training(table: FeatureTable, season: int) -> tuple[np.ndarray, list[dt.date]]:
    """The training rows and their dates of a model trained for ``season`` (the pipeline's time_split)."""
    keep = [i for i, s in enumerate(table.seasons) if s < season]
    sub = FeatureTable(
        game_ids=[table.game_ids[i] for i in keep],
        dates=[table.dates[i] for i in keep],
        seasons=[table.seasons[i] for i in keep],
        rows=[table.rows[i] for i in keep],
        labels=[table.labels[i] for i in keep],
    )
    split = time_split(sub)
    return split.X_train, sub.dates[: len(split.y_train)]


def _window(ordinals: np.ndarray, end: dt.date, days: int) -> np.ndarray:
    return (ordinals < end.toordinal()) & (ordinals >= (end - dt.timedelta(days=days)).toordinal())


def alarms(
    reference: dict, dates: list[dt.date], X: np.ndarray, mondays: list[dt.date], days: int, kind: str
) -> list[tuple[bool | None, list[str]]]:
    """Each Monday: (alarm on, features over) or (None, []) when the window holds too few requests.

    ``shipped`` is drift_check's check itself (``rules.feature_drift``); ``all weeks`` bins against the
    training shares with the one PSI_ALARM for every feature (drift_check before this change).
    """
    out: list[tuple[bool | None, list[str]]] = []
    ordinals = np.asarray([d.toordinal() for d in dates])
    for monday in mondays:
        mask = _window(ordinals, monday, days)
        if mask.sum() < MIN_PSI_ROWS:
            out.append((None, []))
            continue
        if kind == "shipped":
            before = _window(ordinals, monday - dt.timedelta(days=days), days)
            result = rules.feature_drift(X[mask].tolist(), X[before].tolist(), FEATURE_NAMES, reference, ALARM)
            if not result["judged"]:
                out.append((None, []))
                continue
            over = result["alarm"]
        else:
            over = [
                name
                for j, name in enumerate(FEATURE_NAMES)
                if rules.psi(reference[name]["shares"], reference[name]["edges"], X[mask, j].tolist()) >= ALARM
            ]
        out.append((bool(over), over))
    return out


def results_alarms(
    reference: dict, dates: list[dt.date], margins: np.ndarray, mondays: list[dt.date]
) -> list[tuple[bool | None, list[str]]]:
    """Each Monday: drift_check's results check (``rules.results_drift``) on the last RESULTS_DAYS of games."""
    ordinals = np.asarray([d.toordinal() for d in dates])
    out: list[tuple[bool | None, list[str]]] = []
    for monday in mondays:
        result = rules.results_drift(margins[_window(ordinals, monday, RESULTS_DAYS)].tolist(), reference)
        on = bool(result["alarm"])
        out.append((on, ["home margin"] if on else []) if result["judged"] else (None, []))
    return out


def first_alarm(checks: list[tuple[bool | None, list[str]]], mondays: list[dt.date], change: dt.date) -> int | None:
    for monday, (on, _) in zip(mondays, checks, strict=True):
        if monday > change and on:
            return (monday - change).days // 7
    return None


@dataclass
class Totals:
    checks: int = 0
    quiet: int = 0
    delays: dict[str, list[int | None]] = field(default_factory=lambda: {"swap": [], "low": []})


def results_cell(
    games: list,
    season: int,
    ids: list[str],
    dates: list[dt.date],
    chosen: np.ndarray,
    change: dt.date,
    mondays: list[dt.date],
    until: dt.date,
    totals: dict,
) -> str:
    """The results check of one season: normal weeks, the swapped games read backwards, the low home scores."""
    by_id = {g.game_id: g for g in games}
    margins = np.asarray([by_id[i].home_score - by_id[i].away_score for i in ids], dtype=np.float64)
    swapped = margins.copy()
    swapped[chosen] = -swapped[chosen]  # the same games as the swapped requests: their results read backwards
    low_by_id = {g.game_id: g for g in low_home_scores([g for g in games if g.season == season], change)}
    low = np.asarray([low_by_id[i].home_score - low_by_id[i].away_score for i in ids], dtype=np.float64)
    reference_results = rules.results_reference(rules.home_margins(games, until=until))

    normal = results_alarms(reference_results, dates, margins, mondays)
    judged = [on for on, _ in normal if on is not None]
    d_swap = first_alarm(results_alarms(reference_results, dates, swapped, mondays), mondays, change)
    d_low = first_alarm(results_alarms(reference_results, dates, low, mondays), mondays, change)
    t = totals["results"]
    t.checks, t.quiet = t.checks + len(judged), t.quiet + judged.count(False)
    t.delays["swap"].append(d_swap)
    t.delays["low"].append(d_low)
    return f"{judged.count(False)}/{len(judged)}".rjust(18) + f"{_fmt(d_swap):>8}{_fmt(d_low):>7}"


def season_row(
    games: list, table: FeatureTable, swaps: dict, season: int, days: int, rng: np.random.Generator, totals: dict
) -> str:
    """One season: the normal weekly checks and the two injected feeds, under each reference."""
    X_train, train_dates = _training(table, season)
    reference = feature_distribution(X_train, FEATURE_NAMES, dates=train_dates)
    ids, dates, X = _rows_of(table, season)
    mondays = mondays_of(dates[0], dates[-1])
    change = next(m for m in mondays if m >= dates[len(dates) // 2])
    after = np.asarray([d >= change for d in dates])
    X_swap = X.copy()
    chosen = np.flatnonzero(after & (rng.random(len(dates)) < SWAP_SHARE))
    X_swap[chosen] = np.asarray([swaps[ids[i]] for i in chosen])
    _, low_dates, X_low = _rows_of(
        build_features(low_home_scores([g for g in games if g.season <= season], change)), season
    )
    cells, frequent = [], Counter()
    for ref in REFERENCES:
        normal = alarms(reference, dates, X, mondays, days, ref)
        judged = [on for on, _ in normal if on is not None]
        d_swap = first_alarm(alarms(reference, dates, X_swap, mondays, days, ref), mondays, change)
        d_low = first_alarm(alarms(reference, low_dates, X_low, mondays, days, ref), mondays, change)
        t = totals[ref]
        t.checks += len(judged)
        t.quiet += judged.count(False)
        t.delays["swap"].append(d_swap)
        t.delays["low"].append(d_low)
        cells.append(f"{judged.count(False)}/{len(judged)}".rjust(18) + f"{_fmt(d_swap):>8}{_fmt(d_low):>7}")
        if ref == "shipped":
            frequent.update(name for _, over in normal for name in over)
    cells.append(results_cell(games, season, ids, dates, chosen, change, mondays, train_dates[-1], totals))
    top = ", ".join(f"{n} {c}" for n, c in frequent.most_common(3)) or "-"
    return f"{season:<8}" + "".join(cells) + f"  {top}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--games", default=str(DEFAULT_GAMES), help="the games CSV (default: the shared history)")
    parser.add_argument("--days", type=int, default=PSI_DAYS, help=f"window of requests (drift_check: {PSI_DAYS})")
    parser.add_argument("--seed", type=int, default=7, help="seed of the swapped games")
    args = parser.parse_args(argv)
    path = Path(args.games)
    if not path.exists():
        print(f"no games file at {path}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    games = load_games(path).games
    table = build_features(games)
    swaps = swapped_rows(games)
    rng = np.random.default_rng(args.seed)
    print(f"machine: {machine()}")
    print(
        f"{len(games)} games; PSI of the last {args.days} days of requests (from {MIN_PSI_ROWS} up). all weeks: "
        f"against the training shares, alarm when any of {len(FEATURE_NAMES)} features reaches {ALARM}; shipped: "
        "rules.feature_drift. quiet = normal weekly checks without the alarm, of those judged; d = weekly checks "
        f"from the change to the alarm (swap: {SWAP_SHARE:.0%} of games home/away swapped; low: home scores 15 % low); "
        f"results: rules.results_drift, the last {RESULTS_DAYS} days' mean home margin, |z| > {rules.RESULTS_Z}."
    )
    header = f"{'season':<8}" + "".join(f"{ref + ' quiet':>18}{'d(swap)':>8}{'d(low)':>7}" for ref in CHECKS)
    header += "  most frequent over (shipped, normal)"
    print(header)
    print("-" * len(header))
    totals = {ref: Totals() for ref in CHECKS}
    for season in TEST_SEASONS:
        print(season_row(games, table, swaps, season, args.days, rng, totals), flush=True)
    print("-" * len(header))
    code = 0
    n = len(TEST_SEASONS)
    for ref, t in totals.items():
        quiet = t.quiet / t.checks if t.checks else 0.0
        in_time = {k: sum(d is not None and d <= TARGET_DELAY for d in v) for k, v in t.delays.items()}
        print(
            f"{ref}: quiet on {t.quiet}/{t.checks} normal checks ({quiet:.1%}; target >= {TARGET_QUIET:.0%}); "
            f"alarm within {TARGET_DELAY} checks: swap {in_time['swap']}/{n}, low {in_time['low']}/{n}"
        )
        if ref in ("shipped", "results") and quiet < TARGET_QUIET:
            code = 1
    print(f"total {time.perf_counter() - started:.1f} s")
    return code


def _fmt(value: int | None) -> str:
    return "missed" if value is None else str(value)


if __name__ == "__main__":
    sys.exit(main())
