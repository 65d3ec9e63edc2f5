"""Walk-forward evaluation on real seasons: train before the first test season, predict every game after.

Run: ``python -m nbaml.training.walkforward --games ../shared/data/nba_games_2009_2023.csv``

Why walk-forward and not the retrain's random-free holdout alone: the question a user asks is "had we run
this all season, how good would the picks have been?". So the model is searched and fitted exactly as a
retrain does (same ``search.fit``) on the seasons before ``--first-test-season``, then every game of the
test seasons is predicted from features computed as of that game (``build_features`` gives each row from
the games before its date only). With ``--monthly`` (the default; it costs about a second a month) a
second model is refitted on the first day of each month with everything known by then and the searched
hyperparameters (and its calibrator fitted again, as the retrain fits one), as the monthly scheduled
retrain would; the search itself is not repeated.

Both are compared, on the same games, with always-the-home-team and Elo alone (``nbaml.metrics``' baselines).
The command exits 1 when the model does not beat both baselines on pooled log-loss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nbaml.bundle import ModelBundle
from nbaml.features import FEATURE_NAMES, FeatureTable
from nbaml.metrics import always_home, elo_baseline, score
from nbaml.training.dataset import feature_table, select
from nbaml.training.search import FittedModel, TrainConfig, calibrated, elo_column, fit, fit_calibration, refit

MODEL = "model"
MONTHLY = "model (monthly refit)"
HOME = "always home"
ELO = "Elo"
POOLED = "pooled"
COLUMNS = ("n", "log_loss", "accuracy", "brier", "ece", "roc_auc")


@dataclass
class WalkForward:
    """Predictions of every test game by each model, and their scores per test season and pooled."""

    first_test_season: int
    test_seasons: list[int]
    n_train: int
    fitted: FittedModel
    y: np.ndarray
    seasons: np.ndarray
    predictions: dict[str, np.ndarray]
    seconds: dict[str, float] = field(default_factory=dict)

    def scores(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{model: {season or 'pooled': Scores.as_dict()}}``."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, p in self.predictions.items():
            out[name] = {
                str(season): score(self.y[self.seasons == season], p[self.seasons == season]).as_dict()
                for season in self.test_seasons
            }
            out[name][POOLED] = score(self.y, p).as_dict()
        return out


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def walk_forward(
    table: FeatureTable,
    *,
    first_test_season: int = 2021,
    seasons: int = 2,
    config: TrainConfig | None = None,
    monthly: bool = True,
    progress: bool = False,
) -> WalkForward:
    """Search and fit on the seasons before ``first_test_season``; predict the next ``seasons`` seasons."""
    config = config or TrainConfig()
    say = _log if progress else (lambda _message: None)
    X = select(table, FEATURE_NAMES)
    y = np.asarray(table.labels, dtype=np.int64)
    season_of_row = np.asarray(table.seasons)
    test_seasons = list(range(first_test_season, first_test_season + seasons))
    train = season_of_row < first_test_season
    test = np.isin(season_of_row, test_seasons)
    if not train.any() or not test.any():
        raise ValueError(f"no games before {first_test_season} or none in {test_seasons}")
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    say(f"search ({config.search}) and fit on {int(train.sum())} games of seasons before {first_test_season} ...")
    fitted = fit(X[train], y[train], config, FEATURE_NAMES)
    seconds["search_and_fit"] = time.perf_counter() - started
    say(
        f"  {fitted.fits} fits, {fitted.candidates} candidates, cv log-loss {fitted.cv_log_loss:.4f}, "
        f"params {_short(fitted.params)} ({seconds['search_and_fit']:.1f} s)"
    )

    # Score with the engine that serves (the pure-Python evaluator of the bundle), as the retrain does.
    bundle = ModelBundle(
        version="v1",
        model_json=fitted.model_json,
        scaler=fitted.scaler,
        feature_names=list(FEATURE_NAMES),
        calibration=fitted.calibration,
    )
    X_test = X[test]
    predictions = {
        MODEL: np.asarray(bundle.predict_many(X_test.tolist())),
        HOME: np.asarray(always_home(y[train], int(test.sum()))),
        ELO: np.asarray(elo_baseline(X_test, FEATURE_NAMES)),
    }
    if monthly:
        started = time.perf_counter()
        predictions[MONTHLY] = _monthly(X, y, table.dates, test, fitted.params, config, say)
        seconds["monthly_refits"] = time.perf_counter() - started
    return WalkForward(
        first_test_season=first_test_season,
        test_seasons=test_seasons,
        n_train=int(train.sum()),
        fitted=fitted,
        y=y[test],
        seasons=season_of_row[test],
        predictions=predictions,
        seconds=seconds,
    )


def _monthly(
    X: np.ndarray,
    y: np.ndarray,
    dates: Sequence[dt.date],
    test: np.ndarray,
    params: dict[str, Any],
    config: TrainConfig,
    say: Any,
) -> np.ndarray:
    """Each calendar month of the test games predicted by a model refitted on every game before it."""
    test_index = np.flatnonzero(test)
    months = sorted({(dates[i].year, dates[i].month) for i in test_index})
    out = np.empty(len(test_index))
    for k, (year, month) in enumerate(months, start=1):
        first_day = dt.date(year, month, 1)
        known = np.asarray([d < first_day for d in dates])
        in_month = np.asarray([(dates[i].year, dates[i].month) == (year, month) for i in test_index])
        model = refit(X[known], y[known], params, config)
        elo = elo_column(FEATURE_NAMES)
        calibration = fit_calibration(X[known], y[known], params, config, elo)[0] if config.calibrate else None
        rows = X[test_index[in_month]]
        out[in_month] = calibrated(model.predict_proba(rows)[:, 1], calibration, rows[:, elo])
        say(
            f"  monthly refit {k}/{len(months)}: {first_day:%Y-%m}, {int(known.sum())} games known, "
            f"{int(in_month.sum())} predicted"
        )
    return out


def _short(params: dict[str, Any]) -> str:
    keys = ("max_depth", "n_estimators", "learning_rate", "min_child_weight", "reg_lambda")
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def format_table(scores: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One row per model and season (pooled last), the columns of ``COLUMNS``."""
    header = f"{'model':<22} {'season':<8} " + " ".join(f"{c:>9}" for c in COLUMNS)
    lines = [header, "-" * len(header)]
    periods = list(next(iter(scores.values())))
    for period in periods:
        for name, by_period in scores.items():
            s = by_period[period]
            label = period if period == POOLED else f"{period}-{(int(period) + 1) % 100:02d}"
            cells = [f"{s['n']:>9d}"] + [f"{s[c]:>9.4f}" for c in COLUMNS[1:]]
            lines.append(f"{name:<22} {label:<8} " + " ".join(cells))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def beats_baselines(scores: dict[str, dict[str, dict[str, Any]]]) -> bool:
    model = scores[MODEL][POOLED]["log_loss"]
    return model < scores[HOME][POOLED]["log_loss"] and model < scores[ELO][POOLED]["log_loss"]


def _plot(scores: dict[str, dict[str, dict[str, Any]]], path: Path) -> Path | None:
    """The pooled reliability curve of each model, if matplotlib is installed (it is not a dependency)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    for name, by_period in scores.items():
        curve = by_period[POOLED]["calibration"]
        if len(curve) > 1:
            ax.plot([b["mean_probability"] for b in curve], [b["win_rate"] for b in curve], marker="o", label=name)
    ax.set_xlabel("predicted home win probability")
    ax.set_ylabel("home win rate")
    ax.set_title("Walk-forward calibration (pooled)")
    ax.legend(loc="upper left")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbaml.training.walkforward", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--games", required=True, type=Path, help="the results CSV (e.g. ../shared/data/nba_games_2009_2023.csv)"
    )
    parser.add_argument("--first-test-season", type=int, default=2021, help="start year of the first test season")
    parser.add_argument("--seasons", type=int, default=2, help="how many test seasons")
    parser.add_argument("--monthly", action=argparse.BooleanOptionalAction, default=True, help="also refit monthly")
    parser.add_argument("--search", choices=("staged", "grid"), default="staged")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("reports/evaluation"), help="directory for the JSON and PNG")
    args = parser.parse_args(argv)

    from nbaml.games.feeds.history_file import load_games

    started = time.perf_counter()
    _log(f"reading {args.games} ...")
    batch = load_games(args.games)
    counts = {k: v for k, v in batch.defects.as_dict()["counts"].items() if v}
    _log(f"  {len(batch.games)} clean games; defects skipped or repaired: {counts or 'none'}")
    table = feature_table(batch.games)
    _log(f"  features of {len(table.rows)} regular-season games ({time.perf_counter() - started:.1f} s)")

    config = TrainConfig(search=args.search, seed=args.seed)
    result = walk_forward(
        table,
        first_test_season=args.first_test_season,
        seasons=args.seasons,
        config=config,
        monthly=args.monthly,
        progress=True,
    )
    scores = result.scores()
    elapsed = time.perf_counter() - started
    print(
        f"\nWalk-forward: trained on {result.n_train} games before {args.first_test_season}, "
        f"tested on seasons {', '.join(f'{s}-{(s + 1) % 100:02d}' for s in result.test_seasons)}\n"
    )
    print(format_table(scores))
    ok = beats_baselines(scores)
    print(
        f"model pooled log-loss {scores[MODEL][POOLED]['log_loss']:.4f}: "
        f"{'beats' if ok else 'does NOT beat'} always-home and Elo. Elapsed {elapsed:.1f} s."
    )

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "games_file": str(args.games),
        "first_test_season": args.first_test_season,
        "test_seasons": result.test_seasons,
        "n_train": result.n_train,
        "config": config.as_dict(),
        "hyperparameters": result.fitted.params,
        "search": {
            "fits": result.fitted.fits,
            "candidates": result.fitted.candidates,
            "cv_log_loss": result.fitted.cv_log_loss,
        },
        "scores": scores,
        "beats_baselines": ok,
        "seconds": {**{k: round(v, 3) for k, v in result.seconds.items()}, "total": round(elapsed, 3)},
    }
    json_path = args.out / f"walkforward_{args.first_test_season}_{args.seasons}.json"
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    png_path = _plot(scores, args.out / f"walkforward_{args.first_test_season}_{args.seasons}.png")
    print(f"wrote {json_path}" + (f" and {png_path}" if png_path else " (no matplotlib: no calibration plot)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
