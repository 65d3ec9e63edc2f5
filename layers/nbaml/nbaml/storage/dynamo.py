"""DynamoDB plumbing shared by the three table modules: number conversion and error wrapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import ConflictError, StorageError
from nbaml.storage.aws import dynamodb_table

T = TypeVar("T")


# The table modules' name for the shared Table of a name (built once per name and identity, not once per call).
table = dynamodb_table


def to_item(document: dict[str, Any]) -> dict[str, Any]:
    """A JSON-like document as a DynamoDB item: floats become Decimals, None values are dropped."""
    clean = {key: value for key, value in document.items() if value is not None}
    return json.loads(json.dumps(clean, default=str), parse_float=Decimal)


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python: Decimals become int or float."""

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(item)


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def call(what: str, operation: Callable[[], T]) -> T:
    """Run one DynamoDB call, wrapping botocore's errors into ours (a lost condition is a ConflictError)."""
    try:
        return operation()
    except ClientError as exc:
        if is_conditional_failure(exc):
            raise ConflictError(f"{what}: condition failed") from exc
        raise StorageError(f"{what}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def query_all(tbl: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a query, following pagination (stops early when ``Limit`` items were collected)."""
    limit = kwargs.get("Limit")
    items: list[dict[str, Any]] = []
    while True:
        response = tbl.query(**kwargs)
        items.extend(response.get("Items", []))
        last = response.get("LastEvaluatedKey")
        if not last or (limit is not None and len(items) >= limit):
            return [from_item(i) for i in items[:limit]]
        kwargs["ExclusiveStartKey"] = last


def scan_all(tbl: Any, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        response = tbl.scan(**kwargs)
        items.extend(response.get("Items", []))
        last = response.get("LastEvaluatedKey")
        if not last:
            return [from_item(i) for i in items]
        kwargs["ExclusiveStartKey"] = last
