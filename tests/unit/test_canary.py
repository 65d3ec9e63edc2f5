"""The canary's sequential test on numbers, and its rollout (steps, abort, operator moves, rules) on moto."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from nbaml.errors import ConflictError
from nbaml.promotion import evidence as ev
from nbaml.promotion.steps import next_step, parse_steps
from tests.conftest import V2, prediction_of
from tests.unit import test_serving

TEST = ev.SequentialTest()  # the template's numbers (CANARY_* in template.yaml)


# ---------------------------------------------------------------- the statistics, on numbers
def test_given_the_mixture_boundary_then_it_is_the_formula_worked_by_hand() -> None:
    # rho2 for alpha 0.05 tuned to 100: (2 ln 20 + ln(2 ln 20 + 1)) / 100
    two_log = 2 * math.log(20)
    rho2 = (two_log + math.log(two_log + 1)) / 100
    assert ev.mixture_rho2(0.05, 100) == pytest.approx(rho2)
    expected = math.sqrt((100 + 1 / rho2) * (two_log + math.log(1 + 100 * rho2))) / 100
    assert ev.half_width(100, 1.0, 0.05, 100) == pytest.approx(expected)
    # (100 + 12.60) * (5.9915 + 2.1901) = 921.3, sqrt 30.35: 1.55 times the fixed-sample 1.96 / sqrt(100)
    assert expected == pytest.approx(0.3035, abs=1e-4)
    # wider for a smaller alpha, narrower with more games, proportional to the deviation
    assert ev.half_width(100, 1.0, 0.01, 100) > expected > ev.half_width(400, 1.0, 0.05, 100)
    assert ev.half_width(100, 0.1, 0.05, 100) == pytest.approx(expected / 10)


def test_given_paired_games_then_the_difference_is_canary_minus_champion_log_loss() -> None:
    # home won; the champion said 0.6, the canary 0.8: the canary did better, so d < 0
    (d,) = ev.paired_differences([(True, 0.6, 0.8)])
    assert d == pytest.approx(math.log(0.6) - math.log(0.8))
    assert d < 0


def test_given_clearly_worse_differences_then_the_canary_is_aborted_with_its_figures() -> None:
    rng = random.Random(1)
    worse = [rng.gauss(0.06, 0.15) for _ in range(60)]
    result = ev.decide(worse, TEST)
    assert result.decision == "abort"
    assert result.lower > 0 and result.n == 60
    assert "worse than the champion" in result.reason and "n=60" in result.summary()


def test_given_an_equal_canary_with_a_small_spread_then_it_advances_once_the_bound_clears_the_margin() -> None:
    rng = random.Random(2)
    equal = [rng.gauss(0.0, 0.02) for _ in range(200)]
    early, late = ev.decide(equal[:50], TEST), ev.decide(equal, TEST)
    assert late.decision == "advance" and late.upper < TEST.margin
    assert early.upper > late.upper  # the bound tightens with games


def test_given_too_few_games_then_the_test_holds_whatever_they_say() -> None:
    assert ev.decide([0.5] * 10, TEST).decision == "hold"  # very bad, but 10 games
    assert ev.decide([], TEST).decision == "hold"
    assert ev.decide([0.0] * (TEST.min_games - 1), TEST).decision == "hold"


def test_given_identical_models_then_the_deviation_floor_still_needs_min_games() -> None:
    result = ev.decide([0.0] * TEST.min_games, TEST)
    assert result.sd == TEST.sd_floor and result.decision == "advance"


def test_given_a_canary_not_shown_non_inferior_in_max_games_then_it_is_futile() -> None:
    rng = random.Random(3)
    unlike = [rng.gauss(0.02, 0.3) for _ in range(TEST.max_games)]  # a shuffled-label model's spread
    result = ev.decide(unlike, TEST)
    assert result.decision == "futile" and "not shown non-inferior in 100" in result.reason
    assert result.lower < 0 and result.upper > TEST.margin
    assert ev.decide(unlike[:-1], TEST).decision == "hold"


def weekly_fates(mean: float, noise, runs: int, test: ev.SequentialTest = TEST, week: int = 50) -> list[str]:
    """The decision each simulated canary meets, judged every ``week`` games (the drift check's cadence)."""
    fates = []
    for draws in mean + noise((runs, test.max_games)):
        fate = "hold"
        for n in range(week, test.max_games + 1, week):
            fate = ev.decide(draws[:n].tolist(), test).decision
            if fate != "hold":
                break
        fates.append(fate)
    return fates


@pytest.mark.parametrize("tails", ["gaussian", "student-t 3 df"])
def test_given_many_simulated_canaries_then_both_error_rates_stay_under_their_alphas(tails: str) -> None:
    # Weekly looks at differences with the spread of a monthly retrain (0.015) and of a swapped model (0.17).
    import numpy as np

    rng = np.random.default_rng(4)
    runs = 300
    for sd in (0.015, 0.17):
        if tails == "gaussian":

            def noise(shape, sd=sd):
                return rng.normal(0, sd, shape)
        else:

            def noise(shape, sd=sd):
                return rng.standard_t(3, shape) * sd / math.sqrt(3)  # Student t, 3 df: variance 3

        worse = weekly_fates(TEST.margin, noise, runs)  # worse by exactly the margin
        equal = weekly_fates(0.0, noise, runs)
        # the costly error: a canary worse by the margin advanced; the other: an equal one shown worse
        assert worse.count("advance") / runs <= TEST.alpha_promote, (sd, worse.count("advance"))
        assert equal.count("abort") / runs <= TEST.alpha_abort, (sd, equal.count("abort"))
    # and power where the spread allows it: an equal retrain advances at its first look, never futile
    fates = weekly_fates(0.0, lambda shape: rng.normal(0, 0.015, shape), 200)
    assert fates.count("advance") >= 190 and fates.count("futile") == 0


def test_given_a_wrong_configuration_then_the_test_refuses_it() -> None:
    with pytest.raises(ValueError):
        ev.SequentialTest(alpha_promote=0)
    with pytest.raises(ValueError):
        ev.SequentialTest(min_games=700, max_games=600)


def test_given_steps_text_then_it_parses_or_names_what_is_wrong() -> None:
    assert parse_steps("10,50,100") == (10, 50, 100)
    assert next_step((10, 50, 100), 10) == 50 and next_step((10, 50, 100), 25) == 50
    assert next_step((10, 50, 100), 50) == 100
    for bad in ("10,50", "50,10,100", "0,100", "ten,100", ""):
        with pytest.raises(ValueError, match="canary steps"):
            parse_steps(bad)


# ---------------------------------------------------------------- the rollout, on moto
@pytest.fixture
def rollout(registered_versions, monkeypatch):
    from nbaml.config import DriftSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.promotion.canary import Rollout

    monkeypatch.setenv("CANARY_MIN_GAMES", "20")  # fewer games to log: the rule, not the statistics, is tested
    settings = load_settings(DriftSettings)
    return Rollout(Deployment(settings), settings.steps, settings.canary_step_games)


def _log_pairs(settings, games, champion_p, canary_p, *, canary: str = V2) -> None:
    """Champion (v1) and canary predictions on ``games``, resolved."""
    from nbaml.storage.predictions import PredictionLog

    log = PredictionLog(settings.predictions_table)
    for game in games:
        log.record(prediction_of(game, champion_p(game), version="v1"))
        log.record(prediction_of(game, canary_p(game), version=canary, role="canary"))
    log.resolve(games)


def _truthful(game, confidence: float = 0.65) -> float:
    return confidence if game.home_won else 1 - confidence


def _judge(rollout, day: dt.date):
    from nbaml.promotion.canary import sequential_test
    from nbaml.storage.predictions import PredictionLog

    settings = rollout.deployment.settings
    return rollout.judge(PredictionLog(settings.predictions_table), sequential_test(settings), day)


def _history(settings, name: str) -> list[str]:
    from nbaml.storage import parameters

    return [c.value for c in parameters.history(getattr(settings, name))]


def test_given_a_worse_canary_when_the_drift_check_judges_it_then_it_is_cleared_and_rejected_with_figures(
    rollout, loaded_history
) -> None:
    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    assert rollout.registry.get(V2)["status"] == "canary"
    games = loaded_history[-30:]
    _log_pairs(settings, games, _truthful, lambda g: _truthful(g, 0.35))  # the canary is confidently wrong

    judgement = _judge(rollout, dt.date(2021, 6, 7))

    assert judgement.action == "aborted" and judgement.evidence.lower > 0
    assert rollout.deployment.canary() is None
    record = rollout.registry.get(V2)
    assert record["status"] == "rejected"
    assert "canary aborted by canary-rule" in record["rejected_because"][0] and "n=30" in record["rejected_because"][0]
    assert record["canary_evidence"]["decision"] == "abort"
    assert record["canary"]["checks"][-1]["action"] == "aborted"
    assert _history(settings, "canary_model_param")[-2:] == [f"{V2}:10", "none"]
    assert rollout.deployment.active() == "v1"


def test_given_a_good_canary_when_judged_weekly_then_it_climbs_one_step_per_week_to_active(
    rollout, loaded_history
) -> None:
    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    week = iter([loaded_history[-90:-60], loaded_history[-60:-30], loaded_history[-30:-20], loaded_history[-20:]])
    equal = (lambda g: _truthful(g, 0.62), lambda g: _truthful(g, 0.62) + (0.004 if g.home_won else -0.004))

    actions = []
    for day in (dt.date(2021, 6, 7), dt.date(2021, 6, 14), dt.date(2021, 6, 21), dt.date(2021, 6, 28)):
        _log_pairs(settings, next(week), *equal)
        actions.append(_judge(rollout, day).action)

    # 30 games: 10 -> 50; 30 more: 50 -> 100 (active); the third and fourth checks find no canary
    assert actions[:2] == ["advanced", "promoted"]
    assert rollout.deployment.active() == V2 and rollout.deployment.canary() is None
    assert _history(settings, "canary_model_param")[-3:] == [f"{V2}:10", f"{V2}:50", "none"]
    assert _history(settings, "active_model_param")[-1] == V2
    record = rollout.registry.get(V2)
    assert record["status"] == "active" and rollout.registry.get("v1")["status"] == "inactive"
    steps = [h["to"] for h in record["history"]]
    assert steps[-3:] == ["canary", "canary", "active"]
    assert "n=30" in record["history"][-2]["why"] and "n=60" in record["history"][-1]["why"]
    assert [c["percent"] for c in record["canary"]["checks"]] == [10, 50]


def test_given_a_step_with_too_few_new_games_then_the_canary_holds_at_that_step(rollout, loaded_history) -> None:
    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    equal = (lambda g: _truthful(g, 0.62), lambda g: _truthful(g, 0.62))
    _log_pairs(settings, loaded_history[-40:-10], *equal)
    assert _judge(rollout, dt.date(2021, 6, 7)).action == "advanced"
    _log_pairs(settings, loaded_history[-10:], *equal)  # 10 more: below the 25 a step needs
    judgement = _judge(rollout, dt.date(2021, 6, 14))
    assert judgement.action == "hold" and "10 paired games at 50 % (a step needs 25)" in judgement.detail
    assert rollout.deployment.canary().percent == 50


def test_given_an_operator_pauses_then_checks_change_nothing_until_resumed(rollout, loaded_history) -> None:
    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    rollout.pause(by="ops", why="watching a feed incident")
    with pytest.raises(ConflictError, match="already paused"):
        rollout.pause(by="ops", why="twice")
    _log_pairs(settings, loaded_history[-30:], _truthful, lambda g: _truthful(g, 0.35))

    judgement = _judge(rollout, dt.date(2021, 6, 7))

    assert judgement.action == "paused" and judgement.evidence.decision == "abort"
    assert rollout.deployment.canary().percent == 10
    rollout.resume(by="ops", why="incident over")
    assert _judge(rollout, dt.date(2021, 6, 8)).action == "aborted"
    whys = [h["why"] for h in rollout.registry.get(V2)["history"]]
    assert any(w.startswith("canary paused: watching") for w in whys)
    assert any(w.startswith("canary resumed: incident") for w in whys)


def test_given_an_operator_forces_steps_and_aborts_then_each_is_recorded(rollout) -> None:
    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    change = rollout.advance(by="ops", why="the business wants it at half")
    assert (change.before, change.after) == (f"{V2}:10", f"{V2}:50")
    rollout.abort(by="ops", why="a customer complaint")
    assert rollout.deployment.canary() is None
    record = rollout.registry.get(V2)
    assert record["status"] == "rejected"
    assert record["rejected_because"] == ["canary aborted by ops: a customer complaint"]
    assert [m["by"] for m in record["canary"]["moves"]] == ["ops", "ops"]
    ssm = __import__("nbaml.storage.parameters", fromlist=["history"]).history(settings.canary_model_param)
    assert "the business wants it at half" in ssm[-2].description and "a customer complaint" in ssm[-1].description


def test_given_a_canary_past_its_first_step_when_a_new_candidate_arrives_then_it_waits(
    rollout, trained_bundles
) -> None:
    from nbaml.promotion.canary import DeferredError

    third = _register_third(rollout)
    rollout.start(V2, by="retrain", why="gates passed")
    # at its first step, the newer candidate replaces it
    rollout.start(third, by="retrain", why="newer")
    assert rollout.deployment.canary().version == third
    assert rollout.registry.get(V2)["status"] == "candidate"
    assert "replaced as canary by" in rollout.registry.get(V2)["history"][-1]["why"]
    # past its first step, it keeps its place
    rollout.advance(by="ops", why="to half")
    with pytest.raises(DeferredError, match="past its first step"):
        rollout.start(V2, by="retrain", why="another")
    assert rollout.deployment.canary() == type(rollout.deployment.canary())(third, 50)


def test_given_a_canary_when_the_champion_is_rolled_back_then_the_canary_is_cleared(rollout) -> None:
    deployment = rollout.deployment
    third = _register_third(rollout)
    deployment.promote(third, by="ops", why="try the third")
    rollout.start(V2, by="retrain", why="gates passed")
    deployment.rollback(by="ops", why="the third misbehaves")
    assert deployment.active() == "v1" and deployment.canary() is None
    assert rollout.registry.get(V2)["status"] == "candidate"
    assert "clears the canary" in rollout.registry.get(V2)["history"][-1]["why"]


def _register_third(rollout) -> str:
    """A third registered version (a fast model on the same history)."""
    import json

    from nbaml.games.feeds.generator import SyntheticLeague
    from nbaml.training.candidate import train_candidate
    from nbaml.training.search import TrainConfig
    from tests.conftest import FAST_TRAIN

    version = "v20210603_000000"
    league = SyntheticLeague(seed=7)
    games = [g for season in (2019, 2020) for g in league.games(season)]
    files = train_candidate(games, version=version, config=TrainConfig(**FAST_TRAIN, seed=5)).bundle.to_files()
    rollout.deployment.store.write_bundle_files(version, files)
    meta = json.loads(files["metadata.json"])
    rollout.registry.register(version, {"metrics": meta["metrics"]}, by="test", why="a third model")
    return version


def test_given_a_canary_when_the_drift_check_runs_then_its_report_and_metrics_show_the_step(
    rollout, loaded_history
) -> None:
    from aws_lambda_powertools.metrics import Metrics

    from nbaml import layout
    from nbaml.monitoring.drift import check_drift

    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    _log_pairs(settings, loaded_history[-30:], _truthful, lambda g: _truthful(g, 0.35))
    metrics = Metrics(namespace="nbaml-test", service="drift_check")
    metrics.clear_metrics()
    try:
        report = check_drift(settings, run_date=loaded_history[-1].game_date + dt.timedelta(days=1), metrics=metrics)
        emitted = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()

    evidence = report.sections["canary"]["evidence"]
    assert evidence["n"] == 30 and evidence["mean"] > 0
    assert report.summary()["canary"] == {
        "version": V2,
        "percent": 10,
        "action": "aborted",
        "n": 30,
        "mean": evidence["mean"],
    }
    assert emitted["CanaryAborted"] == [1.0] and emitted["CanaryLogLossDifference"][0] > 0
    html = rollout.deployment.store.get_bytes(layout.report_key(layout.DRIFT_HTML)).decode()
    assert f"Canary {V2} at 10 %: aborted" in html and "margin 0.01" in html and "<td>aborted</td>" in html


# ---------------------------------------------------------------- the operator's moves through the admin API
served = test_serving.served  # v1 active, V2 registered, the app built with its admin token


def test_given_a_canary_when_an_operator_moves_it_through_the_admin_api_then_each_move_is_recorded(served) -> None:
    client, settings, _ = served
    admin = test_serving.ADMIN
    start = client.put("/admin/canary", json={"version": V2, "percent": 10, "reason": "try v2"}, headers=admin)
    assert start.status_code == 200

    paused = client.post("/admin/canary/pause", json={"reason": "feed incident"}, headers=admin)
    assert paused.status_code == 200 and paused.json()["why"] == "paused: feed incident"
    assert client.post("/admin/canary/pause", json={"reason": "again"}, headers=admin).status_code == 409
    assert client.post("/admin/canary/resume", json={"reason": "incident over"}, headers=admin).status_code == 200
    advanced = client.post("/admin/canary/advance", json={"reason": "ahead of plan"}, headers=admin).json()
    assert (advanced["before"], advanced["after"]) == (f"{V2}:10", f"{V2}:50")
    assert client.post("/admin/canary/abort", json={"reason": "complaints"}, headers=admin).status_code == 200
    assert client.post("/admin/canary/abort", json={"reason": "twice"}, headers=admin).status_code == 404
    assert client.post("/admin/canary/advance", json={}, headers=admin).status_code == 422
    assert client.post("/admin/canary/pause", json={"reason": "no token"}).status_code == 401

    from nbaml.storage.registry import ModelRegistry

    record = ModelRegistry(settings.model_versions_table).get(V2)
    assert record["status"] == "rejected" and record["rejected_because"] == ["canary aborted by admin-api: complaints"]
    assert [m["why"] for m in record["canary"]["moves"]] == [
        "paused: feed incident",
        "resumed: incident over",
        "ahead of plan",
        "complaints",
    ]


def test_given_the_cli_when_a_move_is_asked_then_it_parses_refuses_mixtures_and_acts_through_the_rollout(
    rollout,
) -> None:
    import argparse

    from infra import InfraError, operator

    parser = argparse.ArgumentParser()
    operator.register(parser.add_subparsers())
    args = parser.parse_args(["canary", "--advance", "--reason", "ahead of plan"])
    assert (args.advance, args.pause, args.version) == (True, False, None)
    with pytest.raises(SystemExit):  # one move at a time
        parser.parse_args(["canary", "--pause", "--abort", "--reason", "x"])
    with pytest.raises(InfraError, match="acts on the canary in flight"):
        operator._canary(parser.parse_args(["canary", V2, "--pause", "--reason", "x"]))

    rollout.start(V2, by="retrain", why="gates passed")
    change = operator._canary_move(rollout.deployment, "advance", "alice", "ahead of plan")
    assert (change.after, change.by) == (f"{V2}:50", "alice")
    operator._canary_move(rollout.deployment, "abort", "alice", "enough")
    assert rollout.registry.get(V2)["status"] == "rejected"


def test_given_the_roles_lock_held_when_the_canary_must_step_then_the_check_reports_failed_and_changes_nothing(
    rollout, loaded_history, monkeypatch
) -> None:
    from nbaml import deployment
    from nbaml.promotion.canary import judge_canary

    settings = rollout.deployment.settings
    rollout.start(V2, by="retrain", why="gates passed")
    _log_pairs(settings, loaded_history[-30:], _truthful, lambda g: _truthful(g, 0.35))
    monkeypatch.setattr(deployment, "ROLES_LOCK_WAIT_SECONDS", 0.2)
    rollout.registry.acquire_lock(deployment.ROLES_LOCK, "an-operator#1", 60)  # a role change in progress

    judgement = judge_canary(settings, dt.date(2021, 6, 7))

    assert judgement.action == "failed" and "another role change is in progress" in judgement.detail
    assert rollout.deployment.canary().percent == 10 and rollout.registry.get(V2)["status"] == "canary"
