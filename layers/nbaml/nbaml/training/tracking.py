"""Experiment tracking with MLflow, when MLFLOW_TRACKING_URI is set (the seed's MLflow dashboard).

MLflow is an optional dependency (``pip install -e '.[tracking]'``): the functions run without it, and
the predict function never imports it. The local stack can point it at a file store
(``MLFLOW_TRACKING_URI=file:./mlruns``) so ``mlflow ui`` shows the runs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)


def log_run(version: str, metadata: dict[str, Any], files: dict[str, bytes], status: str) -> str | None:
    """Log parameters, metrics and the bundle's files as one MLflow run; returns the run id, or None."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    try:
        import mlflow
    except ImportError:
        logger.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed; not tracking")
        return None
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "nbaml"))
    with mlflow.start_run(run_name=version) as run:
        mlflow.set_tags({"version": version, "status": status, "trigger": str(metadata.get("trigger", ""))})
        mlflow.log_params({k: v for k, v in metadata.get("hyperparameters", {}).items()})
        metrics = {k: v for k, v in metadata.get("metrics", {}).items() if isinstance(v, int | float)}
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            for name, body in files.items():
                (Path(tmp) / name).write_bytes(body)
            mlflow.log_artifacts(tmp, artifact_path="bundle")
        return str(run.info.run_id)
