"""collect - daily 03:00 Eastern (an EventBridge Scheduler schedule in template.yaml).

The games of the last COLLECT_LOOKBACK_DAYS days and today's schedule from the configured feed, as of the
event's scheduled time: raw payloads archived to S3 raw/, clean games upserted into Games, team state and
training data updated in S3, each day's completeness into the league calendar, outcomes joined onto the
predictions of those games. Raises on failure so Scheduler retries it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from nbaml.collect import collect_recent_games
from nbaml.config import CollectSettings, load_settings
from nbaml.events import scheduled_time

logger = Logger()
metrics = Metrics()


@cache
def settings() -> CollectSettings:
    return load_settings(CollectSettings)


@logger.inject_lambda_context(correlation_id_path="id", log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    report = collect_recent_games(settings(), at=scheduled_time(event), metrics=metrics)
    return report.as_dict()
