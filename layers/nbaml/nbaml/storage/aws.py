"""AWS clients, created lazily and once per execution environment.

Never at import time, so tests and the local stack can set ``AWS_ENDPOINT_URL`` and credentials first.
boto3 itself reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), so the same code talks to
AWS, to the moto server of the local stack, or to LocalStack: nothing here names an endpoint.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@cache
def client(service: str) -> Any:
    """The shared boto3 client for ``service`` in this execution environment."""
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    """The shared boto3 resource for ``service`` (DynamoDB tables read better through it)."""
    return boto3.session.Session().resource(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget every client, e.g. after a test changes the endpoint or the credentials."""
    client.cache_clear()
    resource.cache_clear()
