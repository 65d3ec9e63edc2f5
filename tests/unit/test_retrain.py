"""The retrain pipeline on moto: v1, then a timestamped candidate judged against it; gates; lock; crash safety."""

from __future__ import annotations

import datetime as dt

import pytest
from aws_lambda_powertools.metrics import Metrics

from nbaml.bundle import ModelBundle
from nbaml.config import RetrainSettings, load_settings
from nbaml.events import RetrainRequest, RetrainTrigger, retrain_requests
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.registry import ModelRegistry
from nbaml.training import pipeline


def request(reason: str = "test", at: dt.datetime | None = None) -> RetrainRequest:
    return RetrainRequest(
        trigger=RetrainTrigger.MANUAL,
        reason=reason,
        requested_by="tester",
        force=True,
        requested_at=at or dt.datetime(2021, 5, 1, 5, 0, tzinfo=dt.UTC),
    )


def test_given_history_when_retrained_twice_then_v1_is_active_and_the_second_is_judged_against_it(
    stack, loaded_history, fast_config
) -> None:
    settings = load_settings(RetrainSettings)
    first = pipeline.retrain(settings, request("first"), config=fast_config)
    assert (first.status, first.version) == ("promoted", "v1")
    assert parameters.read(settings.active_model_param) == "v1"
    bundle = ModelBundle.from_files(ArtifactStore(stack.bucket).read_bundle_files("v1"), expected_version="v1")
    assert bundle.metadata["trigger"] == "manual" and bundle.metadata["reason"] == "first"
    assert {"accuracy", "roc_auc", "brier", "log_loss", "ece"} <= set(bundle.metadata["metrics"])
    assert set(bundle.metadata["evaluation"]) >= {"always_home", "elo", "candidate", "inference"}

    second = pipeline.retrain(
        settings, request("second", dt.datetime(2021, 6, 1, 5, 0, tzinfo=dt.UTC)), config=fast_config
    )
    assert second.version == "v20210601_050000"
    record = ModelRegistry(settings.model_versions_table).get(second.version)
    assert record["evaluation"]["champion"]["version"] == "v1"
    assert record["gates"]["checks"]["log_loss_vs_champion"]["ok"] in (True, False)  # compared, never skipped
    # judged against v1 for real: both scored on the holdout games v1 never saw, and the gate compared the two
    comparison = record["evaluation"]["champion"]
    assert "unavailable" not in comparison, comparison
    champion, candidate = comparison["champion"], comparison["candidate"]
    assert comparison["n"] > 0 and 0.0 < champion["log_loss"] < 1.0
    check = record["gates"]["checks"]["log_loss_vs_champion"]  # the champion's log-loss + the tolerance
    assert champion["log_loss"] <= check["limit"] <= champion["log_loss"] + 0.05, (check, champion)
    assert check["value"] == pytest.approx(candidate["log_loss"], abs=1e-6)


def test_given_impossible_floors_when_retrained_then_the_candidate_is_rejected_and_nothing_served_changes(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    monkeypatch.setenv("GATE_MIN_ACCURACY", "0.99")
    strict = load_settings(RetrainSettings)
    outcome = pipeline.retrain(strict, request("strict", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    assert outcome.status == "rejected"
    assert any("accuracy" in reason for reason in outcome.reasons)
    assert parameters.read(settings.active_model_param) == "v1"
    assert ModelRegistry(settings.model_versions_table).get(outcome.version)["status"] == "rejected"


@pytest.mark.parametrize("mode", ["canary", "shadow"])
def test_given_a_promotion_mode_when_a_candidate_passes_then_it_takes_that_role_and_the_champion_stays(
    stack, loaded_history, fast_config, monkeypatch, mode: str
) -> None:
    # Given v1 active, and PromotionMode canary (first step 25 %) or shadow
    pipeline.retrain(load_settings(RetrainSettings), request("first"), config=fast_config)
    monkeypatch.setenv("PROMOTION_MODE", mode)
    monkeypatch.setenv("CANARY_STEPS", "25,100")
    settings = load_settings(RetrainSettings)
    # When a candidate that passes its gates is trained
    outcome = pipeline.retrain(settings, request("next", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    # Then it takes the mode's role, and v1 keeps serving
    assert (outcome.status, outcome.version) == (mode, "v20210601_000000")
    assert parameters.read(settings.active_model_param) == "v1"
    role = settings.canary_model_param if mode == "canary" else settings.shadow_model_param
    expected = parameters.Canary(outcome.version, 25).encode() if mode == "canary" else outcome.version
    assert parameters.read(role) == expected
    status = ModelRegistry(settings.model_versions_table).get(outcome.version)["status"]
    assert status == {"canary": "canary", "shadow": "candidate"}[mode]


def test_given_no_champion_when_the_mode_is_canary_then_the_first_model_becomes_active(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    monkeypatch.setenv("PROMOTION_MODE", "canary")
    settings = load_settings(RetrainSettings)
    outcome = pipeline.retrain(settings, request("first"), config=fast_config)
    assert (outcome.status, parameters.read(settings.active_model_param)) == ("promoted", "v1")
    assert parameters.read(settings.canary_model_param) == parameters.NONE


def test_given_a_retrain_when_it_emits_metrics_then_counts_are_counts_and_log_loss_has_no_unit(
    stack, loaded_history, fast_config
) -> None:
    # Given the retrain function's EMF metrics (Powertools shares one metric set: start and end it empty)
    metrics = Metrics(namespace="nbaml-test", service="retrain")
    metrics.clear_metrics()
    try:
        # When a run finishes
        settings = load_settings(RetrainSettings)
        outcome = pipeline.retrain(settings, request("first"), metrics=metrics, config=fast_config)
        emitted = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
    # Then each metric carries its unit and its value
    units = {m["Name"]: m["Unit"] for m in emitted["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {
        "RetrainRuns": "Count",
        "CandidateLogLoss": "None",
        "CandidateRejected": "Count",
        "CandidateHeld": "Count",
    }
    values = {name: emitted[name] for name in units}
    rejected = int(outcome.status == "rejected")
    assert values == {
        "RetrainRuns": [1.0],
        "CandidateLogLoss": [outcome.metrics["log_loss"]],
        "CandidateRejected": [rejected],
        "CandidateHeld": [0],
    }


def test_given_a_running_retrain_when_a_second_starts_then_it_exits_naming_the_holder(stack, loaded_history) -> None:
    settings = load_settings(RetrainSettings)
    ModelRegistry(settings.model_versions_table).acquire_lock(pipeline.LOCK, "run-in-progress", 600)
    outcome = pipeline.retrain(settings, request())
    assert outcome.status == "locked"
    assert "run-in-progress" in outcome.reasons[0]
    assert parameters.read(settings.active_model_param) == "none"


def test_given_a_crash_between_uploads_when_retraining_then_the_served_version_is_unchanged(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    real_put = ArtifactStore.put_bytes

    def crash_on_metadata(self, key, body, content_type="application/octet-stream"):
        if key.endswith("metadata.json") and "/v1/" not in key:
            raise RuntimeError("injected crash mid-upload")
        return real_put(self, key, body, content_type)

    monkeypatch.setattr(ArtifactStore, "put_bytes", crash_on_metadata)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.retrain(settings, request("crash", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    monkeypatch.setattr(ArtifactStore, "put_bytes", real_put)
    registry = ModelRegistry(settings.model_versions_table)
    assert parameters.read(settings.active_model_param) == "v1"
    assert [v["version"] for v in registry.versions()] == ["v1"]
    assert ArtifactStore(stack.bucket).bundle_committed("v20210601_000000") is False
    # and the lock was released, so the next run goes ahead
    assert (
        pipeline.retrain(settings, request("after", dt.datetime(2021, 6, 2, tzinfo=dt.UTC)), config=fast_config).status
        != "locked"
    )


def test_given_a_scheduled_event_then_the_request_is_a_forced_monthly_retrain() -> None:
    (req,) = retrain_requests(
        {
            "detail-type": "Scheduled Event",
            "time": "2023-02-01T10:00:00Z",  # 05:00 Eastern
            "id": "abc",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/monthly"],
        }
    )
    assert req.trigger is RetrainTrigger.SCHEDULE and req.force and "2023-02" in req.reason


# ---------------------------------------------------------------- an operator's change during a run wins
def test_given_an_operator_rolls_back_while_a_retrain_trains_then_the_candidate_is_not_promoted_and_says_why(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    from nbaml.deployment import Deployment
    from nbaml.storage.registry import VersionStatus

    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    second = pipeline.retrain(settings, request("second", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    assert second.status == "promoted"
    real_train = pipeline.train_candidate

    def train_while_the_operator_rolls_back(*args, **kwargs):
        # Given: while the third run trains, an operator rolls back to v1 (through the checked path)
        Deployment(settings).rollback("v1", by="operator", why="v2 misbehaves in production")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_candidate", train_while_the_operator_rolls_back)
    # When: the run finishes with a candidate that passes its gates
    third = pipeline.retrain(settings, request("third", dt.datetime(2021, 6, 2, tzinfo=dt.UTC)), config=fast_config)
    # Then: the operator's rollback stands, and the run says why it did not promote
    assert third.status == "superseded", third.as_dict()
    assert parameters.read(settings.active_model_param) == "v1"
    record = ModelRegistry(settings.model_versions_table).get(third.version)
    assert record["status"] == VersionStatus.CANDIDATE.value
    assert "became v1" in record["history"][-1]["why"] and "v2 misbehaves" in record["history"][-1]["why"]
    assert "not promoted" in third.reasons[0]


def test_given_a_role_change_in_progress_when_another_is_asked_then_it_waits_then_refuses_naming_the_holder(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    import threading

    from nbaml import deployment as dep
    from nbaml.errors import ConflictError

    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    pipeline.retrain(settings, request("second", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    registry = ModelRegistry(settings.model_versions_table)
    monkeypatch.setattr(dep, "ROLES_LOCK_WAIT_SECONDS", 0.5)
    # Given: a role change holds the lock (a retrain promoting, an admin call)
    registry.acquire_lock(dep.ROLES_LOCK, "retrain#promoting", 60)
    # When / Then: an operator's rollback waits, then is refused, naming who holds it; nothing changed
    with pytest.raises(ConflictError, match="retrain#promoting"):
        dep.Deployment(settings).rollback("v1", by="operator", why="try while locked")
    assert parameters.read(settings.active_model_param) == "v20210601_000000"
    # When: the holder finishes within the wait, the waiting change goes through
    monkeypatch.setattr(dep, "ROLES_LOCK_WAIT_SECONDS", 5.0)
    threading.Timer(0.3, registry.release_lock, args=(dep.ROLES_LOCK, "retrain#promoting")).start()
    change = dep.Deployment(settings).rollback("v1", by="operator", why="after the promotion")
    assert change.after == "v1" and parameters.read(settings.active_model_param) == "v1"
    # and a retrain's own promotion takes the same lock: held by an operator, the operator wins
    registry.acquire_lock(dep.ROLES_LOCK, "operator#rolling-back", 60)
    monkeypatch.setattr(dep, "ROLES_LOCK_WAIT_SECONDS", 0.3)
    third = pipeline.retrain(settings, request("third", dt.datetime(2021, 6, 2, tzinfo=dt.UTC)), config=fast_config)
    assert third.status == "superseded" and "operator#rolling-back" in third.reasons[0]
    assert parameters.read(settings.active_model_param) == "v1"


# ---------------------------------------------------------------- gates that cannot pass a worse model
def test_given_a_first_candidate_worse_than_elo_when_the_floors_would_pass_it_then_it_is_rejected(
    stack, loaded_history
) -> None:
    from nbaml.training.search import TrainConfig

    # Given: floors that pass anything, and a deliberately weak model (three stumps: barely off the base rate)
    lenient = {"gate_min_accuracy": 0.0, "gate_min_roc_auc": 0.0, "gate_max_ece": 1.0}
    settings = load_settings(RetrainSettings).model_copy(update=lenient)
    weak = TrainConfig(
        grid={"max_depth": [1], "n_estimators": [3], "learning_rate": [0.03]}, cv_splits=2, search="grid", n_jobs=1
    )
    # When: it is the very first model (no champion to compare with)
    outcome = pipeline.retrain(settings, request("weak first model"), config=weak)
    # Then: it does not serve, because it loses to Elo on its own holdout
    assert outcome.status == "rejected", outcome.as_dict()
    assert "log_loss_vs_elo" in [r.split()[0] for r in outcome.reasons]
    assert parameters.read(settings.active_model_param) == "none"


def test_given_the_champion_bundle_is_unreadable_when_a_candidate_passes_the_rest_then_it_is_held(
    stack, loaded_history, fast_config
) -> None:
    from nbaml.layout import bundle_key
    from nbaml.storage.registry import VersionStatus

    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    # Given: v1's model.json is damaged in S3 (its checksum no longer matches)
    ArtifactStore(stack.bucket).put_bytes(bundle_key("v1", "model.json"), b'{"learner": {}}')
    # When: a retrain produces a candidate
    outcome = pipeline.retrain(settings, request("after", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    # Then: it is held for an operator, not promoted on floors alone, and says why
    assert outcome.status == "held", outcome.as_dict()
    assert "cannot be read" in outcome.reasons[0]
    record = ModelRegistry(settings.model_versions_table).get(outcome.version)
    assert record["status"] == VersionStatus.CANDIDATE.value and "held for an operator" in record["history"][-1]["why"]
    assert parameters.read(settings.active_model_param) == "v1"


def test_given_a_champion_trained_on_other_feature_definitions_then_the_candidate_is_held_naming_them(
    stack, loaded_history, fast_config
) -> None:
    from nbaml.features import FEATURES_VERSION

    settings = load_settings(RetrainSettings)
    pipeline.retrain(settings, request("first"), config=fast_config)
    # Given: the champion was trained by code whose features meant something else (features version 1)
    store = ArtifactStore(stack.bucket)
    files = store.read_bundle_files("v1")
    old = ModelBundle.from_files(files)
    from dataclasses import replace

    older = replace(old, metadata=old.metadata | {"features_version": FEATURES_VERSION - 1})
    store.write_bundle_files("v1", older.to_files())
    # When: a retrain produces a candidate
    outcome = pipeline.retrain(settings, request("after", dt.datetime(2021, 6, 1, tzinfo=dt.UTC)), config=fast_config)
    # Then: held (comparing would feed v1 features it never learned), and v1 keeps serving
    assert outcome.status == "held" and "features version" in outcome.reasons[0], outcome.as_dict()
    assert parameters.read(settings.active_model_param) == "v1"


def test_given_two_earlier_champions_when_a_third_candidate_is_judged_then_both_are_compared(
    stack, loaded_history, fast_config
) -> None:
    settings = load_settings(RetrainSettings)
    for day in (1, 2):
        pipeline.retrain(
            settings, request(f"model {day}", dt.datetime(2021, 6, day, tzinfo=dt.UTC)), config=fast_config
        )
    third = pipeline.retrain(settings, request("third", dt.datetime(2021, 6, 3, tzinfo=dt.UTC)), config=fast_config)
    record = ModelRegistry(settings.model_versions_table).get(third.version)
    assert record["evaluation"]["champion"]["version"] == "v20210602_000000"
    assert [c["version"] for c in record["evaluation"]["recent_champions"]] == ["v1"]
    assert "log_loss_vs_v1" in record["gates"]["checks"]
