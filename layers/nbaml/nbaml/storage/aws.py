"""AWS clients, created lazily and once per execution environment and identity.

Never at import time, so tests and the local stack can set ``AWS_ENDPOINT_URL`` and credentials first.
The endpoint and credentials come from the standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``
...), so the same code talks to AWS, to the moto server of the local stack, or to LocalStack: nothing here
names an endpoint. Where none is set, boto3's own chain decides (``AWS_ENDPOINT_URL_<SERVICE>``, profiles,
Lambda's role credentials).

In Lambda the environment is the function's identity and never changes. A local server that hosts one
function beside others in one process (the replay's HTTP API) ``pin``s the identity the function was
started with, so its requests keep signing as that function whatever the process environment says then.

Every session shares one botocore data loader: the service models and endpoint rules (JSON files of several
hundred kilobytes) are parsed once per process, not once per client, which is most of what a client costs.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import Loader, create_loader

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


@dataclass(frozen=True)
class Identity:
    """Where AWS calls go and who signs them: the endpoint, region and credentials of the environment."""

    endpoint: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""


_PINNED: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("nbaml_aws_identity", default=None)


def current_identity() -> Identity:
    """The pinned identity, else the one the process environment names."""
    pinned = _PINNED.get()
    if pinned is not None:
        return pinned
    env = os.environ
    return Identity(
        endpoint=env.get("AWS_ENDPOINT_URL", ""),
        region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "")),
        access_key_id=env.get("AWS_ACCESS_KEY_ID", ""),
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", ""),
        session_token=env.get("AWS_SESSION_TOKEN", env.get("AWS_SECURITY_TOKEN", "")),
    )


@contextlib.contextmanager
def pinned(identity: Identity) -> Iterator[None]:
    """Sign every call of the block (and of what it starts in this context) as ``identity``."""
    token = _PINNED.set(identity)
    try:
        yield
    finally:
        _PINNED.reset(token)


def client(service: str) -> Any:
    """The shared boto3 client for ``service`` in this execution environment (one per endpoint and identity)."""
    return _client(service, current_identity())


def resource(service: str) -> Any:
    """The shared boto3 resource for ``service`` (DynamoDB tables read better through it)."""
    return _resource(service, current_identity())


def dynamodb_table(name: str) -> Any:
    """The shared DynamoDB ``Table`` resource for ``name``, on the shared resource of this identity.

    boto3 builds a Table's class anew from the resource model on every ``Table(name)`` (about 0.6 ms here, more
    than a put_item's own client-side work), so a table is built once per name and identity, not once per call.
    """
    return _table(name, current_identity())


def _quiet_wire_logs() -> None:
    # botocore's DEBUG log prints request and response bodies, a decrypted SecureString included: never
    # let a DEBUG level set later reach them (security/FINDINGS.md, S-01).
    for name in ("botocore", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@cache
def _loader() -> Loader:
    """The process's botocore data loader: the parsed JSON is cached on it (boto3 adds its resource models)."""
    return create_loader()


def _session(identity: Identity) -> boto3.session.Session:
    """A session for ``identity`` on the shared loader; what it leaves empty, boto3's own chain fills."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    session = boto3.session.Session(
        aws_access_key_id=identity.access_key_id or None,
        aws_secret_access_key=identity.secret_access_key or None,
        aws_session_token=identity.session_token or None,
        region_name=identity.region or None,
        botocore_session=core,
    )
    # boto3 appends its data folder to the loader it is given, once per session: keep one of each
    paths = core.get_component("data_loader").search_paths
    paths[:] = list(dict.fromkeys(paths))
    return session


@cache
def _client(service: str, identity: Identity) -> Any:
    _quiet_wire_logs()
    endpoint = identity.endpoint or None
    return _session(identity).client(service, endpoint_url=endpoint, config=_CONFIG)  # type: ignore[call-overload]


@cache
def _resource(service: str, identity: Identity) -> Any:
    _quiet_wire_logs()
    endpoint = identity.endpoint or None
    return _session(identity).resource(service, endpoint_url=endpoint, config=_CONFIG)  # type: ignore[call-overload]


@cache
def _table(name: str, identity: Identity) -> Any:
    return _resource("dynamodb", identity).Table(name)


def reset_clients() -> None:
    """Forget every client (tests that swap credentials inside one endpoint, e.g. moto's mock_aws)."""
    _client.cache_clear()
    _resource.cache_clear()
    _table.cache_clear()
