"""authorizer - HTTP API Lambda authorizer (simple responses) guarding the /admin routes on AWS.

The same token check the app applies locally (nbaml.serving.auth), so both paths accept the same token.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from nbaml.config import AuthorizerSettings, load_settings
from nbaml.serving.auth import is_authorized

logger = Logger()


@cache
def settings() -> AuthorizerSettings:
    return load_settings(AuthorizerSettings)


def authorization_header(event: dict[str, Any]) -> str:
    """The Authorization header whatever its case: HTTP API lowercases header names, ``sam local start-api``
    passes the client's own (found by the SAM tier); HTTP header names are case-insensitive either way."""
    headers = event.get("headers") or {}
    return next((str(value) for name, value in headers.items() if name.lower() == "authorization"), "")


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    return {"isAuthorized": is_authorized(authorization_header(event), settings().admin_token_param)}
