"""The retrain queue (SQS): drift_check and the admin API ask for a retrain by sending a message."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import StorageError
from nbaml.events import RetrainRequest
from nbaml.storage.aws import client


def send_retrain_request(queue_url: str, request: RetrainRequest) -> str:
    """Queue a retrain request; returns the SQS message id."""
    try:
        response = client("sqs").send_message(QueueUrl=queue_url, MessageBody=request.to_message())
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot queue retrain request: {exc}") from exc
    return str(response["MessageId"])


def receive_retrain_requests(queue_url: str, *, max_messages: int = 10) -> list[dict]:
    """Pending messages as SQS event records (the local stack feeds them to the retrain handler)."""
    try:
        response = client("sqs").receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=0
        )
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot read the retrain queue: {exc}") from exc
    return [
        {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "eventSource": "aws:sqs"}
        for m in response.get("Messages", [])
    ]


def delete_retrain_request(queue_url: str, receipt_handle: str) -> None:
    try:
        client("sqs").delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot delete a retrain request: {exc}") from exc
