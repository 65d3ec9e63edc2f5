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
