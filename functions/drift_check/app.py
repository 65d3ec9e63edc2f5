"""drift_check - Mondays 04:00 Eastern (an EventBridge Scheduler schedule in template.yaml).

Scores the live model on its resolved predictions (accuracy against the bundle's baseline, calibration,
feature PSI, coverage, latency, champion against canary and shadow), writes the JSON and HTML report to
S3 reports/, emits metrics, and requests one retrain per week when it finds drift.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from nbaml.config import DriftSettings, load_settings
from nbaml.events import scheduled_run_date
from nbaml.monitoring.drift import check_drift

logger = Logger()
metrics = Metrics()


@cache
def settings() -> DriftSettings:
    return load_settings(DriftSettings)


@logger.inject_lambda_context(correlation_id_path="id", log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    run_date = scheduled_run_date(event)
    report = check_drift(settings(), run_date=run_date, metrics=metrics)
    return report.summary()
