"""The HTTP API's Lambda authorizer reads the Authorization header whatever its case.

API Gateway's HTTP API lowercases header names in the authorizer's event; ``sam local start-api`` passes
them as the client sent them (``Authorization``). The SAM tier found the authorizer denying the right token
under SAM; these pin the fix without Docker.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cr3t-token-for-the-unit-test"


def _authorizer_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nbaml_unit_authorizer_app", ROOT / "functions/authorizer/app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"authorization": f"Bearer {TOKEN}"}, True),  # API Gateway's HTTP API
        ({"Authorization": f"Bearer {TOKEN}"}, True),  # sam local start-api
        ({"AUTHORIZATION": f"Bearer {TOKEN}"}, True),
        ({"Authorization": "Bearer wrong"}, False),
        ({"x-other": f"Bearer {TOKEN}"}, False),
        ({}, False),
    ],
)
def test_given_an_authorization_header_in_any_case_when_authorizing_then_only_the_token_passes(
    stack, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], allowed: bool
) -> None:
    # Given the admin token in its SecureString, as the deploy creates it
    name = stack.env["ADMIN_TOKEN_PARAM"]
    version = boto3.client("ssm").put_parameter(Name=name, Value=TOKEN, Type="SecureString", Overwrite=True)["Version"]
    app = _authorizer_module()
    app.settings.cache_clear()
    # When the authorizer is handed the event; Then it allows exactly the token, naming which version it matched
    assert app.authorization_header({"headers": headers}) in {"", *headers.values()}
    caller = app.admin_caller(app.authorization_header({"headers": headers}), name)
    assert caller == (f"admin-token:v{version}" if allowed else None)


def test_given_the_admin_token_rotated_when_the_cache_is_cold_then_only_the_new_one_passes_naming_its_version(
    stack,
) -> None:
    # Given the admin token, then a rotation (a new SecureString version)
    from infra.runtime import LocalLambdaContext
    from nbaml.storage import parameters

    context = LocalLambdaContext(function_name="nbaml-test-authorizer", memory_limit_in_mb=256, timeout_s=5)
    name, ssm = stack.env["ADMIN_TOKEN_PARAM"], boto3.client("ssm")
    first = ssm.put_parameter(Name=name, Value=TOKEN, Type="SecureString", Overwrite=True)["Version"]
    app = _authorizer_module()
    app.settings.cache_clear()
    event = {"type": "REQUEST", "headers": {"authorization": f"Bearer {TOKEN}"}}
    assert app.handler(event, context) == {"isAuthorized": True, "context": {"caller": f"admin-token:v{first}"}}
    rotated = ssm.put_parameter(Name=name, Value=f"{TOKEN}-rotated", Type="SecureString", Overwrite=True)["Version"]
    # When the cached token has expired (a cold start here)
    parameters.reset_cache()
    # Then the old token is denied and the new one allowed, the caller naming the new version, never the token
    assert app.handler(event, context) == {"isAuthorized": False}
    event["headers"]["authorization"] = f"Bearer {TOKEN}-rotated"
    allowed = app.handler(event, context)
    assert allowed == {"isAuthorized": True, "context": {"caller": f"admin-token:v{rotated}"}}
    assert TOKEN not in str(allowed)
