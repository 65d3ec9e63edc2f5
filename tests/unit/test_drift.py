"""Drift rules and the weekly drift job on moto: the rules' behaviour, the report, one retrain a week."""

from __future__ import annotations

import datetime as dt
import math
import random

import boto3
import pytest
from aws_lambda_powertools.metrics import Metrics

from nbaml import layout
from nbaml.config import DriftSettings, RetrainSettings, load_settings
from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.features import FEATURE_NAMES
from nbaml.games.records import Game
from nbaml.metrics import expected_log_loss, log_loss
from nbaml.monitoring import rules
from nbaml.monitoring.drift import check_drift
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
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


def test_given_a_calibrated_model_when_nothing_changed_then_the_sequential_rule_stays_quiet_for_a_season() -> None:
    # With no allowance on the surprise arm the CUSUM is a reflected random walk: it does cross its limit
    # now and then (about once in 1,900 games here; bench_drift_rules counts those requests), not in a season.
    result = rules.sequential_rule(calibrated(1230, seed=3))
    assert not result.fired and result.n == 1230
    assert all(not arm["fired"] for arm in result.arms)


def test_given_outcomes_running_against_the_model_then_the_surprise_arm_fires() -> None:
    good = calibrated(300, seed=5)
    bad = [(p, not w) for p, w in calibrated(150, seed=6)]  # outcomes now run against the model
    result = rules.sequential_rule(good + bad)
    surprise, sharpness = result.arms
    assert result.fired and surprise["fired"] and surprise["statistic"] > surprise["limit"]
    assert not sharpness["fired"], "the model is as sure as before: only the surprise arm has evidence"


def test_given_a_calibrated_model_turning_unsure_then_only_the_sharpness_arm_sees_it() -> None:
    rng = random.Random(8)
    unsure = []
    for _ in range(200):
        p = rng.uniform(0.5, 0.65)  # probabilities fallen toward the home-win rate, still calibrated
        unsure.append((p, rng.random() < p))
    result = rules.sequential_rule(calibrated(600, seed=7) + unsure)
    surprise, sharpness = result.arms
    assert result.fired and sharpness["fired"] and not surprise["fired"]


def test_given_a_restart_after_the_last_game_then_the_rule_waits_for_new_evidence() -> None:
    bad = [(p, not w) for p, w in calibrated(300, seed=6)]
    assert rules.sequential_rule(bad).fired
    again = rules.sequential_rule(bad, start=len(bad))
    assert not again.fired and again.n == 0
    assert not rules.sequential_rule(bad, start=len(bad) - 30).fired, "30 games are fewer than MIN_GAMES"
    assert rules.sequential_rule(bad, start=len(bad) - 60).fired


def test_expected_log_loss_is_the_entropy_of_the_probability() -> None:
    assert expected_log_loss(0.5) == pytest.approx(math.log(2))
    assert expected_log_loss(0.8) == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    pairs = calibrated(40000, seed=9)  # a calibrated forecaster's observed log-loss meets its expectation
    observed = log_loss([w for _, w in pairs], [p for p, _ in pairs])
    assert observed == pytest.approx(sum(expected_log_loss(p) for p, _ in pairs) / len(pairs), abs=0.01)


def test_given_fifty_games_the_seed_rule_fires_on_a_drop_over_threshold_only() -> None:
    assert rules.seed_rule([True] * 30 + [False] * 20, 0.66).fired  # 0.60 vs 0.66: drop 0.06
    assert not rules.seed_rule([True] * 32 + [False] * 18, 0.66).fired  # 0.64: drop 0.02
    assert not rules.seed_rule([True] * 10, 0.66).fired  # too few


def week_of_margins(n: int, seed: int, *, home_share: float = 1.0) -> list[float]:
    """Home minus away score of ``n`` games: about 112 points a side, home advantage 3, a margin spread of 14."""
    rng = random.Random(seed)
    margins = []
    for _ in range(n):
        away = rng.gauss(112, 10)
        home = away + rng.gauss(3, 14)
        margins.append(home * home_share - away)
    return margins


def test_given_the_feeds_results_when_home_scores_come_low_then_the_results_check_alarms_and_only_then() -> None:
    reference = rules.results_reference(week_of_margins(5000, seed=1))
    assert reference["games"] == 5000 and 2.5 < reference["home_margin_mean"] < 3.5
    normal = [rules.results_drift(week_of_margins(50, seed=s), reference) for s in range(2, 40)]
    assert all(r["judged"] and not r["alarm"] for r in normal), [r["z"] for r in normal if r["alarm"]]
    low = rules.results_drift(week_of_margins(50, seed=41, home_share=0.85), reference)
    assert low["alarm"] and low["z"] < -rules.RESULTS_Z and low["home_margin"] < -10
    # no verdict on too few games or without a reference (a bundle trained before the check existed)
    few = rules.results_drift(week_of_margins(rules.MIN_RESULTS_GAMES - 1, seed=43, home_share=0.85), reference)
    assert not few["judged"] and not few["alarm"]
    assert not rules.results_drift(week_of_margins(50, seed=44, home_share=0.85), {})["judged"]


def test_psi_is_zero_for_the_training_distribution_and_large_for_a_shift() -> None:
    edges = [1.0, 2.0, 3.0]
    shares = [0.25, 0.25, 0.25, 0.25]
    assert rules.psi(shares, edges, [0.5, 1.5, 2.5, 3.5] * 10) < 1e-9
    assert rules.psi(shares, edges, [3.5] * 40) > 0.2


def v1_active(config) -> DriftSettings:
    """v1 trained on the loaded history and promoted (a forced manual retrain); drift_check's settings."""
    pipeline.retrain(
        load_settings(RetrainSettings),
        RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", force=True),
        config=config,
    )
    return load_settings(DriftSettings)


def test_given_a_live_model_going_wrong_when_drift_check_runs_then_it_reports_and_requests_one_retrain(
    stack, loaded_history, fast_config
) -> None:
    settings = v1_active(fast_config)
    log = PredictionLog(settings.predictions_table)
    games = [g for g in loaded_history if g.season == loaded_history[-1].season][-600:]
    run_date = games[-1].game_date + dt.timedelta(days=1)
    window = run_date - dt.timedelta(days=28)  # the PSI window; the four weeks before it are its reference
    for game in games:
        # confidently wrong: the model backs the team that lost; and the feed broke at the window's start
        features = [0.0 if game.game_date < window else 1000.0] * len(FEATURE_NAMES)
        log.record(prediction_of(game, 0.2 if game.home_won else 0.8, features=features))
    log.resolve(games)

    report = check_drift(settings, run_date=run_date)
    assert report.drift and report.retrain_requested
    assert report.sections["rule"]["rule"] == "sequential" and report.sections["other_rule"]["fired"]
    assert report.sections["performance"]["accuracy"] == 0.0
    assert report.sections["coverage"]["share"] == 1.0
    assert report.sections["psi"]["judged"] and report.sections["psi"]["n_before"] >= 100
    assert set(report.sections["psi"]["alarm"]) >= set(FEATURE_NAMES) - {"home_injury_impact", "away_injury_impact"}
    again = check_drift(settings, run_date=run_date)
    assert again.drift and not again.retrain_requested, "a re-run gives the same verdict, and one retrain a week"
    messages = boto3.client("sqs").receive_message(QueueUrl=settings.retrain_queue_url, MaxNumberOfMessages=10)
    assert len(messages["Messages"]) == 1 and '"drift"' in messages["Messages"][0]["Body"]
    store = ArtifactStore(settings.nbaml_bucket)
    html = store.get_bytes(layout.report_key(layout.DRIFT_HTML)).decode()
    assert "<svg" in html and "DRIFT" in html
    assert store.get_json(layout.report_key(layout.DRIFT_JSON, run_date))["drift"] is True


def _lowered(home: int, away: int) -> int:
    """A home score 15 % low, as a broken feed sends it (one point lower where that would tie: no NBA tie)."""
    low = round(home * 0.85)
    return low - 1 if low == away else low


def test_given_a_feed_whose_home_scores_come_low_when_drift_check_runs_then_the_results_alarm_not_a_retrain(
    stack, loaded_history, fast_config
) -> None:
    settings = v1_active(fast_config)
    season = [g for g in loaded_history if g.season == loaded_history[-1].season]
    run_date = season[-1].game_date + dt.timedelta(days=1)
    week = run_date - dt.timedelta(days=rules.RESULTS_DAYS)
    # the feed's last week: every home score 15 % low, stored as collect would store a corrected result
    low = [
        Game.model_validate(g.model_dump() | {"home_score": _lowered(g.home_score, g.away_score)})
        for g in season
        if g.game_date >= week
    ]
    assert len(low) >= rules.MIN_RESULTS_GAMES
    GameStore(settings.games_table).upsert(low)
    log = PredictionLog(settings.predictions_table)
    games = season[-400 : -len(low)] + low
    for game in games:
        log.record(prediction_of(game, 0.5))  # a model with no view: the performance rule has nothing to see
    log.resolve(games)

    metrics = Metrics(namespace="nbaml-test", service="nbaml")
    report = check_drift(settings, run_date=run_date, metrics=metrics)
    results = report.sections["results"]
    assert results["judged"] and results["alarm"] and results["n"] == len(low)
    assert results["z"] < -rules.RESULTS_Z and results["home_margin"] < results["expected"] - 10
    assert metrics.metric_set["FeedResultsDrift"]["Value"] == [1.0]
    # retraining on a broken feed fixes nothing: no drift verdict, no retrain queued; the report says it
    assert not report.drift and not report.retrain_requested
    assert "Messages" not in boto3.client("sqs").receive_message(QueueUrl=settings.retrain_queue_url)
    html = ArtifactStore(settings.nbaml_bucket).get_bytes(layout.report_key(layout.DRIFT_HTML)).decode()
    assert "ALARM: check the feed" in html


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
    settings = v1_active(fast_config)
    log = PredictionLog(settings.predictions_table)
    games = [g for g in loaded_history if g.season == loaded_history[-1].season][-100:]
    for game in games:
        log.record(prediction_of(game, 0.6, features=[0.0] * len(FEATURE_NAMES)))
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


def test_given_a_drift_retrain_that_did_not_replace_the_champion_then_the_next_week_does_not_requeue(
    stack, loaded_history, fast_config
) -> None:
    """The evidence restarts after a firing: with the champion still active a week later (its retrain was
    rejected, or went to canary or shadow), the old evidence does not queue a second retrain."""
    settings = v1_active(fast_config)
    log = PredictionLog(settings.predictions_table)
    games = [g for g in loaded_history if g.season == loaded_history[-1].season][-300:]
    wrong, later = games[:280], games[280:]
    for game in games:
        log.record(prediction_of(game, 0.2 if game.home_won else 0.8, features=[0.0] * len(FEATURE_NAMES)))
    log.resolve(wrong)
    first = wrong[-1].game_date + dt.timedelta(days=1)
    assert check_drift(settings, run_date=first).retrain_requested

    log.resolve(later)  # a few more wrong games, fewer than the rule needs after its restart
    week_after = first + dt.timedelta(days=7)
    report = check_drift(settings, run_date=week_after)
    assert not report.drift and not report.retrain_requested, report.sections["rule"]
    assert report.sections["rule"]["n"] == len(later), "only the games after the firing count"
