"""The admin bearer token: checked by the HTTP API's Lambda authorizer on AWS and by the app everywhere.

The token lives in an SSM SecureString (created outside the template); it is compared in constant time
and never logged. The caller it names is the version of that SecureString the token matched
(``admin-token:v3``): the one identity a shared bearer token has, written to the HTTP API's access log.
"""

from __future__ import annotations

import hmac

from aws_lambda_powertools import Logger

from nbaml.errors import NbamlError
from nbaml.storage import parameters

logger = Logger(child=True)
TOKEN_MAX_AGE_SECONDS = 300


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def admin_caller(header: str | None, token_param: str) -> str | None:
    """``admin-token:v<N>`` when the header carries the admin token (version N of its SecureString), else None.

    A missing or unreadable secret denies everyone.
    """
    presented = bearer_token(header)
    if presented is None:
        return None
    try:
        expected, version = parameters.read_secret_versioned(token_param, max_age=TOKEN_MAX_AGE_SECONDS)
    except NbamlError as exc:
        logger.error("admin token unavailable; denying", extra={"error": type(exc).__name__})
        return None
    if expected and hmac.compare_digest(presented.encode(), expected.encode()):
        return f"admin-token:v{version}"
    return None


def is_authorized(header: str | None, token_param: str) -> bool:
    """True when the header carries the admin token (``admin_caller`` names who)."""
    return admin_caller(header, token_param) is not None
