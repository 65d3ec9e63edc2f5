"""The retrain job: one run at a time, train a candidate, write its bundle, register it, gate it, promote it.

A failed run never changes what is served: the bundle's manifest is written last (a crash leaves no
bundle any reader accepts), the registry item comes after the bundle, and the active parameter is written
last of all, only for a candidate that passed its gates, through the same ``Deployment.promote`` an
operator uses.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.bundle import ModelBundle, first_version, timestamp_version
from nbaml.config import RetrainSettings
from nbaml.deployment import Deployment
from nbaml.errors import ConflictError, NbamlError
from nbaml.events import RetrainRequest
from nbaml.games.history import GameHistory, data_hash
from nbaml.storage import parameters
from nbaml.storage.registry import VersionStatus
from nbaml.training import tracking
from nbaml.training.candidate import train_candidate
from nbaml.training.gates import Gates
from nbaml.training.search import TrainConfig

logger = Logger(child=True)
LOCK = "retrain"
# TRAIN_PROFILE=quick (local smoke runs and the end-to-end tests): one candidate, two folds.
QUICK = TrainConfig(
    grid={"max_depth": [2], "n_estimators": [150], "learning_rate": [0.05]}, cv_splits=2, search="grid", n_jobs=1
)
RETRAIN_ACTOR = "retrain"


@dataclass
class RetrainOutcome:
    request: RetrainRequest
    status: str  # promoted, canary, shadow, rejected, skipped, locked
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request.request_id,
            "trigger": self.request.trigger.value,
            "reason": self.request.reason,
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
            "metrics": {k: v for k, v in self.metrics.items() if k != "calibration"},
        }


def gates_of(settings: RetrainSettings) -> Gates:
    return Gates(
        min_accuracy=settings.gate_min_accuracy,
        min_roc_auc=settings.gate_min_roc_auc,
        max_ece=settings.gate_max_ece,
        max_p99_ms=settings.gate_max_p99_ms,
        logloss_tolerance=settings.gate_logloss_tolerance,
    )


def retrain(
    settings: RetrainSettings,
    request: RetrainRequest,
    *,
    metrics: Metrics | None = None,
    config: TrainConfig | None = None,
) -> RetrainOutcome:
    """Run one retrain request end to end; a concurrent run exits cleanly saying who holds the lock."""
    deployment = Deployment(settings)
    registry = deployment.registry
    try:
        registry.acquire_lock(LOCK, request.request_id, settings.retrain_lock_ttl_seconds)
    except ConflictError as exc:
        logger.info("another retrain is running", extra={"detail": str(exc)})
        return RetrainOutcome(request, "locked", reasons=[str(exc)])
    try:
        return _retrain_locked(settings, request, deployment, metrics, config)
    finally:
        registry.release_lock(LOCK, request.request_id)


def _champion(deployment: Deployment) -> ModelBundle | None:
    active = deployment.active()
    if active == parameters.NONE:
        return None
    try:
        return deployment.verify(active)
    except NbamlError as exc:
        logger.error("champion bundle unreadable; judging the candidate on floors alone", extra={"error": str(exc)})
        return None


def _new_version(deployment: Deployment, request: RetrainRequest) -> str:
    if not deployment.registry.versions():
        return first_version()
    at = request.requested_at.astimezone(dt.UTC)
    while True:
        version = timestamp_version(at)
        try:
            deployment.registry.get(version)
        except NbamlError:
            return version
        at += dt.timedelta(seconds=1)


def _retrain_locked(
    settings: RetrainSettings,
    request: RetrainRequest,
    deployment: Deployment,
    metrics: Metrics | None,
    config: TrainConfig | None,
) -> RetrainOutcome:
    games = GameHistory(deployment.store).games()
    champion = _champion(deployment)
    if not request.force and champion is not None and champion.metadata.get("data_hash") == data_hash(games):
        return RetrainOutcome(request, "skipped", reasons=["no new games since the champion was trained"])

    version = _new_version(deployment, request)
    provenance = {
        "trigger": request.trigger.value,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "request_id": request.request_id,
        "requested_at": request.requested_at.isoformat(),
    }
    if config is None and settings.train_profile == "quick":
        config = QUICK
    if config is None and champion is not None:
        # The champion's hyperparameters are scored beside the grid on today's folds.
        config = TrainConfig(warm_start=champion.metadata.get("hyperparameters"))
    candidate = train_candidate(
        games, version=version, config=config, gates=gates_of(settings), champion=champion, provenance=provenance
    )
    files = candidate.bundle.to_files()
    deployment.store.write_bundle_files(version, files)
    meta = candidate.bundle.metadata
    deployment.registry.register(
        version,
        {
            "metrics": meta["metrics"],
            "hyperparameters": meta["hyperparameters"],
            "data_hash": meta["data_hash"],
            "training_window": meta["training_window"],
            "evaluation": {k: v for k, v in candidate.evaluation.items() if k != "candidate"},
            "gates": meta["gates"],
            **provenance,
        },
        by=request.requested_by,
        why=request.reason,
    )

    verdict = candidate.verdict
    scores = meta["metrics"]
    if not verdict.passed:
        deployment.registry.set_status(
            version,
            VersionStatus.REJECTED,
            by=RETRAIN_ACTOR,
            why="; ".join(verdict.reasons),
            extra={"rejected_because": verdict.reasons},
        )
        outcome = RetrainOutcome(request, "rejected", version, verdict.reasons, scores)
    else:
        why = f"{request.trigger.value}: {request.reason}; gates passed"
        mode = settings.promotion_mode if champion is not None else "active"
        if mode == "canary":
            deployment.set_canary(version, settings.canary_percent, by=RETRAIN_ACTOR, why=why)
        elif mode == "shadow":
            deployment.set_shadow(version, by=RETRAIN_ACTOR, why=why)
        else:
            deployment.promote(version, by=RETRAIN_ACTOR, why=why)
            mode = "promoted"
        outcome = RetrainOutcome(request, mode, version, [], scores)

    tracking.log_run(version, meta, files, outcome.status)
    if metrics is not None:
        metrics.add_metric(name="RetrainRuns", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="CandidateLogLoss", unit=MetricUnit.Count, value=scores["log_loss"])
        metrics.add_metric(name="CandidateRejected", unit=MetricUnit.Count, value=int(not verdict.passed))
    logger.info("retrain finished", extra=outcome.as_dict())
    return outcome
