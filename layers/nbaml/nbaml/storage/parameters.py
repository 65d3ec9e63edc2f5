"""SSM parameters: the deployment roles (active, canary, shadow) and the SecureStrings (feed key, admin token).

Reads go through Powertools Parameters with an explicit ``max_age``, so a warm function re-reads a role
at most that often: writing ``active`` moves every warm instance within max_age, with no restart. That
write is the rollback.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities import parameters as pt_parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import NotFoundError, StorageError
from nbaml.storage.aws import client

NONE = "none"


@dataclass(frozen=True)
class Canary:
    version: str
    percent: int

    def encode(self) -> str:
        return f"{self.version}:{self.percent}"

    @classmethod
    def decode(cls, value: str) -> Canary | None:
        if not value or value == NONE:
            return None
        version, _, percent = value.rpartition(":")
        try:
            share = int(percent)
        except ValueError:
            return None
        if not version or not 0 < share <= 100:
            return None
        return cls(version, share)


@dataclass(frozen=True)
class ParameterChange:
    """One write of a role parameter: its value, when, by whom, and the description (our "why")."""

    value: str
    version: int
    modified_at: dt.datetime
    modified_by: str
    description: str


def _provider() -> pt_parameters.SSMProvider:
    # One provider per SSM client (so per endpoint), built lazily: its cache belongs to that endpoint.
    global _SSM
    ssm = client("ssm")
    if _SSM is None or _SSM[0] is not ssm:
        _SSM = (ssm, pt_parameters.SSMProvider(boto3_client=ssm))
    return _SSM[1]


_SSM: tuple[Any, pt_parameters.SSMProvider] | None = None
# SecureStrings read with their version: name -> (the SSM client read with, monotonic expiry, value, version).
_VERSIONED_SECRETS: dict[str, tuple[Any, float, str, int]] = {}


def reset_cache() -> None:
    """Forget cached values and the provider (tests; and after the endpoint changes)."""
    global _SSM
    _SSM = None
    _VERSIONED_SECRETS.clear()
    pt_parameters.clear_caches()


def read(name: str, *, max_age: int = 0, decrypt: bool = False) -> str:
    """A parameter's value, cached for ``max_age`` seconds (0 always asks SSM)."""
    try:
        if max_age <= 0:
            response = client("ssm").get_parameter(Name=name, WithDecryption=decrypt)
            return str(response["Parameter"]["Value"])
        return str(_provider().get(name, max_age=max_age, decrypt=decrypt))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise NotFoundError(f"SSM parameter {name} does not exist") from exc
        raise StorageError(f"cannot read SSM parameter {name}: {exc}") from exc
    except GetParameterError as exc:
        if "ParameterNotFound" in str(exc):
            raise NotFoundError(f"SSM parameter {name} does not exist") from exc
        raise StorageError(f"cannot read SSM parameter {name}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot read SSM parameter {name}: {exc}") from exc


def _get_versioned(ssm: Any, name: str, *, decrypt: bool) -> tuple[str, int]:
    try:
        parameter = ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise NotFoundError(f"SSM parameter {name} does not exist") from exc
        raise StorageError(f"cannot read SSM parameter {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot read SSM parameter {name}: {exc}") from exc
    return str(parameter["Value"]), int(parameter["Version"])


def read_versioned(name: str) -> tuple[str, int]:
    """A parameter's value and its version number, read now (no cache): what a compare-and-set compares."""
    return _get_versioned(client("ssm"), name, decrypt=False)


def read_secret(name: str, *, max_age: int = 300) -> str:
    """A SecureString, decrypted. Its value must never reach a log line or an error message."""
    return read(name, max_age=max_age, decrypt=True)


def read_secret_versioned(name: str, *, max_age: int = 300) -> tuple[str, int]:
    """A SecureString, decrypted, with its version number (which token it is, never the token), cached for
    ``max_age`` seconds. The value must never reach a log line or an error message; the version may."""
    ssm = client("ssm")
    cached = _VERSIONED_SECRETS.get(name)
    if cached and cached[0] is ssm and cached[1] > time.monotonic():  # the same endpoint and identity, in time
        return cached[2], cached[3]
    value, version = _get_versioned(ssm, name, decrypt=True)
    if max_age > 0:
        _VERSIONED_SECRETS[name] = (ssm, time.monotonic() + max_age, value, version)
    return value, version


def write(name: str, value: str, *, why: str) -> int:
    """Overwrite a role parameter; ``why`` is stored as its description so the history explains itself."""
    try:
        response = client("ssm").put_parameter(
            Name=name, Value=value, Type="String", Overwrite=True, Description=why[:1024]
        )
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"cannot write SSM parameter {name}: {exc}") from exc
    return int(response["Version"])


def history(name: str) -> list[ParameterChange]:
    """Every value the parameter has held, oldest first: the audit trail of promotions and rollbacks."""
    changes: list[ParameterChange] = []
    try:
        for page in client("ssm").get_paginator("get_parameter_history").paginate(Name=name):
            for item in page.get("Parameters", []):
                changes.append(
                    ParameterChange(
                        value=str(item.get("Value", "")),
                        version=int(item.get("Version", 0)),
                        modified_at=item.get("LastModifiedDate") or dt.datetime.now(dt.UTC),
                        modified_by=str(item.get("LastModifiedUser", "")),
                        description=str(item.get("Description", "")),
                    )
                )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise NotFoundError(f"SSM parameter {name} does not exist") from exc
        raise StorageError(f"cannot read history of {name}: {exc}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"cannot read history of {name}: {exc}") from exc
    return sorted(changes, key=lambda change: change.version)
