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


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, bool]:
    header = (event.get("headers") or {}).get("authorization", "")
    return {"isAuthorized": is_authorized(header, settings().admin_token_param)}
