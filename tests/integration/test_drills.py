"""Fault drills: each fault is injected, and each drill asserts that nothing is lost and no wrong model is served.

Each drill gets template.yaml deployed into a moto server process of its own (``stack.deployed(isolated=True)``):
moto's backends are global to a process, so the in-process server the other integration tests share (and
``mock_aws``, which resets those backends) cannot give a drill a clean stack without disturbing theirs.
Drill 5 restarts that process, because only a process that ends really loses its memory.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from infra import stack as stk
from nbaml.backfill import load
from nbaml.config import CollectSettings, CommonSettings, load_settings
from nbaml.games.feeds.base import FeedBatch, RawPayload
from nbaml.games.records import Game
from nbaml.games.teams import league_time
from nbaml.storage.predictions import PredictionLog
from nbaml.training.search import TrainConfig
from tests import faults
from tests.conftest import off_season, prediction_of, scheduled_event, train_versions

pytestmark = pytest.mark.integration
V2 = "v20210602_000000"


# ---------------------------------------------------------------- shared set-ups
def _train(fast_config: Any, days: tuple[int, ...] = (1, 2)) -> None:
    from nbaml.config import RetrainSettings, load_settings

    train_versions(load_settings(RetrainSettings), days, requested_by="drill", config=fast_config)


QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}


@pytest.fixture
def stack() -> Iterator[Any]:
    """A fresh deployed stack; the process environment is every function's (the template's) meanwhile."""
    from infra import runtime

    with stk.deployed(isolated=True, iam=True) as deployed:
        env: dict[str, str] = {}
        for function in deployed.function_dirs:
            env |= deployed.operator_env(function)
        with runtime.function_environment(env | QUIET | {"MODEL_PARAM_MAX_AGE_SECONDS": "0"}):
            _reset()
            yield deployed
            _reset()


@pytest.fixture
def loaded_history(stack: Any, league: Any) -> list[Game]:

    games = [g for season in (league.first_season, league.first_season + 1) for g in league.games(season)]
    load(load_settings(CommonSettings), FeedBatch(games=games), source="generator", complete_through=off_season(games))
    return games


@pytest.fixture
def two_models(stack: Any, loaded_history: list[Game], fast_config: Any) -> Any:
    """v1 the champion, v2 registered; predict's settings; the first day after the loaded history."""
    from nbaml.config import PredictSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.storage import parameters

    _train(fast_config)
    settings = load_settings(PredictSettings)
    Deployment(settings).promote("v1", by="drill", why="v1 is the champion of the drills")
    parameters.reset_cache()
    return settings, max(g.game_date for g in loaded_history) + dt.timedelta(days=1)


def _slate(day: dt.date) -> dict[str, Any]:
    pairs = [("BOS", "LAL"), ("MIA", "NYK"), ("GSW", "DEN"), ("CHI", "DET")]
    return {"games": [{"home": h, "away": a, "date": day.isoformat()} for h, a in pairs]}


# ---------------------------------------------------------------- drill 1: throttled prediction log
THROTTLED_ATTEMPTS = 2  # sends of one request, the production retry mode's: its throttling backoff is 1 s a retry


def test_given_dynamodb_throttles_the_prediction_log_then_answers_return_and_records_land_later(two_models) -> None:
    from nbaml.serving.api import create_app
    from nbaml.storage import aws

    settings, day = two_models
    with faults.retries(THROTTLED_ATTEMPTS):
        client = TestClient(create_app())
        dynamodb = aws.resource("dynamodb").meta.client  # the client the prediction log writes with
        # DynamoDB answers the log's PutItems with its throttling error; botocore retries, then gives up
        throttle = faults.Throttled(dynamodb, "PutItem", table=settings.predictions_table)
        attempts = faults.Attempts(dynamodb, "PutItem")
        # When: two slates are asked while every log write is throttled
        first = client.post("/predictions", json=_slate(day))
        second = client.post("/predictions", json=_slate(day + dt.timedelta(days=1)))
        # Then: both are answered, by the champion, and the records wait in memory; each request tried the
        # throttled table for one record (all of botocore's attempts), not once a record
        assert first.status_code == second.status_code == 200
        assert {p["version"] for r in (first, second) for p in r.json()["predictions"]} == {"v1"}
        assert throttle.throttled == attempts.count() == 2 * THROTTLED_ATTEMPTS
        assert PredictionLog(settings.predictions_table).all() == []
        assert client.get("/health").json()["pending_log_writes"] == 8
        # and botocore's backoff is all the outage cost a write: its retry came within the throttling
        # ceiling (1 s, full jitter) of the refusal, plus half a second for a loaded machine
        sent = [at for _, at in attempts.sent]
        gaps = [sent[i + 1] - sent[i] for i in range(0, len(sent), THROTTLED_ATTEMPTS)]
        assert all(gap < 1.0 + 0.5 for gap in gaps), gaps
        # When: the throttling ends and one more request comes
        throttle.on = False
        third = client.post("/predictions", json=_slate(day + dt.timedelta(days=2)))
    assert third.status_code == 200
    # Then: every prediction of the three slates is logged exactly once, as it was answered
    logged = {(i["game_id"], i["prediction_key"]): i for i in PredictionLog(settings.predictions_table).all()}
    answered = [p for r in (first, second, third) for p in r.json()["predictions"]]
    assert len(logged) == len(answered) == 12
    for answer in answered:
        item = logged[(answer["game_id"], "v1#champion")]
        assert item["probability"] == pytest.approx(answer["home_win_probability"], abs=1e-12)
    assert client.get("/health").json()["pending_log_writes"] == 0


# ---------------------------------------------------------------- drill 2: the canary deleted while live
def test_given_the_canary_is_deleted_while_live_then_requests_fall_back_to_the_champion(two_models) -> None:
    from nbaml.deployment import Deployment
    from nbaml.layout import manifest_key
    from nbaml.serving.api import create_app

    settings, day = two_models
    Deployment(settings).set_canary(V2, 100, by="drill", why="every game to v2")
    warm = TestClient(create_app())
    before = warm.post("/predictions", json=_slate(day)).json()["predictions"]
    assert {(p["version"], p["role"]) for p in before} == {(V2, "canary")}
    # When: the canary's bundle manifest and its registry item are deleted under the live parameter
    boto3.client("s3").delete_object(Bucket=settings.nbaml_bucket, Key=manifest_key(V2))
    boto3.resource("dynamodb").Table(settings.model_versions_table).delete_item(Key={"version": V2})
    # Then: a cold instance refuses v2 and the champion answers every game; nothing fails
    cold = TestClient(create_app())
    after = cold.post("/predictions", json=_slate(day + dt.timedelta(days=1)))
    assert after.status_code == 200
    assert {(p["version"], p["role"]) for p in after.json()["predictions"]} == {("v1", "champion")}
    health = cold.get("/health").json()
    assert health["active"]["version"] == "v1" and health["canary"] is None
    assert health["last_refusal"]["version"] == V2
    # A warm instance keeps the v2 it verified at load time (an unreachable S3 never unloads a model);
    # it serves the champion as soon as the parameter stops naming v2, and v2 cannot be named again
    assert warm.post("/predictions", json=_slate(day + dt.timedelta(days=2))).status_code == 200
    Deployment(settings).clear_canary(by="drill", why="the canary's bundle is gone")
    answers = warm.post("/predictions", json=_slate(day + dt.timedelta(days=3))).json()["predictions"]
    assert {(p["version"], p["role"]) for p in answers} == {("v1", "champion")}
    with pytest.raises(Exception, match="not registered"):
        Deployment(settings).set_canary(V2, 10, by="drill", why="try again")
    # Nothing lost: every answer of every instance is in the log under the version that gave it
    logged = PredictionLog(settings.predictions_table).all()
    assert {(i["version"], i["role"]) for i in logged if i["served"]} == {(V2, "canary"), ("v1", "champion")}


# ---------------------------------------------------------------- drill 3: two collect runs at once
def _table_items(name: str) -> list[dict[str, Any]]:
    from nbaml.storage.dynamo import scan_all, table

    return sorted(scan_all(table(name)), key=lambda i: json.dumps(i, sort_keys=True, default=str))


class Overlap:
    """Records which thread sent which request on the Games table; holds each thread's first read of it until
    the other thread's first read has come (a two-party barrier in botocore's before-send hook)."""

    def __init__(self, games_table: str) -> None:
        from nbaml.storage import aws

        self.games_table = games_table
        self.events: list[tuple[str, str]] = []
        self._barrier = threading.Barrier(2)
        self._lock = threading.Lock()
        self._held: set[str] = set()
        aws.resource("dynamodb").meta.client.meta.events.register("before-send.dynamodb", self._sent)

    def _sent(self, request: Any, **kwargs: Any) -> None:
        body = json.loads(request.body or b"{}")
        if self.games_table not in {body.get("TableName"), *body.get("RequestItems", {})}:
            return
        operation = str(kwargs["event_name"]).rsplit(".", 1)[-1]
        thread = threading.current_thread().name
        with self._lock:
            self.events.append((thread, operation))
            first_read = operation == "BatchGetItem" and thread not in self._held
            self._held.add(thread)
        if first_read:
            self._barrier.wait(timeout=30)

    def assert_overlapped(self, threads: set[str]) -> None:
        """Each thread's first read came before any write, and every thread then wrote."""
        reads = [n for n, (_, op) in enumerate(self.events) if op == "BatchGetItem"]
        writes = [n for n, (_, op) in enumerate(self.events) if op == "PutItem"]
        first_reads = reads[: len(threads)]
        assert {self.events[n][0] for n in first_reads} == threads and max(first_reads) < min(writes), self.events
        assert {self.events[n][0] for n in writes} == threads, self.events


def test_given_two_collect_runs_at_once_then_the_final_state_is_that_of_one_run(stack: Any, league: Any) -> None:
    from nbaml.collect import collect_recent_games
    from nbaml.features import build_features
    from nbaml.games.history import GameHistory
    from nbaml.storage.artifacts import ArtifactStore

    settings = load_settings(CollectSettings)
    season = league.games(2019)
    run_date = season[0].game_date + dt.timedelta(days=8)
    lookback = dt.timedelta(days=settings.collect_lookback_days)
    window = [g for g in season if run_date - lookback <= g.game_date < run_date]
    today = [g for g in season if g.game_date == run_date]  # on the schedule, not final at 03:00
    # A prediction waiting for its outcome
    game = window[0]
    PredictionLog(settings.predictions_table).record(prediction_of(game, 0.7))
    # When: two runs of the same day start together, and neither writes a game before both have read what the
    # Games table holds (a barrier in botocore's before-send of their BatchGetItem): both find it empty
    barrier = threading.Barrier(2)
    overlap = Overlap(settings.games_table)
    errors: list[BaseException] = []
    reports: list[Any] = []

    def run() -> None:
        try:
            barrier.wait(timeout=10)
            reports.append(collect_recent_games(settings, at=league_time(run_date, dt.time(3)), feed=league))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, name=f"collect-{n}") for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    # The runs overlapped: both read the empty table before either wrote, and then both wrote games
    overlap.assert_overlapped({"collect-1", "collect-2"})
    # and the conditional writes let one run insert each game, the other found it there (no overwrite)
    assert sum(r.upserts["inserted"] for r in reports) == len(window) + len(today)
    assert sum(r.upserts["updated"] for r in reports) == 0
    # Then: one item a game, the training snapshot and the state of one run, the outcome joined once
    games = _table_items(settings.games_table)
    assert sorted(i["game_id"] for i in games) == sorted(g.game_id for g in window + today)
    history = GameHistory(ArtifactStore(settings.nbaml_bucket))
    assert [g.game_id for g in history.games()] == [g.game_id for g in window]
    assert history.load_state().to_dict() == build_features(window).state.to_dict()
    (joined,) = PredictionLog(settings.predictions_table).for_game(game.game_id)
    assert joined["home_won"] is game.home_won
    # And: a third, lone run finds nothing left to do
    again = collect_recent_games(settings, at=league_time(run_date, dt.time(3)), feed=league)
    assert again.upserts["inserted"] == again.upserts["updated"] == 0 and again.state == "unchanged"
    assert _table_items(settings.games_table) == games


# ---------------------------------------------------------------- drill 4: a late result, then a correction
class EditedFeed:
    """The synthetic league as a feed that withholds some results and corrects others (a real feed's habits)."""

    name = "generator"

    def __init__(self, league: Any) -> None:
        self.league = league
        self.withheld: set[str] = set()
        self.corrected: dict[str, Game] = {}

    def fetch_raw(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None) -> list[RawPayload]:
        payloads = []
        for payload in self.league.fetch_raw(start, end, as_of):
            body = json.loads(payload.body)
            body["games"] = [
                self.corrected[g["game_id"]].model_dump(mode="json") if g["game_id"] in self.corrected else g
                for g in body["games"]
                if g["game_id"] not in self.withheld
            ]
            payloads.append(RawPayload(payload.source, payload.key, json.dumps(body).encode(), payload.content_type))
        return payloads

    def parse(self, payloads: list[RawPayload]) -> Any:
        return self.league.parse(payloads)

    def schedule(self, day: dt.date) -> list[Game]:
        return self.league.schedule(day)


def test_given_a_late_and_then_a_corrected_result_then_predictions_and_state_follow(stack: Any, league: Any) -> None:
    from nbaml.collect import collect_recent_games
    from nbaml.features import build_features
    from nbaml.games.history import GameHistory
    from nbaml.storage.artifacts import ArtifactStore

    settings = load_settings(CollectSettings)
    season = league.games(2019)
    late = season[3]
    feed = EditedFeed(league)
    log = PredictionLog(settings.predictions_table)
    for version, role, p in (("v1", "champion", 0.8), (V2, "shadow", 0.3)):
        log.record(prediction_of(late, p, version=version, role=role))
    history = GameHistory(ArtifactStore(settings.nbaml_bucket))
    # Given: the game's result is missing from the feed on the morning after, while later days arrive
    feed.withheld = {late.game_id}
    first_run = late.game_date + dt.timedelta(days=1)
    collect_recent_games(settings, at=league_time(first_run, dt.time(3)), feed=feed)
    collect_recent_games(settings, at=league_time(first_run + dt.timedelta(days=2), dt.time(3)), feed=feed)
    assert all("home_won" not in i for i in log.for_game(late.game_id))
    # When: it arrives late, inside the lookback window, after the state has moved past its date
    feed.withheld = set()
    collect_recent_games(settings, at=league_time(first_run + dt.timedelta(days=3), dt.time(3)), feed=feed)
    # Then: both predictions are scored, and the state equals a rebuild that had the game all along
    seen = [g for g in season if g.game_date < first_run + dt.timedelta(days=3)]
    assert {i["role"]: i["correct"] for i in log.for_game(late.game_id)} == {
        "champion": late.home_won is True,
        "shadow": late.home_won is False,
    }
    assert history.load_state().to_dict() == build_features(seen).state.to_dict()
    # When: the feed corrects the score the other way round
    fixed = late.model_copy(update={"home_score": late.away_score, "away_score": late.home_score})
    feed.corrected = {late.game_id: Game.model_validate(fixed.model_dump())}
    report = collect_recent_games(settings, at=league_time(first_run + dt.timedelta(days=4), dt.time(3)), feed=feed)
    # Then: the predictions are re-joined to the corrected outcome, and the state is rebuilt with it
    assert report.predictions_resolved == 2
    joined = {i["role"]: i for i in log.for_game(late.game_id)}
    assert joined["champion"]["home_won"] is fixed.home_won and joined["champion"]["correct"] is (
        fixed.home_won is True
    )
    assert joined["shadow"]["correct"] is (fixed.home_won is False)
    corrected = [
        fixed if g.game_id == late.game_id else g for g in season if g.game_date < first_run + dt.timedelta(days=4)
    ]
    assert history.load_state().to_dict() == build_features(corrected).state.to_dict()
    stored = boto3.resource("dynamodb").Table(settings.games_table).get_item(Key={"game_id": late.game_id})["Item"]
    assert (int(stored["home_score"]), int(stored["away_score"])) == (fixed.home_score, fixed.away_score)


# ---------------------------------------------------------------- drill 5: the stack restarted mid-replay
def _scheduled(day: dt.date) -> dict[str, Any]:
    return scheduled_event(day)


def test_given_the_stack_restarts_mid_replay_then_registry_active_version_and_data_carry_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra import backup as bk
    from infra import runtime
    from nbaml.games.feeds.generator import SyntheticLeague

    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    seed = 2024
    league = SyntheticLeague(seed=seed)
    history = [g for s in (league.first_season, league.first_season + 1) for g in league.games(s)]
    season = league.games(league.first_season + 2)
    days = sorted({g.game_date for g in season})[:6]
    quiet = QUIET
    collect_env = quiet | {"FEED_SOURCE": "generator", "FEED_SEED": str(seed)}

    def live_day(stack: Any, day: dt.date) -> list[dict[str, Any]]:
        runtime.invoke(stack, "collect", _scheduled(day), extra_env=collect_env)
        return _predict_slate(stack, league, day)

    # Given: a replay under way: history, v1 and v2 trained (v2 active), three days lived
    with stk.deployed(isolated=True, iam=True) as first:
        with runtime.function_environment(first.operator_env("retrain") | quiet):
            _reset()
            # the off-season before the season had no games: the backfill vouches for it
            load(
                load_settings(CommonSettings),
                FeedBatch(games=history),
                source="generator",
                complete_through=days[0] - dt.timedelta(days=1),
            )
            _train(
                TrainConfig(
                    grid={"max_depth": [2], "n_estimators": [20], "learning_rate": [0.1]}, cv_splits=2, n_jobs=1
                )
            )
        served_before = [p for day in days[:3] for p in live_day(first, day)]
        registry_before, active_before = _registry_and_active(first)
        # When: it is backed up and its emulator stops (a `stack down` in the middle of the season)
        bk.backup(bk.StackState.of_local(first), tmp_path / "snapshot")
    assert active_before == V2 and {p["version"] for p in served_before} == {V2}

    # ... and a new emulator comes up, the template is deployed and the snapshot restored
    with stk.deployed(isolated=True, iam=True) as second:
        bk.restore(bk.StackState.of_local(second), tmp_path / "snapshot")
        registry_after, active_after = _registry_and_active(second)
        # Then: the registry and the active version survived the restart
        assert (registry_after, active_after) == (registry_before, active_before)
        # and the replay continues: the day after the restart is collected, predicted by the same model
        served_after = [p for day in days[3:] for p in live_day(second, day)]
        runtime.invoke(second, "collect", _scheduled(days[-1] + dt.timedelta(days=1)), extra_env=collect_env)
        assert {p["version"] for p in served_after} == {V2}
        with runtime.function_environment(second.operator_env("collect") | quiet):
            _reset()
            settings = load_settings(CollectSettings)
            stored = _table_ids(settings.games_table)
            logged = PredictionLog(settings.predictions_table).all()
        # Nothing lost, nothing twice: every game once, every served prediction logged and scored
        # (the last collect also stored its own day's schedule: those games are in Games, not final yet)
        last_collect = days[-1] + dt.timedelta(days=1)
        expected = {g.game_id for g in history} | {g.game_id for g in season if g.game_date <= last_collect}
        assert stored == sorted(expected)
        served_ids = {p["game_id"] for p in served_before + served_after}
        assert {i["game_id"] for i in logged if i["served"]} == served_ids
        assert all("home_won" in i for i in logged if i["game_id"] in served_ids)


def _predict_slate(stack: Any, league: Any, day: dt.date) -> list[dict[str, Any]]:
    """Up to 10 of the day's games through the predict function's app on ``stack``, as a cold instance, at 11:00
    Eastern on ``day`` (before its tip-offs, so they are logged)."""
    from infra import runtime
    from nbaml.serving.api import create_app

    body = {"games": [{"home": g.home, "away": g.away, "date": day.isoformat()} for g in league.schedule(day)][:10]}
    with runtime.function_environment(stack.env_for("predict") | QUIET | {"MODEL_PARAM_MAX_AGE_SECONDS": "0"}):
        _reset()
        app = create_app(now=lambda: league_time(day, dt.time(11)))
        response = TestClient(app).post("/predictions", json=body)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


def _reset() -> None:
    from nbaml.storage import parameters
    from nbaml.storage.aws import reset_clients

    reset_clients()
    parameters.reset_cache()


def _table_ids(name: str) -> list[str]:
    from nbaml.storage.dynamo import scan_all, table

    return sorted(str(i["game_id"]) for i in scan_all(table(name)))


def _registry_and_active(stack: Any) -> tuple[list[dict[str, Any]], str]:
    from infra import runtime
    from nbaml.storage import parameters
    from nbaml.storage.registry import ModelRegistry

    with runtime.function_environment(stack.operator_env("predict")):
        _reset()
        settings = load_settings(CommonSettings)
        return ModelRegistry(settings.model_versions_table).versions(), parameters.read(settings.active_model_param)
