"""How the API answers a request it cannot serve: one mapping from errors to statuses and bodies.

Domain errors map to a status by class (``STATUS_OF``, first match wins); validation errors are 422s that
name each field and never echo the input. An anonymous caller reads a general sentence and the request
id: an exception's text can name the bucket (with the account id), a table or botocore's message, so it
goes to the log under that id instead. Only errors worded for the caller (``WORDED_FOR_CALLER``) keep
their text. A caller AdminGuard let through holds the admin token and reads the exception's text.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from nbaml.errors import BundleIntegrityError, ConflictError, NbamlError, NotFoundError, StorageError
from nbaml.serving.predictor import DateOutsideWindowError, IncompleteDaysError, NoModelError
from nbaml.serving.schemas import MISSING_DAYS_LIMIT, IncompleteDaysProblem, Problem, ValidationProblem

logger = Logger(child=True)
ADMIN_SCOPE_KEY = "nbaml.admin"  # set by AdminGuard on a request whose token it verified
MESSAGE_LIMIT = 300
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404),
    (ConflictError, 409),
    (BundleIntegrityError, 409),
    (ValueError, 422),
    (NoModelError, 503),
    (StorageError, 503),
)
WORDED_FOR_CALLER: tuple[type[Exception], ...] = (NoModelError, DateOutsideWindowError, IncompleteDaysError)
GENERAL: dict[int, str] = {
    400: "the request body could not be read",
    401: "admin route: send Authorization: Bearer <token>",
    403: "admin route: token refused",
    404: "not found",
    405: "method not allowed",
    409: "conflicts with what is deployed",
    413: "request body too large",
    422: "invalid request",
    500: "internal error",
    503: "temporarily unavailable: retry later",
}


def documented(*statuses: int, models: dict[int, tuple[type, str]] | None = None) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that can answer ``statuses``: each with its body model (and description),
    ``models`` naming those that differ from the general ones."""
    general = {status: (ValidationProblem if status == 422 else Problem, GENERAL[status]) for status in statuses}
    chosen = general | (models or {})
    return {status: {"model": model, "description": text} for status, (model, text) in chosen.items()}


def request_id(scope: Scope) -> str:
    """API Gateway's request id (the predict function logs under it), or a new one off Lambda."""
    event = scope.get("aws.event") or {}
    found = (event.get("requestContext") or {}).get("requestId")
    return str(found) if found else uuid.uuid4().hex


def problem(status: int, detail: str, error: str, rid: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = Problem(detail=detail[:MESSAGE_LIMIT], error=error, request_id=rid)
    return JSONResponse(status_code=status, content=body.model_dump(), headers=headers)


def _for_caller(request: Request, exc: Exception, status: int) -> str:
    if request.scope.get(ADMIN_SCOPE_KEY) or isinstance(exc, WORDED_FOR_CALLER):
        return str(exc)
    return GENERAL[status]


def _log(request: Request, rid: str, status: int, exc: Exception) -> None:
    extra = {"request_id": rid, "path": request.url.path, "status": status, "error": type(exc).__name__}
    if status >= 500:
        logger.error("request failed", extra=extra | {"detail": str(exc)})
    else:
        logger.info("request refused", extra=extra | {"detail": str(exc)[:MESSAGE_LIMIT]})


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """An NbamlError or a ValueError raised while serving a route."""
    status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
    rid = request_id(request.scope)
    _log(request, rid, status, exc)
    if isinstance(exc, IncompleteDaysError):
        return _incomplete(exc, rid)
    if status != 422:
        return problem(status, _for_caller(request, exc, status), type(exc).__name__, rid)
    loc: list[str | int] = ["body", "games", exc.index, "date"] if isinstance(exc, DateOutsideWindowError) else ["body"]
    item = {"loc": loc, "msg": _for_caller(request, exc, 422)[:MESSAGE_LIMIT], "type": "value_error"}
    return _unprocessable([item], type(exc).__name__, rid)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """pydantic's errors, with loc, msg and type only: its ``input`` and ``ctx`` would echo what was sent."""
    items = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:MESSAGE_LIMIT], "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return _unprocessable(items, "RequestValidationError", request_id(request.scope))


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's and the routes' own HTTP errors (unknown path, wrong method, unreadable body...)."""
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    detail = exc.detail if isinstance(exc.detail, str) else GENERAL.get(exc.status_code, "refused")
    return problem(exc.status_code, detail, "HTTPException", request_id(request.scope), headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (Starlette's own 405 names only the first route's)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def _incomplete(exc: IncompleteDaysError, rid: str) -> JSONResponse:
    """The 409 of a slate whose earlier days are incomplete: the message, and each day with its missing games."""
    missing = [
        {"date": m.day.isoformat(), "collected": m.collected, "pending": list(m.pending)}
        for m in exc.missing[:MISSING_DAYS_LIMIT]
    ]
    body = IncompleteDaysProblem.model_validate(
        {"detail": str(exc)[:MESSAGE_LIMIT], "error": type(exc).__name__, "request_id": rid, "missing": missing}
    )
    return JSONResponse(status_code=409, content=body.model_dump(mode="json"))


def _unprocessable(items: list[dict[str, Any]], error: str, rid: str) -> JSONResponse:
    body = ValidationProblem.model_validate({"detail": items, "error": error, "request_id": rid})
    return JSONResponse(status_code=422, content=body.model_dump())


def install(app: FastAPI) -> None:
    app.add_exception_handler(NbamlError, domain_error)
    app.add_exception_handler(ValueError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
