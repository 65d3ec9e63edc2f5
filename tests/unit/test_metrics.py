"""nbaml.metrics against scikit-learn, on random and edge inputs, and one number for one set of games.

scikit-learn is the reference (it is a training dependency, never shipped to drift_check): every score
here must equal its scikit-learn counterpart, or differ only where the module docstring says why.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

np = pytest.importorskip("numpy")
skm = pytest.importorskip("sklearn.metrics")
calibration_curve = pytest.importorskip("sklearn.calibration").calibration_curve
UndefinedMetricWarning = pytest.importorskip("sklearn.exceptions").UndefinedMetricWarning

from aws_lambda_powertools.metrics import Metrics  # noqa: E402

from nbaml import metrics  # noqa: E402
from nbaml.bundle import ModelBundle  # noqa: E402
from nbaml.config import DriftSettings, RetrainSettings, load_settings  # noqa: E402
from nbaml.events import RetrainRequest, RetrainTrigger  # noqa: E402
from nbaml.features import FEATURE_NAMES, elo_probability  # noqa: E402
from nbaml.games.history import GameHistory  # noqa: E402
from nbaml.monitoring.drift import check_drift  # noqa: E402
from nbaml.storage.artifacts import ArtifactStore  # noqa: E402
from nbaml.storage.predictions import PredictionLog  # noqa: E402
from nbaml.storage.registry import ModelRegistry  # noqa: E402
from nbaml.training import pipeline  # noqa: E402
from nbaml.training.dataset import feature_table, time_split  # noqa: E402
from tests.conftest import prediction_of  # noqa: E402

# Probabilities exactly on the bin edges, both as numpy spells them (i * 0.1) and as decimals (i / 10).
EDGES = sorted({i * 0.1 for i in range(11)} | {i / 10 for i in range(11)})


def random_games(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from a slightly miscalibrated model, a tenth of the probabilities on bin edges."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n)
    on_edge = rng.uniform(size=n) < 0.1
    p[on_edge] = rng.choice(EDGES, on_edge.sum())
    y = (rng.uniform(size=n) < np.clip(p * 1.1 - 0.05, 0, 1)).astype(int)
    return y, p


def assert_matches_sklearn(y: np.ndarray, p: np.ndarray) -> None:
    s = metrics.score(y, p)
    clipped = np.clip(p, metrics.CLIP, 1 - metrics.CLIP)
    assert s.n == len(y)
    assert s.log_loss == pytest.approx(skm.log_loss(y, clipped, labels=[0, 1]), rel=1e-12)
    assert s.accuracy == skm.accuracy_score(y, p >= 0.5)
    assert s.brier == pytest.approx(skm.brier_score_loss(y, p, pos_label=1), rel=1e-12, abs=1e-15)
    if len(set(y.tolist())) == 2:
        assert s.roc_auc == pytest.approx(skm.roc_auc_score(y, p), rel=1e-12)
    win_rate, mean_p = calibration_curve(y, p, n_bins=metrics.ECE_BINS, strategy="uniform")
    curve = s.calibration
    assert [b["win_rate"] for b in curve] == pytest.approx(win_rate, abs=1e-6)
    assert [b["mean_probability"] for b in curve] == pytest.approx(mean_p, abs=1e-6)
    assert sum(b["n"] for b in curve) == len(y)
    expected_ece = sum(b["n"] / len(y) * abs(m - w) for b, m, w in zip(curve, mean_p, win_rate, strict=True))
    assert s.ece == pytest.approx(expected_ece, abs=1e-12)


# ---------------------------------------------------------------- against scikit-learn
@pytest.mark.parametrize(("seed", "n"), [(0, 7), (1, 50), (2, 370), (3, 2460), (4, 10_000)])
def test_given_random_games_when_scored_then_every_score_equals_scikit_learns(seed: int, n: int) -> None:
    # Given outcomes and probabilities, some of them on the calibration bin edges
    y, p = random_games(seed, n)
    # When scored / Then each score equals scikit-learn's on the same games
    assert_matches_sklearn(y, p)


def test_given_probabilities_on_the_bin_edges_when_binned_then_each_falls_where_scikit_learn_puts_it() -> None:
    # Given one game at every edge value, each edge value alone in its game set
    for edge in EDGES:
        # When its reliability curve is taken
        (entry,) = metrics.score([1], [edge]).calibration
        # Then it lies in the one non-empty bin scikit-learn finds, closed on the right
        _, mean_p = calibration_curve([1], [edge], n_bins=metrics.ECE_BINS, strategy="uniform")
        assert entry["mean_probability"] == pytest.approx(mean_p[0], abs=1e-12)
        assert entry["lower"] < edge <= entry["upper"] or (edge == 0.0 and entry["bin"] == 0)


def test_given_one_class_only_when_scored_then_scores_match_scikit_learn_and_auc_is_undefined() -> None:
    # Given seasons where the home team always won, then always lost
    p = np.asarray([0.2, 0.55, 0.7, 0.91, 0.5])
    for label in (0, 1):
        y = np.full(p.size, label)
        # When scored / Then every defined score equals scikit-learn's, and AUC says it is undefined
        assert_matches_sklearn(y, p)
        assert math.isnan(metrics.score(y, p).roc_auc)
        with pytest.warns(UndefinedMetricWarning):
            assert math.isnan(skm.roc_auc_score(y, p))


def test_given_probabilities_of_zero_and_one_when_scored_then_log_loss_is_clipped_at_the_stated_floor() -> None:
    # Given a model certain of each game, right on two and wrong on two
    y, p = [1, 0, 1, 0], [1.0, 0.0, 0.0, 1.0]
    # When scored
    s = metrics.score(y, p)
    # Then a certain miss costs -ln(1e-7), a certain hit -ln(1 - 1e-7), as scikit-learn on clipped inputs
    expected = (2 * -math.log(1 - metrics.CLIP) + 2 * -math.log(metrics.CLIP)) / 4
    assert s.log_loss == pytest.approx(expected, rel=1e-9)  # 1 - (1 - 1e-7) is 1e-7 to 9 digits in floats
    assert s.log_loss == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]), rel=1e-12)
    assert metrics.game_log_loss(True, 0.0) == pytest.approx(-math.log(1e-7))
    # and Brier and ECE use the probabilities as given
    assert_matches_sklearn(np.asarray(y), np.asarray(p))
    assert s.brier == 0.5 and s.ece == 0.5


def test_given_probabilities_in_one_bin_only_when_calibrated_then_empty_bins_are_left_out() -> None:
    # Given every probability between 0.6 and 0.7
    y = [1, 1, 0, 1, 0, 1, 1]
    p = [0.61, 0.62, 0.65, 0.66, 0.68, 0.69, 0.7]
    # When the reliability curve is taken
    ece, curve = metrics.calibration(y, p)
    # Then it has one bin, and ECE is that bin's gap
    assert [(b["bin"], b["n"]) for b in curve] == [(6, 7)]
    assert ece == pytest.approx(abs(sum(p) / 7 - 5 / 7), abs=1e-12)
    assert_matches_sklearn(np.asarray(y), np.asarray(p))


def test_given_perfect_predictions_when_scored_then_metrics_are_perfect():
    y = [0, 1, 1, 0, 1]
    s = metrics.score(y, [0.0, 1.0, 1.0, 0.0, 1.0])
    assert s.accuracy == 1.0 and s.roc_auc == 1.0
    assert s.brier == pytest.approx(0.0, abs=1e-12)
    assert s.log_loss == pytest.approx(0.0, abs=1e-6)
    assert s.ece == pytest.approx(0.0, abs=1e-6)


def test_given_a_constant_half_when_scored_then_log_loss_is_ln2_and_auc_is_chance():
    y = [0, 1, 1, 0, 1, 1]
    s = metrics.score(y, [0.5] * 6)
    assert s.log_loss == pytest.approx(math.log(2))
    assert s.brier == pytest.approx(0.25)
    assert s.roc_auc == pytest.approx(0.5)
    assert s.ece == pytest.approx(abs(0.5 - 4 / 6))


def test_given_a_calibrated_and_a_miscalibrated_predictor_when_scored_then_ece_tells_them_apart():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.8, 20_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    calibrated = metrics.score(y, p)
    overconfident = metrics.score(y, np.clip(p + 0.1, 0, 1))
    assert calibrated.ece < 0.02
    assert overconfident.ece == pytest.approx(0.1, abs=0.02)
    assert overconfident.log_loss > calibrated.log_loss


@pytest.mark.parametrize("n", [370, 2460])
def test_given_a_perfectly_calibrated_predictor_when_ece_is_taken_then_it_averages_what_ece_noise_says(n: int):
    rng = np.random.default_rng(n)
    draws, noise = [], []
    for _ in range(400):
        p = rng.uniform(0.25, 0.85, n)
        y = (rng.uniform(size=n) < p).astype(int)
        ece, curve = metrics.calibration(y, p)
        draws.append(ece)
        noise.append(metrics.ece_noise(curve))
    assert np.mean(draws) == pytest.approx(np.mean(noise), rel=0.12)
    assert metrics.ece_noise([]) == 0.0


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 0], [0.5, 1.5], "outside"),
        ([1, 0], [0.5, float("nan")], "outside"),
        ([1, 2], [0.5, 0.5], "home win"),
        ([1, 0], [0.5], "2 outcomes but 1"),
        ([], [], "no games"),
    ],
)
def test_given_bad_input_when_scored_then_a_value_error_names_the_problem(y, p, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.score(y, p)


# ---------------------------------------------------------------- baselines and latency
def test_given_training_outcomes_when_always_home_plays_then_it_says_their_home_win_rate() -> None:
    assert metrics.always_home([1, 1, 0, 1], 3) == [0.75, 0.75, 0.75]
    assert metrics.always_home(np.asarray([True, False]), 1) == [0.5]
    with pytest.raises(ValueError, match="no games"):
        metrics.home_win_rate([])


def test_given_feature_rows_when_elo_plays_then_it_reads_the_elo_difference_column() -> None:
    rows = [[0.0] * len(FEATURE_NAMES) for _ in range(3)]
    column = FEATURE_NAMES.index("elo_diff")
    for row, diff in zip(rows, (-200.0, 0.0, 150.0), strict=True):
        row[column] = diff
    assert metrics.elo_baseline(np.asarray(rows), FEATURE_NAMES) == [elo_probability(d) for d in (-200, 0, 150)]
    assert metrics.elo_baseline(rows, FEATURE_NAMES)[1] > 0.5, "home advantage"


def test_given_latencies_when_a_percentile_is_taken_then_it_is_the_value_at_rank_floor_q_n() -> None:
    samples = [float(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert metrics.percentile(samples, 0.5) == 51.0
    assert metrics.percentile(samples, 0.99) == 100.0
    assert metrics.percentile(samples, 0.0) == 1.0
    assert math.isnan(metrics.percentile([], 0.5))


# ---------------------------------------------------------------- same games, same number
def test_given_the_holdout_games_served_live_when_drift_checked_then_the_report_equals_the_gates(
    stack, loaded_history, fast_config
) -> None:
    # Given v1 trained and gated on its holdout games
    outcome = pipeline.retrain(
        load_settings(RetrainSettings),
        RetrainRequest(trigger=RetrainTrigger.MANUAL, reason="v1", force=True),
        config=fast_config,
    )
    assert outcome.status == "promoted"
    settings = load_settings(DriftSettings)
    store = ArtifactStore(settings.nbaml_bucket)
    item = ModelRegistry(settings.model_versions_table).get("v1")
    split = time_split(feature_table(GameHistory(store).games()))
    assert split.window == item["training_window"], "the same holdout the gates saw"
    bundle = ModelBundle.from_files(store.read_bundle_files("v1"), expected_version="v1")
    # and those same games served live by v1 with the probabilities it gave them, then resolved
    by_id = {g.game_id: g for g in loaded_history}
    games = [by_id[gid] for gid in split.holdout_ids]
    log = PredictionLog(settings.predictions_table)
    for game, p in zip(games, bundle.predict_many(split.holdout_rows), strict=True):
        log.record(prediction_of(game, p))
    log.resolve(games)

    # When the weekly drift check reads them (Powertools shares one metric set: start and end it empty)
    emf = Metrics(namespace="nbaml-test", service="drift_check")
    emf.clear_metrics()
    try:
        report = check_drift(settings, run_date=split.holdout_dates[1] + dt.timedelta(days=1), metrics=emf)
        emitted = emf.serialize_metric_set()
    finally:
        emf.clear_metrics()

    # Then its calibration and performance are the gates' numbers, to the last digit
    gate = item["metrics"]
    assert report.sections["performance"]["n"] == len(games) == gate["n"]
    assert float(item["gates"]["checks"]["ece"]["value"]) == float(gate["ece"])
    assert report.sections["calibration"]["ece"] == float(gate["ece"])
    assert report.sections["calibration"]["curve"] == [{k: float(v) for k, v in b.items()} for b in gate["calibration"]]
    assert report.sections["performance"]["log_loss"] == float(gate["log_loss"])
    assert report.sections["performance"]["accuracy"] == float(gate["accuracy"])
    # and so is the ECE it emits, a score without a unit
    units = {m["Name"]: m["Unit"] for m in emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["CalibrationECE"] == "None" and emitted["CalibrationECE"] == [float(gate["ece"])]
