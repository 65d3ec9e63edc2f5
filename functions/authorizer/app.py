"""authorizer - HTTP API Lambda authorizer (simple responses) guarding the /admin routes on AWS.

The same token check the app applies locally (nbaml.serving.auth), so both paths accept the same token.
An allowed request carries the caller in its context (``caller``: which version of the admin token), which
the HTTP API's access log records as ``$context.authorizer.caller``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from nbaml import coldstart

coldstart.pause()  # until the first invocation has checked a token (nbaml.coldstart says why)

from aws_lambda_powertools import Logger  # noqa: E402
from aws_lambda_powertools.utilities.typing import LambdaContext  # noqa: E402

from nbaml.config import AuthorizerSettings, load_settings  # noqa: E402
from nbaml.serving.auth import admin_caller  # noqa: E402

logger = Logger()


@cache
def settings() -> AuthorizerSettings:
    return load_settings(AuthorizerSettings)


def authorization_header(event: dict[str, Any]) -> str:
    """The Authorization header whatever its case: HTTP API lowercases header names, ``sam local start-api``
    passes the client's own (found by the SAM tier); HTTP header names are case-insensitive either way."""
    headers = event.get("headers") or {}
    return next((str(value) for name, value in headers.items() if name.lower() == "authorization"), "")


@coldstart.settles_after_first_call
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    caller = admin_caller(authorization_header(event), settings().admin_token_param)
    if caller is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"caller": caller}}
