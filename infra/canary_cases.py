"""The canary's three cases, each a replay of a real season with ``PromotionMode: canary`` (``nbaml canary-cases``).

- **better**: nothing injected; the monthly retrain's candidate (trained on the games since v1 too);
- **equal**: every candidate after v1 is trained on v1's own games with another seed (equal quality,
  different trees), judged by the gates as usual;
- **worse**: every candidate after v1 is trained on the history with home and away swapped in every game
  (a feed that mislabels the venue), and its gates are bypassed: the gates would stop it, so only here can
  the canary be shown to be the line of defence when they do not.

The replay runs the template's schedules through the real handlers (``infra.replay``): the retrain starts a
candidate at the first of CANARY_STEPS, and each Monday's drift check judges it. At the end, the registry's
record of each candidate (its checks and moves) and the Predictions table give the row of the table: the
steps it took, how many weekly checks it took to reach active or be aborted, and the games it answered.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra import replay as rp
from infra import runtime, tables

CASES = ("better", "equal", "worse")
SEASON = 2022
DAYS = 42  # to 2022-11-28: the Nov 1 candidate meets four Monday checks
DECIDED = ("promoted", "aborted")


@dataclass
class CaseResult:
    case: str
    version: str
    status: str  # the registry's at the end: active, rejected, canary, candidate
    steps: list[int]  # the shares it held, in order
    checks: list[dict[str, Any]]  # every drift check's evidence and action
    weeks_to_decision: int | None  # weekly checks from its start to the one that promoted or aborted it
    weeks_after_enough: int | None  # the same, counted from the first check with min_games pairs
    served_as_canary: int
    served_as_champion: int
    live: dict[str, float | int | None] = field(default_factory=dict)  # both models on the paired games

    def row(self) -> list[Any]:
        last = self.checks[-1] if self.checks else {}
        return [
            self.case,
            self.version,
            " -> ".join(str(s) for s in self.steps) + (" -> active" if self.status == "active" else ""),
            self.status,
            self.weeks_to_decision if self.weeks_to_decision is not None else "-",
            self.weeks_after_enough if self.weeks_after_enough is not None else "-",
            self.served_as_canary,
            self.served_as_champion,
            last.get("n", "-"),
            last.get("mean", "-"),
            f"[{last.get('lower')}, {last.get('upper')}]" if last.get("mean") is not None else "-",
        ]


HEADERS = [
    "case",
    "candidate",
    "steps taken",
    "status",
    "weekly checks to decision",
    "checks after min games",
    "games served as canary",
    "as champion",
    "pairs",
    "mean d",
    "bounds",
]


# ---------------------------------------------------------------- the candidates of each case
def swapped(game: Any) -> Any:
    """The same game with home and away exchanged (scores follow their teams): the venue mislabelled."""
    from nbaml.games.records import game_id_for

    return game.model_copy(
        update={
            "home": game.away,
            "away": game.home,
            "home_score": game.away_score,
            "away_score": game.home_score,
            "game_id": game_id_for(game.game_date, game.away, game.home),
        }
    )


@contextlib.contextmanager
def candidates_of(case: str) -> Iterator[None]:
    """Patch the retrain's training step so that every candidate after v1 is the case's."""
    from nbaml.training import pipeline
    from nbaml.training.gates import Verdict

    if case not in CASES:
        raise ValueError(f"unknown case {case!r}: one of {', '.join(CASES)}")
    original: Callable[..., Any] = pipeline.train_candidate
    first: dict[str, dt.date] = {}

    def train(games: list[Any], *, version: str, **kwargs: Any) -> Any:
        if version == "v1" or case == "better":
            first.setdefault("end", max(g.game_date for g in games))
            return original(games, version=version, **kwargs)
        if case == "equal":
            config = kwargs.get("config") or pipeline.QUICK
            kwargs["config"] = dataclasses.replace(config, seed=config.seed + 1)
            return original([g for g in games if g.game_date <= first["end"]], version=version, **kwargs)
        candidate = original([swapped(g) for g in games], version=version, **kwargs)
        bypassed = Verdict()
        bypassed.note("gates", "bypassed by the replay's worse case: the canary is under test")
        return dataclasses.replace(candidate, verdict=bypassed)

    pipeline.train_candidate = train
    try:
        yield
    finally:
        pipeline.train_candidate = original


class Capture(rp.Hooks):
    """The registry and the Predictions table as the replay leaves them."""

    def __init__(self) -> None:
        self.registry: dict[str, dict[str, Any]] = {}
        self.predictions: list[dict[str, Any]] = []
        self.parameter_history: dict[str, list[tuple[str, str]]] = {}  # role -> (value, description), oldest first
        self.min_games = 0

    def before_report(self, replay: rp.SeasonReplay) -> None:
        from nbaml.config import DriftSettings, load_settings
        from nbaml.storage import parameters
        from nbaml.storage.predictions import PredictionLog
        from nbaml.storage.registry import ModelRegistry

        with runtime.function_environment(replay.stack.env_for("drift_check") | rp.QUIET):
            settings = load_settings(DriftSettings)
            self.min_games = settings.canary_min_games
            for role, name in (("active", settings.active_model_param), ("canary", settings.canary_model_param)):
                self.parameter_history[role] = [(c.value, c.description) for c in parameters.history(name)]
            self.registry = {v["version"]: v for v in ModelRegistry(settings.model_versions_table).versions()}
            self.predictions = PredictionLog(settings.predictions_table).all()


# ---------------------------------------------------------------- running and reading a case
def run_case(
    case: str, *, season: int = SEASON, days: int = DAYS, out_dir: Path | None = None, capture: Capture | None = None
) -> list[CaseResult]:
    """One replay of ``case``; a row per candidate that held the canary role."""
    capture = capture or Capture()
    options = rp.ReplayOptions(
        source="file",
        season=season,
        days=days,
        promotion="canary",
        quick=True,
        progress=False,
        out_dir=(out_dir or rp.ReplayOptions.out_dir.parent / "canary") / case,
    )
    with candidates_of(case):
        rp.run(options, capture)
    return results_of(case, capture)


def results_of(case: str, capture: Capture) -> list[CaseResult]:
    results = []
    for version, record in sorted(capture.registry.items()):
        state = record.get("canary")
        if version == "v1" or not isinstance(state, dict):
            continue
        checks = list(state.get("checks", []))
        steps = _steps(record)
        decided = next((i for i, c in enumerate(checks) if c.get("action") in DECIDED), None)
        enough = next((i for i, c in enumerate(checks) if int(c.get("n") or 0) >= capture.min_games), None)
        served = [p for p in capture.predictions if p["version"] == version and p.get("served", True)]
        results.append(
            CaseResult(
                case=case,
                version=version,
                status=str(record.get("status")),
                steps=steps,
                checks=checks,
                weeks_to_decision=None if decided is None else decided + 1,
                weeks_after_enough=None if decided is None or enough is None else decided - enough + 1,
                served_as_canary=sum(1 for p in served if p["role"] == "canary"),
                served_as_champion=sum(1 for p in served if p["role"] == "champion"),
                live=_live(capture.predictions, version),
            )
        )
    return results


def _steps(record: dict[str, Any]) -> list[int]:
    """The shares a version held, from its registry history (each "canary N %: ..." entry)."""
    shares: list[int] = []
    for entry in record.get("history", []):
        why = str(entry.get("why", ""))
        if entry.get("to") == "canary" and why.startswith("canary ") and " %" in why:
            share = why.split(" ", 2)[1]
            if share.isdigit() and (not shares or shares[-1] != int(share)):
                shares.append(int(share))
    return shares


def _live(predictions: list[dict[str, Any]], version: str) -> dict[str, float | int | None]:
    """Champion and this candidate (as canary) on the same resolved games."""
    from nbaml.metrics import log_loss

    canary = {p["game_id"]: p for p in predictions if p["version"] == version and p["role"] == "canary"}
    champion = {p["game_id"]: p for p in predictions if p["role"] == "champion" and p.get("resolved_key")}
    shared = sorted(g for g in canary if g in champion and canary[g].get("resolved_key"))
    if not shared:
        return {"n": 0, "champion_log_loss": None, "candidate_log_loss": None}
    y = [bool(champion[g]["home_won"]) for g in shared]
    return {
        "n": len(shared),
        "champion_log_loss": round(log_loss(y, [float(champion[g]["probability"]) for g in shared]), 4),
        "candidate_log_loss": round(log_loss(y, [float(canary[g]["probability"]) for g in shared]), 4),
    }


def render(results: list[CaseResult]) -> str:
    return tables.table(HEADERS, [r.row() for r in results], markdown=True)


def _cli(args: argparse.Namespace) -> int:
    results: list[CaseResult] = []
    for case in args.cases:
        print(f"case {case}: replaying {args.days} days of season {args.season} ...", flush=True)
        results.extend(run_case(case, season=args.season, days=args.days))
        print(render(results), flush=True)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "canary-cases",
        help="the canary's better / equal / worse cases, each a replay of a real season, and their table",
    )
    parser.add_argument("cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--season", type=int, default=SEASON, help="the real season to replay (its start year)")
    parser.add_argument("--days", type=int, default=DAYS, help="days of the season to replay")
    parser.set_defaults(func=_cli)
