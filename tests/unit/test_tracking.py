"""Experiment tracking is a side channel: what a run logs, and that no tracking failure changes a retrain.

No network here: the URIs below fail before any request (tests/integration/test_tracking.py logs to a real
MLflow server, reads the run back through MLflow's client, and stops the server in the middle of a run).
"""

from __future__ import annotations

import datetime as dt

import pytest
from aws_lambda_powertools.metrics import Metrics

from nbaml.config import RetrainSettings, load_settings
from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.storage import parameters
from nbaml.training import pipeline, tracking

METADATA = {
    "trigger": "manual",
    "reason": "a test",
    "request_id": "req-1",
    "data_hash": "abc",
    "hyperparameters": {"max_depth": 2, "learning_rate": 0.03},
    "training_window": {"train_start": "2019-10-22", "train_end": "2021-03-01"},
    "n_train": 1800,
    "metrics": {"accuracy": 0.65, "log_loss": 0.63, "n": 367, "calibration": [{"bin": 1}], "passed": True},
    "evaluation": {"elo": {"log_loss": 0.64}, "always_home": {"accuracy": 0.57}},
}
FILES = {"model.json": b"{}", "manifest.json": b'{"files": {}}'}


def test_given_no_tracking_uri_then_nothing_is_tracked_and_nothing_failed() -> None:
    result = tracking.log_run("", "nbaml-dev", "v1", METADATA, FILES, "promoted")
    assert result == tracking.NOT_CONFIGURED and not result.failed
    assert result.as_dict() == {"configured": False}


@pytest.mark.parametrize("uri", ["file:./mlruns", "sqlite:///mlflow.db", "databricks", "mlruns"])
def test_given_a_uri_that_is_not_a_servers_then_tracking_fails_with_a_reason_that_says_what_to_run(uri: str) -> None:
    # Given: the stores a local MLflow client would write to (MLflow 3 refuses the file store anyway)
    result = tracking.log_run(uri, "nbaml-dev", "v1", METADATA, FILES, "promoted")
    # Then: a failure, never an exception, naming what works instead
    assert result.failed and result.run_id is None
    assert "REST API" in str(result.error) and "nbaml stack up --mlflow" in str(result.error)


def test_given_credentials_in_the_uri_then_they_are_never_repeated() -> None:
    result = tracking.log_run("https://user:s3cret@mlflow.example.com", "x", "v1", METADATA, FILES, "promoted")
    assert result.failed and "s3cret" not in str(result.error) and "***@mlflow.example.com" in str(result.error)


def test_given_a_version_then_its_run_carries_the_version_outcome_trigger_and_numbers_only() -> None:
    contents = tracking.run_contents("v20210601_050000", METADATA, "canary")
    tags = contents["tags"]
    assert (tags["version"], tags["status"], tags["trigger"], tags["request_id"]) == (
        "v20210601_050000",
        "canary",
        "manual",
        "req-1",
    )
    assert contents["params"] == {
        "max_depth": "2",
        "learning_rate": "0.03",
        "train_start": "2019-10-22",
        "train_end": "2021-03-01",
        "n_train": "1800",
    }
    # Numbers only (no calibration bins, no booleans), with the baselines on the same games beside them
    assert contents["metrics"] == {
        "accuracy": 0.65,
        "log_loss": 0.63,
        "n": 367.0,
        "elo.log_loss": 0.64,
        "always_home.accuracy": 0.57,
    }


def test_given_a_tracking_uri_that_fails_when_a_retrain_runs_then_it_promotes_and_counts_the_failure(
    stack, loaded_history, fast_config, monkeypatch
) -> None:
    # Given: tracking pointed at something that is not a tracking server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    settings = load_settings(RetrainSettings)
    metrics = Metrics(namespace="nbaml-test", service="retrain")
    metrics.clear_metrics()
    request = RetrainRequest(
        trigger=RetrainTrigger.MANUAL, reason="t", force=True, requested_at=dt.datetime(2021, 6, 1, tzinfo=dt.UTC)
    )
    try:
        # When: a retrain runs
        outcome = pipeline.retrain(settings, request, metrics=metrics, config=fast_config)
        emitted = metrics.serialize_metric_set()
    finally:
        metrics.clear_metrics()
    # Then: the candidate is promoted as if tracking did not exist, and the failure is counted
    assert (outcome.status, outcome.version) == ("promoted", "v1")
    assert parameters.read(settings.active_model_param) == "v1"
    assert outcome.tracking.failed and "file:./mlruns" in str(outcome.tracking.error)
    assert outcome.as_dict()["tracking"]["error"] == outcome.tracking.error
    assert emitted["TrackingFailed"] == [1.0] and emitted["RetrainRuns"] == [1.0]
