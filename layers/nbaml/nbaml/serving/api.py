"""The prediction API: FastAPI, wrapped by Mangum in functions/predict, served by uvicorn locally.

Public: GET /health, POST /predictions, GET /predictions?date=, GET /models, GET /models/{version},
GET /reports/latest. Admin (bearer token; on AWS also behind the HTTP API's Lambda authorizer):
POST /admin/promote, POST /admin/rollback, PUT|DELETE /admin/canary, PUT|DELETE /admin/shadow,
POST /admin/retrain. One exception handler maps domain errors to HTTP statuses, so no bad input
reaches a 5xx.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from nbaml.bundle import is_valid_version
from nbaml.config import PredictSettings, load_settings
from nbaml.deployment import Deployment
from nbaml.errors import (
    BundleIntegrityError,
    ConflictError,
    NbamlError,
    NotFoundError,
    StorageError,
)
from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.layout import DRIFT_HTML, DRIFT_JSON, report_key
from nbaml.serving import schemas
from nbaml.serving.auth import bearer_token, is_authorized
from nbaml.serving.models import ServedModels
from nbaml.serving.predictor import GameQuery, NoModelError, PredictionSink, Predictor, StaleStateError
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.predictions import PredictionLog
from nbaml.storage.queue import send_retrain_request

logger = Logger(child=True)
ADMIN_ACTOR = "admin-api"


def admin_actor(authorization: Annotated[str | None, Header(description="Bearer <admin token>")] = None) -> str:
    """The actor recorded in the registry and the SSM history for admin changes (the token is checked earlier)."""
    return ADMIN_ACTOR


# Module level, so FastAPI can resolve it from the (postponed) annotations of the routes.
Admin = Annotated[str, Depends(admin_actor)]


class AdminGuard:
    """Refuses /admin requests without the admin token before routing and body validation.

    A pure ASGI middleware rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware wraps every
    request, public ones included, in a task group and memory streams, which cost more than the prediction
    itself. An anonymous call learns nothing (not even the body schema) and changes nothing.
    """

    def __init__(self, app: ASGIApp, token_param: str) -> None:
        self.app = app
        self.token_param = token_param

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).startswith("/admin"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
            refusal: JSONResponse | None = None
            if bearer_token(header) is None:
                refusal = JSONResponse(
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                    content={"detail": "admin route: send Authorization: Bearer <token>"},
                )
            elif not is_authorized(header, self.token_param):
                refusal = JSONResponse(status_code=403, content={"detail": "admin route: token refused"})
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _unprocessable(message: str, loc: tuple[str, ...], error: str) -> JSONResponse:
    """A 422 in the one shape the OpenAPI spec declares for 422 (FastAPI's HTTPValidationError), whoever raised it.

    Clients (and schemathesis) read every 422 the same way: ``detail`` is a list of {loc, msg, type}.
    """
    item = {"loc": list(loc), "msg": message, "type": "value_error"}
    return JSONResponse(status_code=422, content={"detail": [item], "error": error})


def _invalid(loc: tuple[str, ...], message: str) -> RequestValidationError:
    """A check the schema cannot express (a slate limit from settings), reported like pydantic's own."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path (an HTTP API stage) when the server kept it in front."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def create_app(
    settings: PredictSettings | None = None, *, sink: PredictionSink | None = None, metrics: Metrics | None = None
) -> FastAPI:
    """Build the app from the function's settings (read from the environment when not given)."""
    settings = settings or load_settings(PredictSettings)
    metrics = metrics or Metrics()
    store = ArtifactStore(settings.nbaml_bucket)
    models = ServedModels(
        store=store,
        active_param=settings.active_model_param,
        canary_param=settings.canary_model_param,
        shadow_param=settings.shadow_model_param,
        max_age=settings.model_param_max_age_seconds,
        metrics=metrics,
    )
    log = PredictionLog(settings.predictions_table)
    predictor = Predictor(models, sink or log, metrics)
    deployment = Deployment(settings)

    app = FastAPI(
        title="nbaml prediction API",
        version="1",
        description="Home-win probabilities for NBA games from the active XGBoost model, with canary, shadow "
        "and rollback. Admin routes need `Authorization: Bearer <token>`.",
    )
    app.state.models = models
    app.state.predictor = predictor

    @app.exception_handler(NbamlError)
    async def _domain_error(request: Request, exc: NbamlError) -> JSONResponse:
        status = 500
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, ConflictError | BundleIntegrityError):
            status = 409
        elif isinstance(exc, StaleStateError | ValueError):
            status = 422
        elif isinstance(exc, NoModelError | StorageError):
            status = 503
        if status >= 500:
            logger.error("request failed", extra={"path": request.url.path, "error": str(exc)})
        if status == 422:
            return _unprocessable(str(exc), ("body",), type(exc).__name__)
        return JSONResponse(status_code=status, content={"detail": str(exc), "error": type(exc).__name__})

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return _unprocessable(str(exc), ("body",), "ValueError")

    app.add_middleware(AdminGuard, token_param=settings.admin_token_param)

    # ---------------------------------------------------------------- public
    # The two hot routes are coroutines on purpose: a plain ``def`` route runs in anyio's worker threads, and
    # under Mangum every request is a fresh event-loop run, whose worker threads die with it, so each request
    # paid a thread start and two thread hand-offs (most of the handler's time and all of its p99 in
    # bench/bench_serving.py). A Lambda execution environment serves one request at a time, so there is nothing
    # to overlap; under uvicorn locally the work simply runs on the loop.
    @app.get("/health", summary="The version being served, since when, and its bundle's checksum state")
    async def health() -> JSONResponse:
        champion = models.champion()
        state = models.league_state()
        canary = models.canary()
        shadow = models.shadow()
        body: dict[str, Any] = {
            "status": "ok" if champion else "no-model",
            "active": None
            if champion is None
            else {"version": champion.version, "since": champion.since.isoformat(), "checksum": champion.checksum},
            "canary": None if canary is None else {"version": canary[0].version, "percent": canary[1]},
            "shadow": None if shadow is None else shadow.version,
            "state_as_of": state.as_of.isoformat() if state and state.as_of else None,
            "last_refusal": None
            if models.last_refusal is None
            else models.last_refusal.__dict__ | {"at": models.last_refusal.at.isoformat()},
            "pending_log_writes": predictor.pending,
        }
        return JSONResponse(status_code=200 if champion else 503, content=body)

    @app.post("/predictions", response_model=schemas.PredictionResponse, summary="Predict one game or a slate")
    async def predict(request: schemas.PredictionRequest) -> schemas.PredictionResponse:
        if len(request.games) > settings.slate_limit:
            raise _invalid(("body", "games"), f"at most {settings.slate_limit} games a request")
        answers = predictor.predict([GameQuery(g.home, g.away, g.date) for g in request.games])
        return schemas.PredictionResponse(predictions=[schemas.PredictionOut(**a.__dict__) for a in answers])

    @app.get("/predictions", summary="What was served and scored for a date, with outcomes once known")
    def predictions_on(date: Annotated[dt.date, Query(description="game day, YYYY-MM-DD")]) -> dict[str, Any]:
        items = log.on_date(date)
        for item in items:
            item.pop("features", None)
        return {"date": date.isoformat(), "predictions": items}

    @app.get("/models", summary="The registry (the seed's model_versions table) and the roles")
    def list_models() -> dict[str, Any]:
        return deployment.overview()

    @app.get("/models/{version}", summary="One registered version")
    def get_model(version: str) -> dict[str, Any]:
        if not is_valid_version(version):
            raise _invalid(("path", "version"), f"{version!r} is not v1 or vYYYYMMDD_HHMMSS")
        return deployment.registry.get(version)

    @app.get("/reports/latest", summary="The latest drift report (HTML)", response_class=HTMLResponse)
    def latest_report() -> HTMLResponse:
        return HTMLResponse(store.get_bytes(report_key(DRIFT_HTML)).decode())

    @app.get("/reports/latest.json", summary="The latest drift report (JSON)")
    def latest_report_json() -> dict[str, Any]:
        return store.get_json(report_key(DRIFT_JSON))

    # ---------------------------------------------------------------- admin
    @app.post("/admin/promote", summary="Make a version the champion")
    def promote(body: schemas.PromoteRequest, who: Admin) -> dict[str, str]:
        return deployment.promote(body.version, by=who, why=body.reason).as_dict()

    @app.post("/admin/rollback", summary='Serve an earlier version again ("previous" or a version)')
    def rollback(body: schemas.RollbackRequest, who: Admin) -> dict[str, str]:
        return deployment.rollback(body.version, by=who, why=body.reason).as_dict()

    @app.put("/admin/canary", summary="Serve a version to a share of games")
    def set_canary(body: schemas.CanaryRequest, who: Admin) -> dict[str, str]:
        return deployment.set_canary(body.version, body.percent, by=who, why=body.reason).as_dict()

    @app.delete("/admin/canary", summary="Stop the canary")
    def clear_canary(who: Admin, reason: Annotated[str, Query(min_length=3)] = "canary ended") -> dict[str, str]:
        return deployment.clear_canary(by=who, why=reason).as_dict()

    @app.put("/admin/shadow", summary="Score a version on every request without returning it")
    def set_shadow(body: schemas.ShadowRequest, who: Admin) -> dict[str, str]:
        return deployment.set_shadow(body.version, by=who, why=body.reason).as_dict()

    @app.delete("/admin/shadow", summary="Stop the shadow")
    def clear_shadow(who: Admin, reason: Annotated[str, Query(min_length=3)] = "shadow ended") -> dict[str, str]:
        return deployment.clear_shadow(by=who, why=reason).as_dict()

    @app.post("/admin/retrain", status_code=202, summary="Queue a retrain with a reason")
    def retrain(body: schemas.Reasoned, who: Admin) -> schemas.RetrainAccepted:
        request = RetrainRequest(trigger=RetrainTrigger.MANUAL, reason=body.reason, requested_by=who, force=True)
        send_retrain_request(settings.retrain_queue_url, request)
        return schemas.RetrainAccepted(request_id=request.request_id)

    return app
