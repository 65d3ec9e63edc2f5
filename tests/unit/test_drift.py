"""Drift rules and the weekly drift job on moto: the rules' behaviour, the report, one retrain a week."""

from __future__ import annotations

import datetime as dt
import random

import boto3

from nbaml import layout
from nbaml.config import DriftSettings, RetrainSettings, load_settings
from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.features import FEATURE_NAMES
from nbaml.metrics import log_loss
from nbaml.monitoring import rules
from nbaml.monitoring.drift import check_drift
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.predictions import PredictionLog
from nbaml.training import pipeline
from tests.conftest import prediction_of


def calibrated(n: int, seed: int = 1) -> list[tuple[float, bool]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        p = rng.uniform(0.3, 0.85)
        pairs.append((p, rng.random() < p))
    return pairs


def baseline_log_loss(pairs: list[tuple[float, bool]]) -> float:
    return log_loss([w for _, w in pairs], [p for p, _ in pairs])


def test_given_a_calibrated_model_when_nothing_changed_then_cusum_stays_quiet() -> None:
    history = calibrated(5000, seed=3)
    reference = baseline_log_loss(calibrated(20000, seed=4))
    assert not rules.cusum_rule(history, reference).fired


def test_given_predictions_gone_bad_when_checked_then_cusum_fires() -> None:
    reference = baseline_log_loss(calibrated(20000, seed=4))
    good = calibrated(300, seed=5)
    bad = [(p, not w) for p, w in calibrated(150, seed=6)]  # outcomes now run against the model
    result = rules.cusum_rule(good + bad, reference)
    assert result.fired and result.statistic > result.limit


def test_given_fifty_games_the_seed_rule_fires_on_a_drop_over_threshold_only() -> None:
    assert rules.seed_rule([True] * 30 + [False] * 20, 0.66).fired  # 0.60 vs 0.66: drop 0.06
    assert not rules.seed_rule([True] * 32 + [False] * 18, 0.66).fired  # 0.64: drop 0.02
    assert not rules.seed_rule([True] * 10, 0.66).fired  # too few


def test_psi_is_zero_for_the_training_distribution_and_large_for_a_shift() -> None:
    edges = [1.0, 2.0, 3.0]
    shares = [0.25, 0.25, 0.25, 0.25]
    assert rules.psi(shares, edges, [0.5, 1.5, 2.5, 3.5] * 10) < 1e-9
    assert rules.psi(shares, edges, [3.5] * 40) > 0.2


def test_given_a_live_model_going_wrong_when_drift_check_runs_then_it_reports_and_requests_one_retrain(
    stack, loaded_history, fast_config
) -> None:
    retrain = load_settings(RetrainSettings)
    pipeline.retrain(
        retrain, RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", force=True), config=fast_config
    )
    settings = load_settings(DriftSettings)
    log = PredictionLog(settings.predictions_table)
    games = [g for g in loaded_history if g.season == loaded_history[-1].season][-300:]
    for game in games:
        # confidently wrong: the model backs the team that lost
        log.record(prediction_of(game, 0.2 if game.home_won else 0.8, features=[0.0] * len(FEATURE_NAMES)))
    log.resolve(games)
    run_date = games[-1].game_date + dt.timedelta(days=1)

    report = check_drift(settings, run_date=run_date)
    assert report.drift and report.retrain_requested
    assert report.sections["rule"]["rule"] == "sequential" and report.sections["other_rule"]["fired"]
    assert report.sections["performance"]["accuracy"] == 0.0
    assert report.sections["coverage"]["share"] == 1.0
    assert report.sections["psi"]["alarm"], "all-zero features are far from the training distribution"
    again = check_drift(settings, run_date=run_date)
    assert again.drift and not again.retrain_requested, "one retrain a week"
    messages = boto3.client("sqs").receive_message(QueueUrl=settings.retrain_queue_url, MaxNumberOfMessages=10)
    assert len(messages["Messages"]) == 1 and '"drift"' in messages["Messages"][0]["Body"]
    store = ArtifactStore(settings.nbaml_bucket)
    html = store.get_bytes(layout.report_key(layout.DRIFT_HTML)).decode()
    assert "<svg" in html and "DRIFT" in html
    assert store.get_json(layout.report_key(layout.DRIFT_JSON, run_date))["drift"] is True


def test_given_no_active_model_when_drift_check_runs_then_it_says_so(stack) -> None:
    report = check_drift(load_settings(DriftSettings), run_date=dt.date(2023, 1, 2))
    assert not report.drift and report.reasons == ["no active model"]


def _hold_back(day: dt.date, pending: list) -> None:
    """The league calendar as a collect leaves it when ``pending`` of ``day`` were not final yet."""
    from nbaml.config import CommonSettings
    from nbaml.games.calendar import LeagueCalendar
    from nbaml.games.feeds.base import unscored
    from nbaml.games.history import GameHistory
    from nbaml.games.teams import league_time

    history = GameHistory(ArtifactStore(load_settings(CommonSettings).nbaml_bucket))
    calendar = LeagueCalendar.backfilled(day - dt.timedelta(days=1)).record(
        (day, day), [unscored(g) for g in pending], league_time(day, dt.time(22))
    )
    history.save_calendar(calendar, str(history.state_digest()))


def test_given_an_incomplete_last_day_when_drift_check_runs_then_it_skips_that_day_and_says_why(
    stack, loaded_history, fast_config
) -> None:
    pipeline.retrain(
        load_settings(RetrainSettings),
        RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", force=True),
        config=fast_config,
    )
    settings = load_settings(DriftSettings)
    log = PredictionLog(settings.predictions_table)
    games = [g for g in loaded_history if g.season == loaded_history[-1].season][-100:]
    for game in games:
        log.record(prediction_of(game, 0.6, features=[0.0] * 20))
    log.resolve(games)
    last = games[-1].game_date
    on_last = [g for g in games if g.game_date == last]
    # Given: the last day's results arrived for some games only (the rest still pending at collect)
    _hold_back(last, on_last[:1])
    # When
    report = check_drift(settings, run_date=last + dt.timedelta(days=1))
    # Then: none of that day's predictions counted, and the report names the day and its pending game
    assert report.sections["performance"]["n"] == len(games) - len(on_last)
    assert report.sections["completeness"]["complete_through"] == (last - dt.timedelta(days=1)).isoformat()
    assert report.summary()["skipped_days"] == {last.isoformat(): f"1 game(s) not final: {on_last[0].game_id}"}
    html = ArtifactStore(settings.nbaml_bucket).get_bytes(layout.report_key(layout.DRIFT_HTML)).decode()
    assert "Days skipped" in html and on_last[0].game_id in html


def test_given_an_incomplete_last_day_when_retrain_runs_then_it_trains_without_it_and_records_why(
    stack, loaded_history, fast_config
) -> None:
    last = loaded_history[-1].game_date
    on_last = [g for g in loaded_history if g.game_date == last]
    _hold_back(last, on_last[:1])
    outcome = pipeline.retrain(
        load_settings(RetrainSettings),
        RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", force=True),
        config=fast_config,
    )
    from nbaml.storage.registry import ModelRegistry

    item = ModelRegistry(load_settings(RetrainSettings).model_versions_table).get(outcome.version)
    bundle = ArtifactStore(load_settings(RetrainSettings).nbaml_bucket).get_json(
        layout.bundle_key(outcome.version, layout.METADATA_FILE)
    )
    expected = {last.isoformat(): f"1 game(s) not final: {on_last[0].game_id}"}
    assert bundle["completeness"]["skipped_days"] == item["completeness"]["skipped_days"] == expected
    assert bundle["training_window"]["holdout_end"] < last.isoformat()  # the day's final games left out too
