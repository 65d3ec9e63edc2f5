"""AWS clients, created lazily and once per execution environment.

Never at import time, so tests and the local stack can set ``AWS_ENDPOINT_URL`` and credentials first.
boto3 itself reads ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), so the same code talks to
AWS, to the moto server of the local stack, or to LocalStack: nothing here names an endpoint.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


def _where() -> tuple[str, str, str]:
    # In Lambda these never change; locally a test or the replay may point the process at another emulator.
    return (
        os.environ.get("AWS_ENDPOINT_URL", ""),
        os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "")),
        os.environ.get("AWS_ACCESS_KEY_ID", ""),
    )


def client(service: str) -> Any:
    """The shared boto3 client for ``service`` in this execution environment (one per endpoint)."""
    return _client(service, *_where())


def resource(service: str) -> Any:
    """The shared boto3 resource for ``service`` (DynamoDB tables read better through it)."""
    return _resource(service, *_where())


def _quiet_wire_logs() -> None:
    # botocore's DEBUG log prints request and response bodies, a decrypted SecureString included: never
    # let a DEBUG level set later reach them (security/FINDINGS.md, S-01).
    for name in ("botocore", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@cache
def _client(service: str, endpoint: str, region: str, key_id: str) -> Any:
    _quiet_wire_logs()
    return boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def _resource(service: str, endpoint: str, region: str, key_id: str) -> Any:
    _quiet_wire_logs()
    return boto3.session.Session().resource(service, config=_CONFIG)  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget every client (tests that swap credentials inside one endpoint, e.g. moto's mock_aws)."""
    _client.cache_clear()
    _resource.cache_clear()
