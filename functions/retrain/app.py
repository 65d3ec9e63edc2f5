"""retrain - the 1st of each month (forced), on drift, or on demand (SQS requests from drift_check and the API).

Trains a candidate on the completed regular-season games in S3, evaluates it against the champion and
two baselines on the same holdout, writes its bundle (manifest last), registers it, and promotes it only
if it passes the gates. One run at a time (a lock in the registry), and one run per request however often
it is delivered (its outcome recorded by request id; a redelivery is answered with it). A failed run never
changes what is served: the active parameter is written last, and only for a candidate that passed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from nbaml.config import RetrainSettings, load_settings
from nbaml.events import retrain_deliveries
from nbaml.training.delivery import answer

logger = Logger()
metrics = Metrics()


@cache
def settings() -> RetrainSettings:
    return load_settings(RetrainSettings)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(settings(), retrain_deliveries(event), context=context, metrics=metrics)
