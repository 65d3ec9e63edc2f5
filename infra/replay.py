"""The season replay, nbaml's main job: a whole season lived through the local stack, day by day.

1. an emulator starts in this process and template.yaml is deployed into it (``infra.stack``);
2. history is backfilled (archived raw, Games, training snapshot, team state, and the league calendar
   vouching for every day before the season);
3. retrain runs once and ``v1`` is activated through the gates;
4. the prediction API is served on 127.0.0.1 (uvicorn, the same app Mangum wraps on AWS);
5. for each league (Eastern) day of the season, in time order: the schedule clock fires what template.yaml
   schedules (collect 03:00, drift_check Mondays 04:00, retrain on the 1st at 05:00, Eastern) as the events
   Scheduler delivers, through the handlers; retrain requests that drift_check queues are drained from SQS
   into the retrain handler, as Lambda's event source mapping would; and at SLATE_TIME (11:00) a client asks
   the HTTP API for the day's slate;
6. at the end it prints the model_versions table, live metrics per version against always-home and Elo
   on the same games, the drift events, the completeness of what the slates saw, where the time went, and
   writes the reports.

The replay runs on a simulated clock (``now``, moved by ``tick``): each handler gets its firing's scheduled
time in its event, the feed answers as of it (a game is final GAME_LENGTH after its tip-off), and the API's
predictor reads the same clock (SAM's predict container reads it from SSM: ``nbaml.serving.clock``). So a
schedule that fires too early (``--template`` with another copy) shows up as results missing at collect,
late results, and slates refused (``CompletenessWatch``).

The replay compresses months into minutes, so the predict function's parameter cache (max_age) is set to
0 here: a promotion is visible on the next request, as it would be within 30 s on AWS.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from infra import dashboard, runtime, tables
from infra import emulator as emu
from infra import stack as stk
from infra import template as tpl
from infra.clock import Firing, ScheduleClock
from nbaml import layout
from nbaml.games.teams import LEAGUE_TIMEZONE, league_time
from nbaml.serving.schemas import SLATE_LIMIT

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_GAMES = REPO_ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
PHASES = ("setup", "backfill", "collect", "predict", "drift", "retrain", "report")


@dataclass
class ReplayOptions:
    source: str = "generator"  # or "file"
    games_file: Path | None = None
    season: int | None = None
    history_seasons: int | None = None  # None: 3 synthetic seasons, or every earlier season of the file
    days: int | None = None  # stop after this many days (short replays, tests)
    promotion: str = "active"  # the template's PromotionMode: active, canary or shadow
    quick: bool = False  # TRAIN_PROFILE=quick: a one-point grid (smoke runs)
    seed: int = 2024
    out_dir: Path = REPO_ROOT / "reports" / "replay"
    progress: bool = True
    template_path: Path = tpl.DEFAULT_TEMPLATE  # another copy of the template (a test moving a schedule)


@dataclass
class ReplayResult:
    season: int
    days: int
    slates: int
    games_predicted: int
    versions: list[dict[str, Any]]
    live: dict[str, dict[str, Any]]
    drift_events: list[dict[str, Any]]
    retrains: list[dict[str, Any]]
    timings: dict[str, float]
    report_dir: Path
    failures: list[str] = field(default_factory=list)
    completeness: dict[str, Any] = field(default_factory=dict)


class Hooks:
    """Points where tests inject faults: each is called with the replay and returns nothing."""

    def before_firing(self, replay: SeasonReplay, firing: Firing) -> None: ...

    def before_slate(self, replay: SeasonReplay, day: dt.date) -> None: ...

    def before_report(self, replay: SeasonReplay) -> None:
        """Called once after the last day, while the stack still runs (to look inside it)."""


# ---------------------------------------------------------------- the source of games
@dataclass
class Source:
    name: str
    feed: Any
    history: list[Any]
    season_games: list[Any]
    start: dt.date
    end: dt.date
    collect_env: dict[str, str]


def _source(options: ReplayOptions) -> Source:
    from nbaml.config import FeedSettings
    from nbaml.games.feeds import open_feed

    if options.source == "generator":
        from nbaml.games.feeds.generator import season_window

        settings = FeedSettings(feed_source="generator", feed_seed=options.seed)
        league: Any = open_feed(settings)
        first = league.first_season
        season = options.season or first + (options.history_seasons or 3)
        history_from = season - (options.history_seasons or 3)
        if history_from < first:
            raise stk.StackError(f"the synthetic league starts in {first}: choose a season from {first + 1}")
        history = [g for s in range(history_from, season) for g in league.games(s)]
        start, end = season_window(season)
        return Source("generator", league, history, league.games(season), start, end, settings.environment())
    if options.source == "file":
        path = Path(options.games_file or SHARED_GAMES)
        if not path.exists():
            raise stk.StackError(f"no games file at {path}")
        settings = FeedSettings(feed_source="file", feed_file=str(path))
        feed: Any = open_feed(settings)
        games = feed.load().games
        season = options.season or max(g.season for g in games)
        first = season - options.history_seasons if options.history_seasons else min(g.season for g in games)
        history = [g for g in games if first <= g.season < season]
        season_games = [g for g in games if g.season == season]
        if not season_games:
            raise stk.StackError(f"{path.name} has no games of season {season}")
        start, end = season_games[0].game_date, season_games[-1].game_date
        return Source("file", feed, history, season_games, start, end, settings.environment())
    raise stk.StackError(f"unknown source {options.source!r}: generator or file")


# ---------------------------------------------------------------- the HTTP API
class ApiServer:
    """uvicorn on 127.0.0.1 in a thread, serving the predict function's app (the twin of start-api).

    ``identity`` (nbaml.storage.aws) is what the app's AWS calls sign as, whatever this process's
    environment says while a request runs: the predict function's role, when the replay or a test runs
    other functions (or acts as the operator) in the same process meanwhile.
    """

    def __init__(self, app: Any, identity: Any = None) -> None:
        import uvicorn

        self.port = emu.free_port()
        if identity is not None:
            app = _Pinned(app, identity)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="nbaml-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise stk.StackError("the prediction API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class _Pinned:
    """An ASGI app whose every request signs its AWS calls as one identity (threads it starts included)."""

    def __init__(self, app: Any, identity: Any) -> None:
        self.app, self.identity = app, identity

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from nbaml.storage import aws

        with aws.pinned(self.identity):
            await self.app(scope, receive, send)


# ---------------------------------------------------------------- the feed's timing, watched
# Eastern: the client asks for each day's slate before its first tip-off (13:00 at the earliest)
SLATE_TIME = dt.time(11)


class CompletenessWatch:
    """What the replay sees of the real feed's timing, from the truth and collect's own reports.

    A game is *known* once a collect run reported its day without it pending. A game is *late* when a slate
    after its day was asked while it was not known yet (the features of that slate would have missed it).
    A slate refused with 409 is listed with what it named; a slate served while a game of an earlier day was
    unknown would be a slate predicted on an incomplete previous day, which the predict function must never
    allow (the replay counts them: the number must be 0).
    """

    def __init__(self, season_games: list[Any], start: dt.date) -> None:
        self.by_day: dict[dt.date, list[str]] = defaultdict(list)
        for game in season_games:
            self.by_day[game.game_date].append(game.game_id)
        self.settled = start - dt.timedelta(days=1)  # every game of every day up to here is known
        self.known: set[str] = set()
        self.collect_runs = 0
        self.pending_at_collect = 0  # games of days before a run's date it still found pending
        self.late: dict[str, str] = {}
        self.refused: list[dict[str, Any]] = []
        self.on_incomplete: list[str] = []

    def collected(self, result: dict[str, Any]) -> None:
        self.collect_runs += 1
        self.pending_at_collect += len(result.get("pending_before_today", []))
        for day, record in result.get("days", {}).items():
            pending = set(record["pending"])
            self.known.update(g for g in self.by_day.get(dt.date.fromisoformat(day), []) if g not in pending)

    def unseen_before(self, day: dt.date) -> list[str]:
        while self.settled + dt.timedelta(days=1) < day and all(
            g in self.known for g in self.by_day.get(self.settled + dt.timedelta(days=1), [])
        ):
            self.settled += dt.timedelta(days=1)
        unseen, current = [], self.settled + dt.timedelta(days=1)
        while current < day:
            unseen += [g for g in self.by_day.get(current, []) if g not in self.known]
            current += dt.timedelta(days=1)
        return unseen

    def slate(self, day: dt.date, status: int, body: dict[str, Any]) -> None:
        unseen = self.unseen_before(day)
        for game_id in unseen:
            self.late.setdefault(game_id, day.isoformat())
        if status == 409:
            missing = body.get("missing", [])
            self.refused.append(
                {"day": day.isoformat(), "days": len(missing), "games": sum(len(m["pending"]) for m in missing)}
            )
        elif status == 200 and unseen:
            self.on_incomplete.append(day.isoformat())

    def as_dict(self) -> dict[str, Any]:
        late_by_day: dict[str, int] = defaultdict(int)
        for game_id in self.late:
            late_by_day[f"{game_id[:4]}-{game_id[4:6]}-{game_id[6:8]}"] += 1  # the id starts with its date
        return {
            "collect_runs": self.collect_runs,
            "pending_at_collect": self.pending_at_collect,
            "late_games": len(self.late),
            "late_games_by_night": dict(sorted(late_by_day.items())),
            "late_game_ids": sorted(self.late),
            "slates_refused": self.refused,
            "slates_on_incomplete_days": self.on_incomplete,
        }


# ---------------------------------------------------------------- the replay
class SeasonReplay:
    def __init__(self, stack: stk.LocalStack, source: Source, options: ReplayOptions, hooks: Hooks | None = None):
        self.stack = stack
        self.source = source
        self.options = options
        self.hooks = hooks or Hooks()
        self.clock = ScheduleClock(tpl.load(stack.template_path))
        self.timings: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.served: dict[str, dict[str, Any]] = {}
        self.truth = {g.game_id: g for g in source.season_games}
        self.drift_events: list[dict[str, Any]] = []
        self.canary_checks: list[dict[str, Any]] = []  # every drift check that judged a canary, with its step
        self.retrains: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.active = "none"
        self.slates = 0
        self.now = dt.datetime.combine(source.start, dt.time(), tzinfo=dt.UTC)  # the simulated clock
        self.watch = CompletenessWatch(source.season_games, source.start)
        Path(options.out_dir).mkdir(parents=True, exist_ok=True)
        self.function_log = (Path(options.out_dir) / "functions.log").open("w")

    # -------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] += time.perf_counter() - started

    def env(self, function: str) -> dict[str, str]:
        """What the replay sets beyond the template for ``function`` (short name), whichever runtime runs it."""
        extra = dict(QUIET)
        if function == "collect":
            extra |= self.source.collect_env
        if function == "retrain" and self.options.quick:
            extra["TRAIN_PROFILE"] = "quick"
        if function == "predict":
            extra["MODEL_PARAM_MAX_AGE_SECONDS"] = "0"  # months in minutes: a promotion shows on the next request
        return extra

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        # Functions log JSON lines and EMF metrics to stdout, as in Lambda; here they go to functions.log.
        with contextlib.redirect_stdout(self.function_log):
            return runtime.invoke(self.stack, function, event, extra_env=self.env(function))

    def drain_retrain_queue(self) -> None:
        """Deliver queued retrain requests to the retrain handler, one SQS record per invocation."""

        def retrain(event: dict[str, Any]) -> Any:
            with self.phase("retrain"):
                return self.invoke("retrain", event)

        queue, env = self.stack.resource("RetrainQueue"), self.stack.env_for("retrain")
        for result in runtime.deliver_queue(queue, retrain, env):
            self.retrains.extend(result["runs"])

    # -------------------------------------------------------- the job
    def backfill(self) -> dict[str, Any]:
        from nbaml.backfill import load
        from nbaml.config import CommonSettings, load_settings
        from nbaml.games.feeds.base import FeedBatch

        with self.phase("backfill"), runtime.function_environment(self.stack.env_for("collect") | QUIET):
            # the history holds every game before the season: the backfill vouches for every day up to it
            report = load(
                load_settings(CommonSettings),
                FeedBatch(games=self.source.history),
                source=self.source.name,
                complete_through=self.source.start - dt.timedelta(days=1),
            )
        return report.as_dict()

    def train_first_model(self) -> dict[str, Any]:
        requested_at = dt.datetime.combine(self.source.start - dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
        event = {
            "trigger": "manual",
            "reason": "initial model before the season",
            "requested_by": "replay",
            "force": True,
            "requested_at": requested_at.isoformat(),
        }
        with self.phase("retrain"):
            result = self.invoke("retrain", event)
        self.retrains.extend(result["runs"])
        return result["runs"][0]

    def tick(self, instant: dt.datetime) -> None:
        """Move the simulated clock to ``instant``: the handlers and the slates after this run at it."""
        self.now = instant

    def fire(self, firing: Firing) -> None:
        self.tick(firing.at)
        self.hooks.before_firing(self, firing)
        short = tpl.short_name(Path(self.stack.function_dirs[firing.function]))
        phase = {"collect": "collect", "drift_check": "drift", "retrain": "retrain"}.get(short, "collect")
        event = firing.event(name=self.stack.resources.get(firing.resource_logical_id))
        try:
            with self.phase(phase):
                result = self.invoke(short, event)
        except Exception as exc:  # a scheduled function that fails raises; Scheduler would retry it
            local = firing.at.astimezone(ZoneInfo(LEAGUE_TIMEZONE))  # on the league's clock, as scheduled
            self.failures.append(f"{local:%Y-%m-%d %H:%M} {short}: {type(exc).__name__}: {exc}")
            return
        if short == "collect":
            self.watch.collected(result)
        if short == "drift_check" and result.get("drift"):
            self.drift_events.append(result)
        if short == "drift_check" and (result.get("canary") or {}).get("version"):
            self.canary_checks.append({"run_date": result["run_date"], **result["canary"]})
        if short == "retrain":
            self.retrains.extend(result["runs"])
        self.drain_retrain_queue()

    def predict_slate(self, client: Any, day: dt.date) -> None:
        self.tick(league_time(day, SLATE_TIME))
        self.hooks.before_slate(self, day)
        games = self.source.feed.schedule(day)
        if not games:
            return
        with self.phase("predict"):
            for i in range(0, len(games), SLATE_LIMIT):
                chunk = games[i : i + SLATE_LIMIT]
                body = {"games": [{"home": g.home, "away": g.away, "date": day.isoformat()} for g in chunk]}
                response = client.post("/predictions", json=body)
                answer = response.json() if "json" in response.headers.get("content-type", "") else {}
                self.watch.slate(day, response.status_code, answer)
                if response.status_code == 409:  # an earlier day is not complete: refused, and counted
                    return
                if response.status_code != 200:
                    self.failures.append(f"{day} predictions: HTTP {response.status_code} {response.text[:200]}")
                    continue
                for answer in response.json()["predictions"]:
                    self.served[answer["game_id"]] = answer
                    self.active = answer["version"] if answer["role"] == "champion" else self.active
        self.slates += 1

    def live_accuracy(self, before: dt.date) -> float | None:
        from nbaml.metrics import accuracy

        done = [g for g in self.served if g in self.truth and self.truth[g].game_date < before]
        if not done:
            return None
        return accuracy([self.truth[g].home_won for g in done], [self.served[g]["home_win_probability"] for g in done])

    def days(self) -> list[dt.date]:
        end = self.source.end
        if self.options.days is not None:
            end = min(end, self.source.start + dt.timedelta(days=self.options.days - 1))
        return [self.source.start + dt.timedelta(days=n) for n in range((end - self.source.start).days + 1)]

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """The HTTP API the slates are asked of, for the block (its base URL): uvicorn in a thread serving the
        predict function's app on the replay's clock (``now``), the twin of ``sam local start-api``
        (``infra.samcli.replay`` uses the real one)."""
        from nbaml.serving.api import create_app
        from nbaml.storage import aws

        with runtime.function_environment(self.stack.env_for("predict") | self.env("predict")):
            app, identity = create_app(now=lambda: self.now), aws.current_identity()
        with ApiServer(app, identity) as api:
            yield api.url

    def run(self) -> ReplayResult:
        import httpx

        print(f"backfilling {len(self.source.history)} games of history ({self.source.name}) ...", flush=True)
        backfilled = self.backfill()
        print(
            f"  {backfilled['final_games']} games, seasons {backfilled['seasons']}, "
            f"state as of {backfilled['state_as_of']}"
        )
        print("training v1 ...", flush=True)
        first = self.train_first_model()
        print(f"  {first['version']}: {first['status']} {json.dumps(_short_metrics(first['metrics']))}")
        days = self.days()
        with self.serving() as url, httpx.Client(base_url=url, timeout=60) as client:
            for day, _ in _progress(days, self, enabled=self.options.progress):
                # the league day in time order: what the schedules fire, and the slate asked at SLATE_TIME
                slate_at = league_time(day, SLATE_TIME)
                firings = self.clock.firings_on(day, LEAGUE_TIMEZONE)
                for firing in [f for f in firings if f.at < slate_at]:
                    self.fire(firing)
                self.predict_slate(client, day)
                for firing in [f for f in firings if f.at >= slate_at]:
                    self.fire(firing)
            # the morning after the last game day: collect its results so every prediction is resolved
            after = days[-1] + dt.timedelta(days=1)
            for firing in self.clock.firings_on(after, LEAGUE_TIMEZONE):
                if firing.function == self.stack.function_id("collect"):
                    self.fire(firing)
        with self.phase("report"):
            try:
                return self.report(days)
            finally:
                self.function_log.close()

    # -------------------------------------------------------- the end
    def report(self, days: list[dt.date]) -> ReplayResult:
        from nbaml.config import CommonSettings, load_settings
        from nbaml.storage.artifacts import ArtifactStore
        from nbaml.storage.predictions import PredictionLog
        from nbaml.storage.registry import ModelRegistry

        self.hooks.before_report(self)

        with runtime.function_environment(self.stack.env_for("drift_check") | QUIET):
            settings = load_settings(CommonSettings)
            versions = ModelRegistry(settings.model_versions_table).versions()
            items = [i for i in PredictionLog(settings.predictions_table).all() if i.get("resolved_key")]
            store = ArtifactStore(settings.nbaml_bucket)
            latest = layout.report_key(layout.DRIFT_HTML)
            drift_html = store.get_bytes(latest) if store.exists(latest) else None
        elo, home_rate = baselines(self.source.history, self.source.season_games)
        live = live_metrics(items, elo, home_rate)
        out = Path(self.options.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if drift_html is not None:
            (out / layout.DRIFT_HTML).write_bytes(drift_html)
        season = self.source.season_games[0].season
        weeks = dashboard.weekly_log_loss(served(items), elo, home_rate)
        page = dashboard.render_dashboard(
            season, weeks, self.drift_events, self.retrains, live.get("overall"), canary_checks=self.canary_checks
        )
        (out / "dashboard.html").write_text(page)
        result = ReplayResult(
            season=self.source.season_games[0].season,
            days=len(days),
            slates=self.slates,
            games_predicted=len(self.served),
            versions=versions,
            live=live,
            drift_events=self.drift_events,
            retrains=self.retrains,
            timings={k: round(v, 2) for k, v in self.timings.items()},
            report_dir=out,
            failures=self.failures,
            completeness=self.watch.as_dict(),
        )
        (out / "replay.json").write_text(json.dumps(_jsonable(result), indent=2, sort_keys=True, default=str) + "\n")
        text = render(result)
        (out / "replay.md").write_text(text + "\n")
        print(text)
        return result


# ---------------------------------------------------------------- metrics and rendering
def baselines(history: list[Any], season_games: list[Any]) -> tuple[dict[str, float], float]:
    """Elo's probability of every game, and always-home's: the home-win rate of the history (the games the
    first model learned from)."""
    from nbaml.features import FEATURE_NAMES, build_features
    from nbaml.metrics import elo_baseline, home_win_rate

    table = build_features([*history, *season_games])
    elo = dict(zip(table.game_ids, elo_baseline(table.rows, FEATURE_NAMES), strict=True))
    return elo, home_win_rate(g.home_won for g in history if g.is_final)


def served(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The predictions users were given (champion and canary answers; shadow ones were only logged)."""
    return [i for i in items if i.get("served", True) and i["role"] in ("champion", "canary")]


def live_metrics(items: list[dict[str, Any]], elo: dict[str, float], home_rate: float) -> dict[str, dict[str, Any]]:
    """Served predictions per version and overall, with always-home and Elo on exactly the same games."""
    answered = served(items)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in answered:
        groups[item["version"]].append(item)
    groups["overall"] = answered
    result = {}
    for name, group in groups.items():
        outcomes = [bool(i["home_won"]) for i in group]
        result[name] = {
            "n": len(group),
            "model": _scores(outcomes, [float(i["probability"]) for i in group]),
            "always_home": _scores(outcomes, [home_rate] * len(group)),
            "elo": _scores(outcomes, [elo[i["game_id"]] for i in group]),
        }
    return result


def _scores(y: list[bool], p: list[float]) -> dict[str, Any]:
    from nbaml.metrics import score

    if not p:
        return {"log_loss": None, "accuracy": None, "brier": None, "ece": None}
    return score(y, p).as_dict()


def _short_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in ("accuracy", "roc_auc", "log_loss", "ece")}


def _md(headers: list[str], rows: list[list[Any]]) -> str:
    return tables.table(headers, rows, markdown=True)


def render(result: ReplayResult) -> str:
    versions = tables.model_versions(result.versions, markdown=True)
    live_rows = []
    for name, group in sorted(result.live.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        for who in ("model", "always_home", "elo"):
            s = group[who]
            live_rows.append(
                [
                    name if who == "model" else "",
                    who,
                    group["n"] if who == "model" else "",
                    s["log_loss"],
                    s["accuracy"],
                    s["brier"],
                    s["ece"],
                ]
            )
    live = _md(["version", "predictor", "n", "log_loss", "accuracy", "brier", "ece"], live_rows)
    drift = (
        _md(
            ["run", "rule", "reasons", "retrain requested"],
            [
                [d["run_date"], d.get("rule"), "; ".join(d["reasons"])[:90], d["retrain_requested"]]
                for d in result.drift_events
            ],
        )
        if result.drift_events
        else "no drift found"
    )
    retrains = _md(
        ["trigger", "version", "status", "log_loss", "reasons"],
        [
            [
                r["trigger"],
                r.get("version"),
                r["status"],
                r.get("metrics", {}).get("log_loss"),
                "; ".join(r["reasons"])[:80],
            ]
            for r in result.retrains
        ],
    )
    timings = _md(
        ["phase", "seconds"],
        [[k, v] for k, v in result.timings.items()] + [["total", round(sum(result.timings.values()), 2)]],
    )
    overall = result.live.get("overall", {})
    verdict = ""
    if overall.get("n"):
        m, h, e = overall["model"]["log_loss"], overall["always_home"]["log_loss"], overall["elo"]["log_loss"]
        beats = m < h and m < e
        verdict = (
            f"\nLive log-loss {m:.4f} vs always-home {h:.4f} and Elo {e:.4f}: "
            f"{'beats both baselines' if beats else 'does NOT beat both baselines'}."
        )
    failures = "\n".join(f"- {f}" for f in result.failures) or "none"
    completeness = render_completeness(result.completeness)
    return (
        f"# Season {result.season} replay: {result.days} days, {result.slates} slates, "
        f"{result.games_predicted} games predicted\n\n## model_versions\n{versions}\n\n"
        f"## Live results (served predictions, joined to outcomes){verdict}\n{live}\n\n"
        f"## Drift events\n{drift}\n\n## Retrains\n{retrains}\n\n"
        f"## Completeness (the feed's timing)\n{completeness}\n\n"
        f"## Where the time went\n{timings}\n\n"
        f"## Failures of scheduled runs (Scheduler would retry them)\n{failures}\n\n"
        f"Reports: {result.report_dir / 'replay.md'}, {result.report_dir / 'replay.json'}, "
        f"function logs and metrics {result.report_dir / 'functions.log'}"
        + (f", drift report {drift}" if (drift := result.report_dir / layout.DRIFT_HTML).exists() else "")
        + f", season dashboard {result.report_dir / 'dashboard.html'}"
    )


def render_completeness(watch: dict[str, Any]) -> str:
    """What the replay saw of the feed's timing: late results, refused slates, slates on incomplete days."""
    if not watch:
        return "not watched"
    late = watch["late_games"]
    refused = watch["slates_refused"]
    lines = [
        f"- {watch['collect_runs']} collect runs; games of an earlier day still pending at a run: "
        f"{watch['pending_at_collect']}",
        f"- games not final by the first slate after their night (late results): {late}"
        + (
            " (by night: "
            + ", ".join(f"{d}: {n}" for d, n in list(watch["late_games_by_night"].items())[:8])
            + (" ..." if len(watch["late_games_by_night"]) > 8 else "")
            + ")"
            if late
            else ""
        ),
        f"- slates refused because an earlier day was not complete (409): {len(refused)}"
        + (f", first on {refused[0]['day']} ({refused[0]['games']} games missing)" if refused else ""),
        f"- slates predicted on an incomplete previous day: {len(watch['slates_on_incomplete_days'])}",
    ]
    return "\n".join(lines)


def _jsonable(result: ReplayResult) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in result.__dict__.items()}


def _progress(days: list[dt.date], replay: SeasonReplay, *, enabled: bool) -> Iterator[tuple[dt.date, None]]:
    from tqdm import tqdm

    with tqdm(total=len(days), unit="day", disable=not enabled, dynamic_ncols=True) as bar:
        for day in days:
            yield day, None
            accuracy = replay.live_accuracy(day + dt.timedelta(days=1)) if enabled else None
            bar.set_postfix_str(
                f"{day} games {len(replay.served)} live acc {'-' if accuracy is None else f'{accuracy:.3f}'} "
                f"active {replay.active}"
            )
            bar.update(1)


# ---------------------------------------------------------------- entry points
def run(
    options: ReplayOptions, hooks: Hooks | None = None, on_stack: Callable[[stk.LocalStack], None] | None = None
) -> ReplayResult:
    """Replay a season on a fresh in-process emulator with the template deployed into it."""
    started = time.perf_counter()
    source = _source(options)
    with stk.deployed({"PromotionMode": options.promotion}, template_path=options.template_path) as stack:
        if on_stack is not None:
            on_stack(stack)
        replay = SeasonReplay(stack, source, options, hooks)
        replay.timings["setup"] = time.perf_counter() - started
        return replay.run()


def _cli(args: argparse.Namespace) -> int:
    options = ReplayOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ReplayOptions)})
    result = run(options)
    overall = result.live.get("overall", {})
    if args.require_beat_baselines and overall.get("n"):
        m = overall["model"]["log_loss"]
        if not (m < overall["always_home"]["log_loss"] and m < overall["elo"]["log_loss"]):
            return 1
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay a season through the local stack (the main job)",
        description="Backfill history, train v1, then live a season day by day: schedules fire the handlers, "
        "a client asks the HTTP API for each slate, and the end prints the model_versions table and live metrics.",
    )
    parser.add_argument(
        "--source",
        choices=["generator", "file"],
        default="generator",
        help="generator: the embedded synthetic league (default); file: a real games CSV",
    )
    parser.add_argument("--games", dest="games_file", type=Path, help=f"CSV for --source file (default {SHARED_GAMES})")
    parser.add_argument("--season", type=int, help="season to replay, by its start year (default: the last)")
    parser.add_argument(
        "--history-seasons", type=int, help="seasons of history before it (default 3 synthetic, all of a file)"
    )
    parser.add_argument("--days", type=int, help="stop after this many days")
    parser.add_argument(
        "--promotion",
        choices=["active", "canary", "shadow"],
        default="active",
        help="where a retrained candidate that passes its gates goes (the template's PromotionMode)",
    )
    parser.add_argument("--quick", action="store_true", help="one-point training grid (smoke runs)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic league")
    parser.add_argument("--out", dest="out_dir", type=Path, default=ReplayOptions.out_dir, help="where reports go")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument(
        "--template",
        dest="template_path",
        type=Path,
        default=ReplayOptions.template_path,
        help="another copy of template.yaml (to try a schedule or a setting before changing the template)",
    )
    parser.add_argument(
        "--require-beat-baselines", action="store_true", help="exit 1 unless live log-loss beats always-home and Elo"
    )
    parser.set_defaults(func=_cli)
