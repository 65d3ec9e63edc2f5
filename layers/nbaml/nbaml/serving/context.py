"""What the routes work with, built once per app (one per execution environment) and kept in ``app.state``.

Routes take it as a dependency (``Ctx``), so a test builds an app with its own sink or metrics and every
route sees them; nothing is read from module globals. The dependency is a coroutine: FastAPI runs a plain
``def`` dependency in a worker thread, which on the hot routes would cost more than the prediction.

``GET /models`` and ``GET /models/{version}`` are anonymous, and the registry view behind them costs a
DynamoDB scan and four SSM calls (three roles and the active parameter's history). SSM allows about 40
calls a second per account and region, shared with the authorizer, new predict instances and collect, while
the HTTP API lets 100 requests a second through: so the view is cached for MODEL_PARAM_MAX_AGE_SECONDS, the
freshness the served roles already have, and a warm instance asks SSM for it at most four times per max_age
however many callers ask. It stays public (rather than behind the admin token) because which versions exist
and how they scored is what a client of the predictions needs to judge them; it leaves out the IAM
principal SSM records for each write, which names the account.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from aws_lambda_powertools import Metrics
from fastapi import Depends, Request

from nbaml.config import PredictSettings
from nbaml.deployment import Deployment
from nbaml.serving.models import Fresh, ServedModels
from nbaml.serving.predictor import PredictionSink, Predictor
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.predictions import PredictionLog


@dataclass(frozen=True)
class Serving:
    settings: PredictSettings
    store: ArtifactStore
    models: ServedModels
    log: PredictionLog
    predictor: Predictor
    deployment: Deployment
    registry_view: Fresh[dict[str, Any]]


def build(
    settings: PredictSettings,
    sink: PredictionSink | None = None,
    metrics: Metrics | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> Serving:
    """``now`` is the predictor's clock (the replay's simulated time); the real one by default."""
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
    deployment = Deployment(settings)
    return Serving(
        settings=settings,
        store=store,
        models=models,
        log=log,
        predictor=Predictor(models, sink or log, metrics, **({"now": now} if now else {})),
        deployment=deployment,
        registry_view=Fresh(
            lambda: public_overview(deployment), settings.model_param_max_age_seconds, "registry", time.monotonic
        ),
    )


def public_overview(deployment: Deployment) -> dict[str, Any]:
    """``Deployment.overview`` without the IAM principal of each parameter write."""
    overview = deployment.overview()
    overview["active_history"] = [
        {key: value for key, value in change.items() if key != "by"} for change in overview["active_history"]
    ]
    return overview


async def serving(request: Request) -> Serving:
    return request.app.state.serving  # type: ignore[no-any-return]


Ctx = Annotated[Serving, Depends(serving)]
