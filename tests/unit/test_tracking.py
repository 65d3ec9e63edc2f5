"""Experiment tracking: with MLFLOW_TRACKING_URI set, a retrain run logs parameters, metrics and the bundle.

mlflow is an optional extra (absent from every function); a recording stand-in for the module checks what
nbaml hands it, and the absent-module and unset-URI paths are checked as they are.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import types
from pathlib import Path

import pytest

from nbaml.training import tracking

METADATA = {
    "trigger": "manual",
    "hyperparameters": {"max_depth": 2, "learning_rate": 0.03},
    "metrics": {"accuracy": 0.65, "log_loss": 0.63, "calibration": [{"bin": 1}]},
}
FILES = {"model.json": b"{}", "manifest.json": b'{"files": {}}'}


class RecordingMlflow(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("mlflow")
        self.calls: dict[str, object] = {}

    def set_tracking_uri(self, uri: str) -> None:
        self.calls["uri"] = uri

    def set_experiment(self, name: str) -> None:
        self.calls["experiment"] = name

    @contextlib.contextmanager
    def start_run(self, run_name: str):
        self.calls["run_name"] = run_name
        yield types.SimpleNamespace(info=types.SimpleNamespace(run_id="run-1"))

    def set_tags(self, tags: dict) -> None:
        self.calls["tags"] = tags

    def log_params(self, params: dict) -> None:
        self.calls["params"] = params

    def log_metrics(self, metrics: dict) -> None:
        self.calls["metrics"] = metrics

    def log_artifacts(self, folder: str, artifact_path: str) -> None:
        self.calls["artifacts"] = sorted(p.name for p in Path(folder).iterdir())
        self.calls["artifact_path"] = artifact_path


def test_given_a_tracking_uri_when_a_run_is_logged_then_params_metrics_and_bundle_reach_mlflow(monkeypatch) -> None:
    recorder = RecordingMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", recorder)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    assert tracking.log_run("v20230101_050000", METADATA, FILES, "promoted") == "run-1"
    assert recorder.calls["uri"] == "file:./mlruns" and recorder.calls["run_name"] == "v20230101_050000"
    assert recorder.calls["params"] == METADATA["hyperparameters"]
    assert recorder.calls["metrics"] == {"accuracy": 0.65, "log_loss": 0.63}  # numbers only
    assert (
        recorder.calls["artifacts"] == ["manifest.json", "model.json"] and recorder.calls["artifact_path"] == "bundle"
    )
    assert recorder.calls["tags"]["status"] == "promoted"


def test_given_no_tracking_uri_then_nothing_is_logged(monkeypatch) -> None:
    # mlflow is importable (the recorder): only the unset URI can keep the run from being logged
    recorder = RecordingMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", recorder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.log_run("v1", METADATA, FILES, "promoted") is None
    assert recorder.calls == {}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # set but empty is unset too
    assert tracking.log_run("v1", METADATA, FILES, "promoted") is None
    assert recorder.calls == {}


def test_given_a_uri_but_no_mlflow_installed_then_the_run_goes_on_untracked(
    monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    caplog.set_level(logging.WARNING, logger=tracking.logger.name)
    assert tracking.log_run("v1", METADATA, FILES, "promoted") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["MLFLOW_TRACKING_URI is set but mlflow is not installed; not tracking"]
