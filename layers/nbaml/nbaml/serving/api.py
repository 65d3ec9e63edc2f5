"""The prediction API: FastAPI, wrapped by Mangum in functions/predict, served by uvicorn locally.

``create_app`` assembles it: what the routes work with (nbaml.serving.context, kept in ``app.state``), the
public and admin routers (nbaml.serving.public, .admin), the error mapping (nbaml.serving.problems) and
``AdminGuard`` in front. Public: GET /health, POST /predictions, GET /predictions?date=, GET /models,
GET /models/{version}, GET /reports/latest(.json). Admin (bearer token; on AWS also behind the HTTP API's
Lambda authorizer): POST /admin/promote, POST /admin/rollback, PUT|DELETE /admin/canary,
PUT|DELETE /admin/shadow, POST /admin/retrain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from aws_lambda_powertools import Metrics
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from nbaml.config import PredictSettings, load_settings
from nbaml.serving import admin, context, problems, public
from nbaml.serving.auth import bearer_token, is_authorized
from nbaml.serving.predictor import PredictionSink


def create_app(
    settings: PredictSettings | None = None,
    *,
    sink: PredictionSink | None = None,
    metrics: Metrics | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> FastAPI:
    """Build the app from the function's settings (read from the environment when not given); ``now`` is the
    predictor's clock (the replay passes its simulated time)."""
    settings = settings or load_settings(PredictSettings)
    app = FastAPI(
        title="nbaml prediction API",
        version="1",
        description="Home-win probabilities for NBA games from the active XGBoost model, with canary, shadow "
        "and rollback. Admin routes need `Authorization: Bearer <token>`.",
        # Traces and metrics go through Powertools and X-Ray, not OpenTelemetry: FastAPI's native telemetry off
        # spares every request its check for configured providers.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.serving = context.build(settings, sink, metrics or Metrics(), now)
    app.include_router(public.router)
    app.include_router(admin.router)
    problems.install(app)
    app.add_middleware(AdminGuard, token_param=settings.admin_token_param)
    return app


class AdminGuard:
    """Refuses /admin requests without the admin token before routing and body validation.

    A pure ASGI middleware rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware wraps every
    request, public ones included, in a task group and memory streams, which cost more than the prediction
    itself. An anonymous call learns nothing (not even the body schema) and changes nothing. A request it lets
    through is marked, so its errors may carry their details (nbaml.serving.problems).
    """

    def __init__(self, app: ASGIApp, token_param: str) -> None:
        self.app = app
        self.token_param = token_param

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).startswith("/admin"):
            header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"authorization"), None)
            rid = problems.request_id(scope)
            if bearer_token(header) is None:
                challenge = {"WWW-Authenticate": "Bearer"}
                refusal = problems.problem(401, problems.GENERAL[401], "Unauthorized", rid, challenge)
            elif not is_authorized(header, self.token_param):
                refusal = problems.problem(403, problems.GENERAL[403], "Forbidden", rid)
            else:
                scope[problems.ADMIN_SCOPE_KEY] = True
                await self.app(scope, receive, send)
                return
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the root path (an HTTP API stage) when the server kept it in front."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path
