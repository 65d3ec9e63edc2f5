"""The serving engine equals XGBoost's own output on every game of the shared NBA history.

Why: the predict Lambda never imports xgboost; it evaluates the model's JSON with ``nbaml.forest`` in pure
Python. That is only acceptable if it gives XGBoost's answer, so this test scores every game of 2009-2023
(about 16.6k rows, real feature values with their real ties and missing values) both ways and allows
1e-6 at most, the tolerance the issue sets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_GAMES = ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def history_features():
    if not SHARED_GAMES.exists():
        pytest.skip(f"the shared NBA results are not beside the checkout ({SHARED_GAMES})")
    from nbaml.features import build_features
    from nbaml.games.feeds.history_file import load_games

    table = build_features(load_games(SHARED_GAMES).games)
    return table


def test_given_a_scaled_xgboost_pipeline_when_the_bundle_scores_every_history_game_then_it_matches_to_1e6(
    history_features,
) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("xgboost")
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    from nbaml.bundle import ModelBundle, StandardScalerParams

    # Given: every final regular-season game of the shared history as features, and a scaler + XGBoost
    # pipeline trained on them the way nbaml.training.search trains (hist, one thread)
    table = history_features
    X = np.array([[np.nan if v is None else v for v in row] for row in table.rows], dtype=float)
    y = np.array(table.labels)
    assert len(X) > 16_000, f"expected the whole 2009-2023 history, got {len(X)} rows"
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "model",
                XGBClassifier(
                    objective="binary:logistic",
                    tree_method="hist",
                    n_estimators=200,
                    max_depth=3,
                    learning_rate=0.1,
                    subsample=0.8,
                    n_jobs=1,
                    random_state=0,
                ),
            ),
        ]
    ).fit(X, y)
    # ... exported as the retrain pipeline exports it, and read back through the checked path serving uses
    written = ModelBundle(
        version="v1",
        model_json=bytes(pipeline.named_steps["model"].get_booster().save_raw(raw_format="json")),
        scaler=StandardScalerParams.from_sklearn(pipeline.named_steps["scaler"]),
        feature_names=list(table.names),
    )
    bundle = ModelBundle.from_files(written.to_files(), expected_version="v1")

    # When: both score every game
    ours = np.array(bundle.predict_many(table.rows))
    theirs = pipeline.predict_proba(X)[:, 1]

    # Then: the largest difference on any game is within 1e-6
    worst = int(np.argmax(np.abs(ours - theirs)))
    assert np.max(np.abs(ours - theirs)) <= TOLERANCE, (
        f"game {table.game_ids[worst]}: engine {ours[worst]!r} vs xgboost {theirs[worst]!r}"
    )
    # and the comparison is not vacuous: the model separates games
    assert theirs.min() < 0.3 and theirs.max() > 0.7
