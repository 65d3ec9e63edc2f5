"""The admin routes: promote, roll back, canary, shadow, retrain; each through nbaml.deployment's checked path.

The canary's operator moves (pause, resume, a forced step, abort) go through ``nbaml.promotion.canary``'s
``Rollout``, the same code the drift check's rule uses, and are recorded with the admin actor and the reason.

The token is checked before routing by ``AdminGuard`` (nbaml.serving.api) and, on AWS, first by the HTTP
API's Lambda authorizer. The ``AdminToken`` scheme here only documents it, so the spec says which routes
need it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.promotion.canary import Rollout
from nbaml.serving import schemas
from nbaml.serving.context import Ctx
from nbaml.serving.problems import documented
from nbaml.storage.queue import send_retrain_request

ADMIN_ACTOR = "admin-api"
bearer = HTTPBearer(
    scheme_name="AdminToken",
    description="the SecureString /nbaml/{stage}/admin/token",
    auto_error=False,
)


async def admin_actor(_: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> str:
    """The actor recorded in the registry and the SSM history for admin changes (the token is checked earlier)."""
    return ADMIN_ACTOR


Admin = Annotated[str, Depends(admin_actor)]
Reason = Annotated[str, Query(min_length=3, max_length=500, description="why: recorded in the SSM history")]
router = APIRouter(prefix="/admin", responses=documented(401, 403, 422, 503))
CHANGES = documented(400, 404, 409)


@router.post("/promote", summary="Make a version the champion", responses=CHANGES)
def promote(body: schemas.PromoteRequest, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**ctx.deployment.promote(body.version, by=who, why=body.reason).as_dict())


@router.post("/rollback", summary='Serve an earlier version again ("previous" or a version)', responses=CHANGES)
def rollback(body: schemas.RollbackRequest, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**ctx.deployment.rollback(body.version, by=who, why=body.reason).as_dict())


@router.put("/canary", summary="Serve a version to a share of games", responses=CHANGES)
def set_canary(body: schemas.CanaryRequest, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    change = ctx.deployment.set_canary(body.version, body.percent, by=who, why=body.reason)
    return schemas.RoleChangeOut(**change.as_dict())


@router.delete("/canary", summary="Stop the canary")
def clear_canary(who: Admin, ctx: Ctx, reason: Reason = "canary ended") -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**ctx.deployment.clear_canary(by=who, why=reason).as_dict())


@router.post("/canary/pause", summary="Stop the canary's automatic steps (checks still record them)", responses=CHANGES)
def pause_canary(body: schemas.Reasoned, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**_rollout(ctx).pause(by=who, why=body.reason).as_dict())


@router.post("/canary/resume", summary="Let the drift check step the canary again", responses=CHANGES)
def resume_canary(body: schemas.Reasoned, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**_rollout(ctx).resume(by=who, why=body.reason).as_dict())


@router.post("/canary/advance", summary="Move the canary one step now (the last step promotes)", responses=CHANGES)
def advance_canary(body: schemas.Reasoned, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**_rollout(ctx).advance(by=who, why=body.reason).as_dict())


@router.post("/canary/abort", summary="Clear the canary and reject its version", responses=CHANGES)
def abort_canary(body: schemas.Reasoned, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**_rollout(ctx).abort(by=who, why=body.reason).as_dict())


def _rollout(ctx: Ctx) -> Rollout:
    return Rollout(ctx.deployment, ctx.settings.steps)


@router.put("/shadow", summary="Score a version on every request without returning it", responses=CHANGES)
def set_shadow(body: schemas.ShadowRequest, who: Admin, ctx: Ctx) -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**ctx.deployment.set_shadow(body.version, by=who, why=body.reason).as_dict())


@router.delete("/shadow", summary="Stop the shadow")
def clear_shadow(who: Admin, ctx: Ctx, reason: Reason = "shadow ended") -> schemas.RoleChangeOut:
    return schemas.RoleChangeOut(**ctx.deployment.clear_shadow(by=who, why=reason).as_dict())


@router.post("/retrain", status_code=202, summary="Queue a retrain with a reason", responses=documented(400))
def retrain(body: schemas.Reasoned, who: Admin, ctx: Ctx) -> schemas.RetrainAccepted:
    request = RetrainRequest(trigger=RetrainTrigger.MANUAL, reason=body.reason, requested_by=who, force=True)
    send_retrain_request(ctx.settings.retrain_queue_url, request)
    return schemas.RetrainAccepted(request_id=request.request_id)
