"""The RetrainRequests table: each retrain request's outcome by its id, kept by Powertools Idempotency.

Powertools' DynamoDB persistence layer writes and reads the items (key ``id``, ``status`` INPROGRESS or
COMPLETED, the recorded outcome in ``data``, ``expiration`` for the table's TTL and
``in_progress_expiration`` for a run that never finished). It is handed our own DynamoDB client, so the
endpoint, region and credentials of the environment (the local emulator, a function's role) apply to it
as to every other storage call.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from nbaml.storage.aws import client

# The item attributes, as the template's table declares them (its key and its TTL attribute).
KEY_ATTRIBUTE = "id"
EXPIRY_ATTRIBUTE = "expiration"


def outcome_store(table_name: str) -> DynamoDBPersistenceLayer:
    """Powertools' persistence layer on the RetrainRequests table, through nbaml's client for this identity.

    One per table and client, as Powertools expects a module-level one (each new one registers a hook on
    the client it is given).
    """
    return _store(table_name, client("dynamodb"))


@cache
def _store(table_name: str, dynamodb: Any) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(
        table_name=table_name, key_attr=KEY_ATTRIBUTE, expiry_attr=EXPIRY_ATTRIBUTE, boto3_client=dynamodb
    )
