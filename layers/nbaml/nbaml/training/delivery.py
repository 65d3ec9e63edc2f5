"""A retrain request runs once, however often it is delivered: Powertools Idempotency keyed on its id.

SQS delivers a message at least once; EventBridge, and Lambda's own retries of an asynchronous invocation,
deliver a failed scheduled event again with the same id; an operator may send the same request twice.
Each delivery first writes the request id as INPROGRESS (a conditional write to the RetrainRequests
table), and the outcome replaces it once the run returns. What a later delivery of the same request does:

- the request finished: it is answered with the outcome recorded then (``answered_from_record``), and
  nothing runs;
- it is running now (another invocation holds the INPROGRESS record, which lapses at that invocation's
  Lambda timeout): an SQS message is reported as a batch item failure, so SQS keeps it and delivers it
  again after its visibility timeout (the run has finished or died by then); any other delivery raises,
  and its retry comes later;
- it died (killed, or timed out, after writing INPROGRESS and before recording the outcome, possibly
  after it promoted): once the INPROGRESS record has lapsed the request runs again, and
  ``pipeline.retrain`` finds the version that delivery registered and resumes it (its recorded decision,
  or the promotion step it never reached) instead of training and promoting a second one;
- it failed (raised): Powertools deleted its record, so the retry runs it again; the same resumption
  applies if it had registered a version.

The same request id with a different trigger, reason or force flag is refused, not run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from nbaml.config import RetrainSettings
from nbaml.events import RetrainDelivery, RetrainRequest
from nbaml.storage.requests import outcome_store
from nbaml.training.pipeline import retrain
from nbaml.training.search import TrainConfig

logger = Logger(child=True)

KEY_PREFIX = "retrain"
# How long an outcome answers redeliveries (the table's TTL then removes it): beyond SQS's redelivery
# (visibility timeout 90 min x maxReceiveCount 2), EventBridge's retries (1 h) and Lambda's (6 h).
OUTCOME_TTL_SECONDS = 7 * 24 * 3600
# A reused request id must carry the same request: these fields are hashed and compared.
VALIDATED_FIELDS = "[trigger, reason, force]"


def answer(
    settings: RetrainSettings,
    deliveries: Iterable[RetrainDelivery],
    *,
    context: LambdaContext,
    metrics: Metrics | None = None,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """Each delivery's outcome (run now, or recorded earlier), and the SQS messages to deliver again later.

    The answer is the retrain function's response: ``runs``, and ``batchItemFailures`` as Lambda's SQS
    event source mapping reads them (ReportBatchItemFailures in the template).
    """
    runs: list[dict[str, Any]] = []
    later: list[str] = []
    for delivery in deliveries:
        try:
            runs.append(retrain_once(settings, delivery.request, context=context, metrics=metrics, config=config))
        except IdempotencyAlreadyInProgressError:
            if delivery.message_id is None:
                raise
            logger.warning(
                "this request is being run by another invocation; SQS delivers it again later",
                extra={"request_id": delivery.request.request_id, "message_id": delivery.message_id},
            )
            later.append(delivery.message_id)
        except IdempotencyValidationError:
            logger.error(
                "request id reused for a different request; refused",
                extra={"request": delivery.request.model_dump(mode="json")},
            )
            runs.append(_refused(delivery.request))
    return {"runs": runs, "batchItemFailures": [{"itemIdentifier": message_id} for message_id in later]}


def retrain_once(
    settings: RetrainSettings,
    request: RetrainRequest,
    *,
    context: LambdaContext,
    metrics: Metrics | None = None,
    config: TrainConfig | None = None,
) -> dict[str, Any]:
    """``pipeline.retrain`` at most once per request id; a redelivery gets the recorded outcome.

    ``context`` (the Lambda context) bounds the INPROGRESS record by the invocation's remaining time, so
    a delivery that died is run again once its invocation could no longer be running (without it, the
    record would hold until it expired).
    """

    def answered_from_record(response: Any, record: Any) -> Any:
        logger.info("redelivered request answered with its recorded outcome", extra={"request_id": request.request_id})
        if metrics is not None:
            metrics.add_metric(name="RetrainRedelivered", unit=MetricUnit.Count, value=1)
        return {**response, "answered_from_record": True}

    idempotency = IdempotencyConfig(
        event_key_jmespath="request_id",
        payload_validation_jmespath=VALIDATED_FIELDS,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=OUTCOME_TTL_SECONDS,
        hash_function="sha256",
        response_hook=answered_from_record,
    )
    idempotency.register_lambda_context(context)

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=outcome_store(settings.retrain_requests_table),
        config=idempotency,
        key_prefix=KEY_PREFIX,
    )
    def run(request: RetrainRequest) -> dict[str, Any]:
        return retrain(settings, request, metrics=metrics, config=config).as_dict() | {"answered_from_record": False}

    return dict(run(request=request))


def _refused(request: RetrainRequest) -> dict[str, Any]:
    return {
        "request_id": request.request_id,
        "trigger": request.trigger.value,
        "reason": request.reason,
        "status": "refused",
        "version": None,
        "reasons": [f"request id {request.request_id} was used before for a different request"],
        "answered_from_record": False,
    }
