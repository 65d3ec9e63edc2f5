"""The anonymous routes: health, predictions, the registry view, the drift report.

The two hot routes (``/health``, ``POST /predictions``) are coroutines on purpose: a plain ``def`` route runs
in anyio's worker threads, and under Mangum every request is a fresh event-loop run, whose worker threads die
with it, so each request paid a thread start and two thread hand-offs (most of the handler's time and all of
its p99 in bench/bench_serving.py). A Lambda execution environment serves one request at a time, so there is
nothing to overlap; under uvicorn locally the work simply runs on the loop. The others wait on S3, DynamoDB
or SSM and stay plain functions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from nbaml.errors import NotFoundError
from nbaml.layout import DRIFT_HTML, DRIFT_JSON, report_key
from nbaml.serving import schemas
from nbaml.serving.context import Ctx
from nbaml.serving.predictor import HORIZON_DAYS, GameQuery
from nbaml.serving.problems import documented

router = APIRouter()
NO_REPORT = "no drift report has been written yet"


@router.get(
    "/health",
    summary="The versions being served, since when, and the state of their bundles",
    response_model=None,
    responses={
        200: {"model": schemas.Health, "description": "a model is active"},
        503: {"model": schemas.Health, "description": "no model is active"},
    },
)
async def health(ctx: Ctx) -> JSONResponse:
    models = ctx.models
    champion, canary, shadow = models.champion(), models.canary(), models.shadow()
    state = models.league_state()
    refusal = models.last_refusal
    body: dict[str, Any] = {
        "status": "ok" if champion else "no-model",
        "active": None
        if champion is None
        else {"version": champion.version, "since": champion.since.isoformat(), "checksum": champion.checksum},
        "canary": None if canary is None else {"version": canary[0].version, "percent": canary[1]},
        "shadow": None if shadow is None else shadow.version,
        "state_as_of": state.as_of.isoformat() if state and state.as_of else None,
        "last_refusal": None
        if refusal is None
        else {"version": refusal.version, "error": refusal.error, "at": refusal.at.isoformat()},
        "pending_log_writes": ctx.predictor.pending,
    }
    return JSONResponse(status_code=200 if champion else 503, content=body)


@router.post(
    "/predictions",
    response_model=schemas.PredictionResponse,
    summary="Predict one game or a slate",
    description=f"Dates: after the team state's last game day, at most {HORIZON_DAYS} days after the later of "
    "that day and today (US Eastern); a date outside that window is a 422 naming it. Every day before a date "
    "must be complete (each of its games final, postponed or cancelled): a slate with an earlier day still "
    "pending or not collected is a 409 naming the games and days missing. A game of the schedule is logged "
    "while it has not started (the last prediction before tip-off is the one it is judged by); a matchup "
    "off the schedule is answered and logged as hypothetical, with a TTL, never judged.",
    responses=documented(
        400, 409, 422, 503, models={409: (schemas.IncompleteDaysProblem, "an earlier day is not complete yet")}
    ),
)
async def predict(request: schemas.PredictionRequest, ctx: Ctx) -> schemas.PredictionResponse:
    answers = ctx.predictor.predict([GameQuery(g.home, g.away, g.date) for g in request.games])
    # one validation of the whole slate (half the cost of building each PredictionOut in Python)
    return schemas.PredictionResponse.model_validate({"predictions": [a.__dict__ for a in answers]})


@router.get(
    "/predictions",
    summary="What was served and scored for a date, with outcomes once known",
    responses=documented(422, 503),
)
def predictions_on(
    date: Annotated[schemas.IsoDate, Query(description="game day, YYYY-MM-DD")], ctx: Ctx
) -> schemas.PredictionsOnDate:
    items = ctx.log.on_date(date)
    for item in items:
        item.pop("features", None)
    return schemas.PredictionsOnDate(date=date, predictions=items)


@router.get(
    "/models",
    summary="The registry (the seed's model_versions table) and the roles",
    description="Cached for MODEL_PARAM_MAX_AGE_SECONDS, like the roles themselves.",
    responses=documented(503),
)
def list_models(ctx: Ctx) -> schemas.ModelsOverview:
    return schemas.ModelsOverview.model_validate(ctx.registry_view.get())


@router.get("/models/{version}", summary="One registered version", responses=documented(404, 422, 503))
def get_model(
    version: Annotated[str, Path(pattern=schemas.VERSION, description="v1, v<n> or vYYYYMMDD_HHMMSS")], ctx: Ctx
) -> schemas.VersionRecord:
    for record in ctx.registry_view.get()["versions"]:
        if record["version"] == version:
            return schemas.VersionRecord.model_validate(record)
    raise HTTPException(404, f"model version {version} is not registered")


@router.get(
    "/reports/latest",
    summary="The latest drift report (HTML)",
    # Response, not HTMLResponse: the route's class sets the media type of every documented answer, and
    # its refusals are JSON.
    response_class=Response,
    responses={200: {"description": "the report", "content": {"text/html": {"schema": {"type": "string"}}}}}
    | documented(404, 503),
)
def latest_report(ctx: Ctx) -> HTMLResponse:
    try:
        return HTMLResponse(ctx.store.get_bytes(report_key(DRIFT_HTML)).decode())
    except NotFoundError:
        raise HTTPException(404, NO_REPORT) from None


@router.get("/reports/latest.json", summary="The latest drift report (JSON)", responses=documented(404, 503))
def latest_report_json(ctx: Ctx) -> dict[str, Any]:
    try:
        return ctx.store.get_json(report_key(DRIFT_JSON))
    except NotFoundError:
        raise HTTPException(404, NO_REPORT) from None
