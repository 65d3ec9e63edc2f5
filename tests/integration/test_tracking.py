"""Experiment tracking against a real MLflow tracking server (``infra.mlflow_server``, as `stack up --mlflow` runs it).

The stack is deployed with its TrackingUri parameter pointing at the server, as `nbaml stack up --mlflow`
does; retrains go through `nbaml retrain` (the queue, the local twin of the SQS event source mapping, the
handler) and the run is read back through MLflow's own client. Then the server is stopped in the middle of
a run: the run still promotes, `nbaml retrain` exits 0, a warning names the reason and TrackingFailed is 1.
The experiment's page is opened in headless Chromium.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import cli, mlflow_server
from infra import stack as stk
from tests.conftest import ROOT

try:
    import mlflow
except ImportError:  # make venv installs the tracking extra; an older .venv may lack it
    pytest.fail("these tests need the tracking extra: .venv/bin/pip install -e '.[tracking]'", pytrace=False)

SEED = 7  # a league whose first quick model beats always-home and Elo (the gates), as the tests need
SCREENSHOT = ROOT / "reports" / "tests" / "mlflow-experiment.png"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack-state")


@pytest.fixture(scope="module")
def tracking_server(state_dir: Path) -> Iterator[mlflow_server.BackgroundTrackingServer]:
    with mlflow_server.running(state_dir) as server:
        yield server


@pytest.fixture(scope="module")
def tracked_stack(tracking_server: mlflow_server.BackgroundTrackingServer, state_dir: Path) -> Iterator[stk.LocalStack]:
    """The template deployed with TrackingUri at the server, history loaded: `stack up --mlflow` and a backfill."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.feeds.base import FeedBatch
    from tests.conftest import synthetic_history

    with stk.deployed({"TrackingUri": tracking_server.url}, state_dir=state_dir, iam=True) as stack:
        from infra import runtime

        with runtime.function_environment(stack.operator_env("collect")):
            games = synthetic_history(SEED)
            load(load_settings(CommonSettings), FeedBatch(games=games), source="generator")
        yield stack


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def named(self, message: str) -> list[dict[str, Any]]:
        """The records with ``message``, as their attributes (Powertools passes ``extra`` fields through)."""
        return [vars(r) for r in self.records if r.getMessage() == message]


@pytest.fixture
def nbaml_log() -> Iterator[Records]:
    """Every record the retrain pipeline's and tracking's loggers emit during the test.

    Attached to those loggers by name (a Powertools child logger is named after the service the process
    had when the module was first imported), at INFO: the service's level is the one the first cold start
    in this process set (another module's functions may have run at WARNING).
    """
    from nbaml.training import pipeline, tracking

    handler = Records()
    loggers = [logging.getLogger(module.logger.name) for module in (pipeline, tracking)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def nbaml_retrain(state_dir: Path, reason: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`nbaml retrain --reason ... --quick` against the stack; its exit status and what it printed."""
    code = cli.main(["retrain", "--reason", reason, "--quick", "--state-dir", str(state_dir)])
    return code, capsys.readouterr().out


def emitted_metrics(output: str) -> dict[str, float]:
    """The EMF metrics the handler printed (Powertools flushes them to stdout), by name."""
    values: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values[definition["Name"]] = document[definition["Name"]][0]
    return values


def test_given_the_local_mlflow_server_when_a_retrain_runs_then_its_run_reads_back_through_mlflows_client(
    tracked_stack: stk.LocalStack,
    tracking_server: mlflow_server.BackgroundTrackingServer,
    state_dir: Path,
    capsys,
    nbaml_log: Records,
) -> None:
    from nbaml.bundle import ModelBundle
    from nbaml.storage.artifacts import ArtifactStore
    from nbaml.storage.registry import ModelRegistry

    # When: an operator asks for a retrain
    code, output = nbaml_retrain(state_dir, "first model, tracked", capsys)
    # Then: it promoted v1 and logged one run
    assert code == 0, output
    (finished,) = nbaml_log.named("retrain finished")
    assert (finished["status"], finished["version"]) == ("promoted", "v1")
    assert f"tracked: MLflow run {finished['tracking']['run_id']}" in output
    tracked = finished["tracking"]
    assert tracked["configured"] and tracked["error"] is None and tracked["run_id"], tracked
    assert emitted_metrics(output)["TrackingFailed"] == 0
    client = mlflow.MlflowClient(tracking_server.url)
    run = client.get_run(tracked["run_id"])
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == tracked_stack.env_for("retrain")["MLFLOW_EXPERIMENT_NAME"] == "nbaml-dev"
    with stk_env(tracked_stack):
        record = ModelRegistry(tracked_stack.resource("ModelVersionsTable")).get("v1")
        bundle = ArtifactStore(tracked_stack.resource("ArtifactBucket")).read_bundle_files("v1")
    # The version and trigger tags, the outcome, the request
    assert run.info.run_name == "v1" and run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["version"], tags["trigger"], tags["status"]) == ("v1", "manual", "promoted")
    assert tags["request_id"] == record["request_id"] == finished["request_id"]
    # Parameters: the fitted hyperparameters and the training window
    meta = json.loads(bundle["metadata.json"])
    assert {k: run.data.params[k] for k in meta["hyperparameters"]} == {
        k: str(v) for k, v in meta["hyperparameters"].items()
    }
    assert {k: run.data.params[k] for k in meta["training_window"]} == meta["training_window"]
    # Metrics: the candidate's scores as the registry has them, and the baselines on the same games
    for name in ("accuracy", "roc_auc", "brier", "log_loss", "ece"):
        assert run.data.metrics[name] == pytest.approx(record["metrics"][name])
    assert run.data.metrics["elo.log_loss"] == pytest.approx(meta["evaluation"]["elo"]["log_loss"])
    # The bundle's files, byte for byte, and their checksums match the manifest
    listed = sorted(f.path for f in client.list_artifacts(run.info.run_id, "bundle"))
    assert listed == sorted(f"bundle/{name}" for name in bundle)
    downloaded = Path(client.download_artifacts(run.info.run_id, "bundle"))
    manifest = json.loads((downloaded / "manifest.json").read_text())
    for name, body in bundle.items():
        assert (downloaded / name).read_bytes() == body, name
    for name, entry in manifest["files"].items():
        body = (downloaded / name).read_bytes()
        assert (hashlib.sha256(body).hexdigest(), len(body)) == (entry["sha256"], entry["bytes"]), name
    # and the logged bundle loads through nbaml's own verifier (manifest last, checksums checked)
    logged = ModelBundle.from_files({p.name: p.read_bytes() for p in downloaded.iterdir()}, expected_version="v1")
    assert logged.metadata["request_id"] == finished["request_id"]
    # The run is on disk, in the stack's folder (SQLite store, artifact folder)
    assert (state_dir / "mlflow" / "mlflow.db").exists()
    stored = state_dir / "mlflow" / "artifacts" / run.info.experiment_id / run.info.run_id / "artifacts" / "bundle"
    assert sorted(p.name for p in stored.iterdir()) == sorted(bundle)


def test_given_a_logged_run_when_the_experiment_page_opens_in_chromium_then_it_lists_the_last_retrain(
    tracked_stack: stk.LocalStack, tracking_server: mlflow_server.BackgroundTrackingServer
) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("NBAML_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (apt-get install chromium): .ci/run installs it")
        pytest.skip("headless Chromium is not installed")
    client = mlflow.MlflowClient(tracking_server.url)
    experiment = client.get_experiment_by_name("nbaml-dev")
    (last,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    page = tracking_server.experiment_url(experiment.experiment_id)
    browser = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--virtual-time-budget=20000",  # let the UI's scripts fetch and render the runs
        "--window-size=1500,800",
    ]
    dom = subprocess.run([*browser, "--dump-dom", page], capture_output=True, timeout=120, check=True).stdout.decode()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*browser, f"--screenshot={SCREENSHOT}", page], capture_output=True, timeout=120, check=True)
    # Then: the page is the experiment's training runs, and the last retrain's run is listed by its version
    assert "Training runs" in dom and "nbaml-dev" in dom
    assert f">{last.info.run_name}<" in dom, f"run {last.info.run_name} not listed on {page}"
    assert SCREENSHOT.stat().st_size > 20_000  # a rendered page, not a blank one


def test_given_the_server_stopped_mid_run_then_the_retrain_still_promotes_exits_0_and_warns_with_a_metric(
    tracked_stack: stk.LocalStack, state_dir: Path, capsys, monkeypatch, nbaml_log: Records
) -> None:
    from nbaml import deployment

    # Given: the tracking server goes down while the run is under way (right as it promotes)
    real_promote = deployment.Deployment.promote
    stopped: list[str] = []

    def promote_while_the_server_dies(self, *args, **kwargs):
        change = real_promote(self, *args, **kwargs)
        info = mlflow_server.stop(state_dir)
        stopped.append(info.url if info else "")
        return change

    monkeypatch.setattr(deployment.Deployment, "promote", promote_while_the_server_dies)
    # When: the retrain runs to its end
    code, output = nbaml_retrain(state_dir, "tracking server down", capsys)
    # Then: it promoted, `nbaml retrain` exited 0, and the failure is a warning with its reason and a metric
    assert stopped and code == 0, output
    (finished,) = nbaml_log.named("retrain finished")
    assert finished["status"] == "promoted" and finished["version"] != "v1"
    assert "ConnectionRefusedError" in finished["tracking"]["error"]
    (warning,) = nbaml_log.named("experiment tracking failed; the retrain's outcome stands")
    assert warning["levelname"] == "WARNING" and "Connection refused" in warning["reason"]
    assert warning["tracking_uri"] == stopped[0]
    assert "not tracked (the retrain's outcome stands): " in output
    assert emitted_metrics(output)["TrackingFailed"] == 1
    with stk_env(tracked_stack):
        from nbaml.storage import parameters

        assert parameters.read(tracked_stack.resource("ActiveModelParameter")) == finished["version"]


def test_given_the_template_then_tracking_failures_are_alarmed(sam_template: dict[str, Any]) -> None:
    alarm = sam_template["Resources"]["TrackingFailedAlarm"]["Properties"]
    assert alarm["MetricName"] == "TrackingFailed" and alarm["Threshold"] == 1
    variables = sam_template["Resources"]["RetrainFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["MLFLOW_TRACKING_URI"] == {"Ref": "TrackingUri"}


def stk_env(stack: stk.LocalStack) -> contextlib.AbstractContextManager[None]:
    """The operator's environment on ``stack`` (for the test's own reads)."""
    from infra import runtime

    return runtime.function_environment(stack.operator_env("retrain"))
