"""Code and model-behaviour tests of training: determinism, the time split, the search, the gates (the scores
themselves are tested against scikit-learn in test_metrics.py).

Small on purpose (one synthetic season, a tiny grid): the search's quality is measured on real seasons by
bench/bench_retrain.py and ``python -m nbaml.training.walkforward``, not here.
"""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

from nbaml.features import FEATURE_NAMES  # noqa: E402
from nbaml.games.feeds.generator import SyntheticLeague  # noqa: E402
from nbaml.metrics import elo_baseline, score  # noqa: E402
from nbaml.training.candidate import feature_distribution, train_candidate  # noqa: E402
from nbaml.training.dataset import feature_table, time_split  # noqa: E402
from nbaml.training.gates import Comparison, Gates, judge  # noqa: E402
from nbaml.training.search import TrainConfig, fit  # noqa: E402
from nbaml.training.walkforward import HOME, MODEL, POOLED, beats_baselines, walk_forward  # noqa: E402

TINY_GRID = {"max_depth": [1, 2], "learning_rate": [0.1], "n_estimators": [10, 20, 30], "reg_lambda": [1.0]}
GOOD = {"accuracy": 0.66, "roc_auc": 0.70, "ece": 0.02, "log_loss": 0.630}
FAST = {"p50_ms": 0.1, "p99_ms": 1.0}


CV_MARGIN = 0.015


def always_home_cv_log_loss(y, splits: int) -> float:
    """The baseline on the search's own folds: each validation fold predicted at its training rows' home-win rate."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import TimeSeriesSplit

    folds = TimeSeriesSplit(n_splits=splits).split(y)
    return float(np.mean([log_loss(y[va], np.full(len(va), y[tr].mean()), labels=[0, 1]) for tr, va in folds]))


def tiny(**overrides):
    return TrainConfig(**({"grid": TINY_GRID, "cv_splits": 3, "n_jobs": 1} | overrides))


@pytest.fixture(scope="module")
def season_table():
    """One synthetic season (1230 games) as the feature table training reads."""
    return feature_table(SyntheticLeague(seed=11).games(2019))


@pytest.fixture(scope="module")
def split(season_table):
    return time_split(season_table, FEATURE_NAMES)


# ---------------------------------------------------------------- determinism and the search


def test_given_same_data_and_config_when_fitted_twice_then_model_json_is_byte_identical(split):
    games = SyntheticLeague(seed=11).games(2019)
    rebuilt = time_split(feature_table(games), FEATURE_NAMES)  # the same games, every array built anew
    first = fit(split.X_train, split.y_train, tiny())
    second = fit(rebuilt.X_train, rebuilt.y_train, tiny())
    assert first.model_json == second.model_json
    assert first.scaler.to_json() == second.scaler.to_json()
    # And the seed is what fixes it: another seed samples other rows and columns, so other trees.
    other = fit(split.X_train, split.y_train, tiny(seed=7))
    assert other.model_json != first.model_json


def test_given_the_staged_search_when_fitted_then_the_chosen_params_are_points_of_the_grid(split):
    fitted = fit(split.X_train, split.y_train, tiny())
    for name, values in TINY_GRID.items():
        assert fitted.params[name] in values, name
    # One fit per shape and fold, every checkpoint scored from it.
    assert fitted.fits == 2 * 3
    assert fitted.candidates == 2 * 3
    # The search's score beats always-home on the same folds by a clear margin (0.656 against 0.687 on this
    # season): a model that learnt nothing, or learnt shuffled labels, scores about always-home or worse
    assert fitted.cv_log_loss < always_home_cv_log_loss(split.y_train, tiny().cv_splits) - CV_MARGIN


def test_given_a_champion_warm_start_when_searched_then_its_shape_is_a_candidate(split):
    champion = {"max_depth": 3, "learning_rate": 0.1, "reg_lambda": 1.0, "n_estimators": 15, "subsample": 0.8}
    fitted = fit(split.X_train, split.y_train, tiny(warm_start=champion))
    assert fitted.fits == 3 * 3  # the grid's two shapes and the champion's, on each fold
    assert fitted.candidates == 3 * 4  # checkpoints 10, 15, 20, 30


def test_given_the_plain_grid_when_fitted_then_every_grid_point_is_fitted_on_every_fold(split):
    fitted = fit(split.X_train, split.y_train, tiny(search="grid"))
    assert fitted.fits == 2 * 3 * 3
    assert fitted.params["max_depth"] in TINY_GRID["max_depth"]


def test_given_an_unknown_search_when_configured_then_it_is_refused():
    with pytest.raises(ValueError, match="unknown search"):
        TrainConfig(search="halving-everything")


# ---------------------------------------------------------------- the time split


def test_given_a_season_when_split_then_every_holdout_date_follows_every_training_date(season_table, split):
    assert split.train_dates[1] < split.holdout_dates[0]
    cut = len(split.y_train)
    assert max(season_table.dates[:cut]) < min(season_table.dates[cut:])
    assert list(season_table.dates) == sorted(season_table.dates)  # rows in time order, never shuffled


def test_given_a_holdout_size_ending_inside_a_date_when_split_then_that_date_stays_on_one_side(season_table):
    dates = season_table.dates
    # A size whose naive cut falls between two games of the same date.
    size = next(k for k in range(150, 400) if dates[len(dates) - k] == dates[len(dates) - k - 1])
    split = time_split(season_table, FEATURE_NAMES, holdout=size)
    cut = len(split.y_train)
    assert set(dates[:cut]).isdisjoint(dates[cut:])
    assert len(split.y_holdout) < size  # the boundary date went to training


def test_given_the_search_folds_when_listed_then_each_validates_only_on_later_rows(season_table, split, monkeypatch):
    # Given: the training rows with their row number as a last column, so each fold's rows can be told apart
    from nbaml.training import search

    rows = np.arange(len(split.y_train), dtype=np.float64)
    X = np.column_stack([split.X_train, rows])
    dates = np.asarray(season_table.dates[: len(rows)])
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    fold_curve = search._fold_curve

    def recording(X_train, y_train, X_valid, y_valid, *args, **kwargs):
        seen.append((X_train[:, -1].astype(int), X_valid[:, -1].astype(int)))
        return fold_curve(X_train, y_train, X_valid, y_valid, *args, **kwargs)

    monkeypatch.setattr(search, "_fold_curve", recording)
    # When: the search fits (one process, so every fold it fits is seen here)
    search.fit(X, split.y_train, tiny(grid=TINY_GRID | {"max_depth": [1]}))
    # Then: each fold the search fitted trains on a prefix and validates on the rows right after it, none later
    # in the season than its own dates
    assert len(seen) == tiny().cv_splits
    for train, valid in seen:
        assert list(train) == list(range(len(train)))
        assert list(valid) == list(range(len(train), len(train) + len(valid)))
        assert dates[train].max() <= dates[valid].min()
    assert seen[-1][1][-1] == len(rows) - 1  # the last fold validates on the latest rows


# ---------------------------------------------------------------- the gates
HOLDOUT_BASELINES = {"always_home": {"log_loss": 0.684}, "elo": {"log_loss": 0.651}}


def versus(version: str, candidate: float, other: float, n: int = 400) -> Comparison:
    return Comparison(version, n, candidate=GOOD | {"log_loss": candidate}, other=GOOD | {"log_loss": other})


def test_given_a_candidate_worse_than_the_champion_beyond_tolerance_when_judged_then_rejected_with_the_reason():
    gates = Gates(logloss_tolerance=0.005)
    verdict = judge(GOOD, gates, FAST, champion=versus("v2", 0.626, 0.620))
    assert not verdict.passed and verdict.outcome == "rejected"
    assert any(reason.startswith("log_loss_vs_champion") for reason in verdict.reasons)
    # Within the tolerance the same candidate passes.
    assert judge(GOOD, gates, FAST, champion=versus("v2", 0.624, 0.620)).passed


def test_given_successive_candidates_each_within_tolerance_when_judged_then_drift_from_an_older_champion_is_caught():
    # Given: v2 was 0.004 worse than v1 and passed; the candidate is 0.004 worse than v2 (within tolerance)
    gates = Gates(logloss_tolerance=0.005)
    champion, earlier = versus("v2", 0.628, 0.624), versus("v1", 0.628, 0.620)
    # When: judged against the champion alone it would pass, but the recent champions are held too
    assert judge(GOOD, gates, FAST, champion=champion).passed
    verdict = judge(GOOD, gates, FAST, champion=champion, recent=[earlier])
    # Then: rejected for drifting 0.008 from v1 on the games v1 never trained on
    assert verdict.outcome == "rejected" and [r.split()[0] for r in verdict.reasons] == ["log_loss_vs_v1"]


@pytest.mark.parametrize("baseline", ["always_home", "elo"])
def test_given_a_candidate_worse_than_a_baseline_when_judged_then_rejected_even_with_no_champion(baseline):
    candidate = GOOD | {"log_loss": HOLDOUT_BASELINES[baseline]["log_loss"] + 0.002}
    verdict = judge(candidate, Gates(), FAST, baselines=HOLDOUT_BASELINES)
    assert verdict.outcome == "rejected"
    assert f"log_loss_vs_{baseline}" in [r.split()[0] for r in verdict.reasons]
    assert judge(GOOD, Gates(), FAST, baselines=HOLDOUT_BASELINES).passed  # 0.630 beats both


@pytest.mark.parametrize(
    "why", ["v2's bundle cannot be read (BundleIntegrityError)", "only 40 holdout games after its training ended"]
)
def test_given_a_champion_that_cannot_be_compared_when_judged_then_the_candidate_is_held_never_waved_through(why):
    verdict = judge(GOOD, Gates(), FAST, baselines=HOLDOUT_BASELINES, champion=Comparison("v2", unavailable=why))
    assert not verdict.passed and verdict.outcome == "held"
    assert verdict.reasons == [f"held for an operator: no comparison with v2: {why}"]
    # A candidate that also fails a floor is rejected, not held: nothing an operator could overrule
    failing = judge(GOOD | {"accuracy": 0.5}, Gates(), FAST, champion=Comparison("v2", unavailable=why))
    assert failing.outcome == "rejected"


def test_given_an_earlier_champion_that_cannot_be_compared_then_it_is_noted_and_the_champion_still_decides():
    verdict = judge(
        GOOD, Gates(), FAST, champion=versus("v2", 0.628, 0.627), recent=[Comparison("v1", unavailable="unreadable")]
    )
    assert verdict.passed and verdict.checks["log_loss_vs_v1"] == {
        "ok": True,
        "skipped": "no comparison with v1: unreadable",
    }


@pytest.mark.parametrize(
    ("metric", "value", "check"),
    [("accuracy", 0.55, "accuracy"), ("roc_auc", 0.60, "roc_auc"), ("ece", 0.08, "ece")],
)
def test_given_a_candidate_beyond_one_floor_when_judged_then_rejected_naming_that_floor(metric, value, check):
    verdict = judge(GOOD | {metric: value}, Gates(), FAST)
    assert not verdict.passed
    assert [r.split()[0] for r in verdict.reasons] == [check]
    assert verdict.checks[check]["ok"] is False


def test_given_slow_inference_when_judged_then_rejected_on_p99():
    verdict = judge(GOOD, Gates(max_p99_ms=500.0), {"p50_ms": 100.0, "p99_ms": 900.0})
    assert [r.split()[0] for r in verdict.reasons] == ["inference_p99_ms"]


def test_given_a_good_first_candidate_when_judged_then_it_passes_on_baselines_and_floors():
    verdict = judge(GOOD, Gates(), FAST, baselines=HOLDOUT_BASELINES)
    assert verdict.passed and not verdict.reasons and set(verdict.checks) >= {"log_loss_vs_elo", "accuracy"}


# ---------------------------------------------------------------- the calibrator
def test_given_an_over_confident_forest_when_calibrated_then_the_calibrator_shrinks_it_and_is_kept(split):
    # Given: deep trees at a high learning rate, over-confident on games after the ones they learned from
    rough = {"max_depth": [6], "learning_rate": [0.3], "n_estimators": [100], "reg_lambda": [1.0]}
    fitted = fit(split.X_train, split.y_train, tiny(grid=rough))
    # Then: a calibrator was fitted on folds the trees never saw, kept because it helped the newer fold
    check = fitted.calibration_check
    assert fitted.calibration is not None and check["kept"] and check["after"] < check["log_loss_before"]
    assert 0 < fitted.calibration.a < 1  # it shrinks the forest's confidence
    raw = fitted.pipeline.predict_proba(split.X_holdout)[:, 1]
    assert score(split.y_holdout, fitted.predict_proba(split.X_holdout)).log_loss < score(split.y_holdout, raw).log_loss


def test_given_trees_too_weak_to_follow_elo_when_calibrated_then_the_elo_term_is_kept_and_closes_the_gap(split):
    # Given: a forest of one stump: two probabilities, whatever the strengths of the teams
    weak = {"max_depth": [1], "learning_rate": [0.3], "n_estimators": [1], "reg_lambda": [1.0]}
    fitted = fit(split.X_train, split.y_train, tiny(grid=weak), FEATURE_NAMES)
    # Then: the calibrator kept is the one with the Elo term, fitted on folds the trees never saw
    assert fitted.calibration is not None and fitted.calibration.elo > 0 and fitted.calibration_check["kept"]
    raw = score(split.y_holdout, fitted.pipeline.predict_proba(split.X_holdout)[:, 1]).log_loss
    served = score(split.y_holdout, fitted.predict_proba(split.X_holdout)).log_loss
    elo = score(split.y_holdout, elo_baseline(split.X_holdout, FEATURE_NAMES)).log_loss
    assert served < raw - 0.01 and served < elo + 0.005  # from the base rate to Elo's level


def test_given_calibration_switched_off_then_none_is_fitted(split):
    fitted = fit(split.X_train, split.y_train, tiny(calibrate=False))
    assert fitted.calibration is None and fitted.calibration_check == {"kept": False}


# ---------------------------------------------------------------- the PSI reference
def test_given_training_rows_when_their_distribution_is_taken_then_each_features_shares_sum_to_one(split):
    distribution = feature_distribution(split.X_train, FEATURE_NAMES)
    assert set(distribution) == set(FEATURE_NAMES)
    for name, entry in distribution.items():
        assert sum(entry["shares"]) == pytest.approx(1.0, abs=1e-5), name
        assert len(entry["shares"]) == len(entry["edges"]) + 1


# ---------------------------------------------------------------- the candidate and the walk-forward


def test_given_a_candidate_when_evaluated_with_the_serving_engine_then_it_equals_xgboost(split):
    games = SyntheticLeague(seed=11).games(2019)
    candidate = train_candidate(games, version="v1", config=tiny())
    p_xgboost = candidate.fitted.predict_proba(candidate.split.X_holdout)
    p_engine = np.asarray(candidate.bundle.predict_many(candidate.split.holdout_rows))
    np.testing.assert_allclose(p_engine, p_xgboost, atol=1e-6)
    expected = score(candidate.split.y_holdout, p_xgboost).as_dict()
    for metric in ("accuracy", "roc_auc", "brier", "log_loss", "ece"):
        assert candidate.evaluation["candidate"][metric] == pytest.approx(expected[metric], abs=1e-6), metric


def test_given_two_synthetic_seasons_when_walked_forward_then_the_model_beats_always_home():
    league = SyntheticLeague(seed=11)
    table = feature_table(league.games(2019) + league.games(2020))
    result = walk_forward(table, first_test_season=2020, seasons=1, config=tiny(), monthly=True)
    scores = result.scores()
    tested = [d for d, season in zip(table.dates, table.seasons, strict=True) if season == 2020]
    assert scores[MODEL][POOLED]["n"] == len(tested) > 1000
    assert result.n_train == len(table.dates) - len(tested)
    assert min(tested) > max(d for d, season in zip(table.dates, table.seasons, strict=True) if season < 2020)
    assert scores[MODEL][POOLED]["log_loss"] < scores[HOME][POOLED]["log_loss"]
    assert "model (monthly refit)" in scores
    assert beats_baselines(scores) == (
        scores[MODEL][POOLED]["log_loss"] < min(scores[HOME][POOLED]["log_loss"], scores["Elo"][POOLED]["log_loss"])
    )
