"""The retrain job: one run at a time, train a candidate, write its bundle, register it, gate it, promote it.

It trains on the games of complete days only (the league calendar's; nbaml.games.history.complete_games)
and records in the bundle's metadata and the registry which days it skipped and why. A failed run never
changes what is served: the bundle's manifest is written last (a crash leaves no
bundle any reader accepts), the registry item comes after the bundle, and the served roles are written
last of all, only for a candidate that passed its gates, in one step (``promote_candidate``) through the
same ``Deployment`` calls an operator makes. That step is a compare-and-set against the active version the
run read when it started: an operator who rolled back or promoted meanwhile wins, and the run records
why it did not promote. Tracking and metrics follow the decision and never change it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.bundle import ModelBundle, first_version, timestamp_version
from nbaml.config import RetrainSettings
from nbaml.deployment import ActiveState, Deployment
from nbaml.errors import ConflictError, NbamlError
from nbaml.events import RetrainRequest
from nbaml.games.history import GameHistory, data_hash
from nbaml.games.records import Game
from nbaml.storage import parameters
from nbaml.storage.registry import VersionStatus
from nbaml.training import tracking
from nbaml.training.candidate import Candidate, train_candidate
from nbaml.training.gates import RECENT_VERSIONS, Gates, Verdict
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
    status: str  # promoted, canary, shadow, rejected, held, superseded, skipped, locked
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


def _champion(deployment: Deployment, active: str) -> ModelBundle | str | None:
    """The serving version's bundle; why it cannot be read (the candidate will be held); None if none serves."""
    if active == parameters.NONE:
        return None
    try:
        return deployment.verify(active)
    except NbamlError as exc:
        logger.error("champion bundle unreadable; the candidate will be held", extra={"error": str(exc)})
        return f"{active}'s bundle cannot be read ({type(exc).__name__}: {exc})"


def _recent_champions(deployment: Deployment, active: str) -> list[ModelBundle | tuple[str, str]]:
    """The versions that served before the champion, newest first (their bundles, or why they cannot be read)."""
    served = [v for v in deployment.registry.versions() if v.get("deployed_at") and v["version"] != active]
    found: list[ModelBundle | tuple[str, str]] = []
    for record in served[:RECENT_VERSIONS]:
        try:
            found.append(deployment.verify(str(record["version"])))
        except NbamlError as exc:
            found.append((str(record["version"]), f"its bundle cannot be read ({type(exc).__name__})"))
    return found


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
    """The job under the lock, one step a line: each step below is one of its functions."""
    started_with = deployment.active_state()  # what the promotion will compare-and-set against
    games, completeness = GameHistory(deployment.store).complete_games()  # complete days only
    champion = _champion(deployment, started_with.value)
    if not request.force and isinstance(champion, ModelBundle) and _trained_on(champion, games):
        return RetrainOutcome(request, "skipped", reasons=["no new games since the champion was trained"])

    version = _new_version(deployment, request)
    candidate = train_candidate(
        games,
        version=version,
        config=_train_config(settings, champion if isinstance(champion, ModelBundle) else None, config),
        gates=gates_of(settings),
        champion=champion,
        recent=_recent_champions(deployment, started_with.value),
        provenance=_provenance(request) | {"completeness": completeness},
    )
    files = _write_bundle(deployment, candidate)
    _register(deployment, candidate, request)
    outcome = promote_candidate(
        settings, deployment, request, candidate, started_with=started_with, has_champion=champion is not None
    )
    tracking.log_run(version, candidate.bundle.metadata, files, outcome.status)
    _emit(metrics, outcome, candidate.verdict)
    logger.info("retrain finished", extra=outcome.as_dict())
    return outcome


def _trained_on(champion: ModelBundle, games: list[Game]) -> bool:
    return champion.metadata.get("data_hash") == data_hash(games)


def _provenance(request: RetrainRequest) -> dict[str, Any]:
    """Who asked for this model and why: written into the bundle's metadata and the registry item."""
    return {
        "trigger": request.trigger.value,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "request_id": request.request_id,
        "requested_at": request.requested_at.isoformat(),
    }


def _train_config(settings: RetrainSettings, champion: ModelBundle | None, config: TrainConfig | None) -> TrainConfig:
    """The caller's config, else the quick profile, else the full search with the champion's parameters beside it."""
    if config is not None:
        return config
    if settings.train_profile == "quick":
        return QUICK
    return TrainConfig(warm_start=champion.metadata.get("hyperparameters") if champion is not None else None)


def _write_bundle(deployment: Deployment, candidate: Candidate) -> dict[str, bytes]:
    """The bundle's files in S3, manifest last: a crash here leaves nothing any reader accepts."""
    files = candidate.bundle.to_files()
    deployment.store.write_bundle_files(candidate.bundle.version, files)
    return files


def _register(deployment: Deployment, candidate: Candidate, request: RetrainRequest) -> None:
    """The registry item (status candidate), written only once its bundle is complete."""
    meta = candidate.bundle.metadata
    deployment.registry.register(
        candidate.bundle.version,
        {
            "metrics": meta["metrics"],
            "hyperparameters": meta["hyperparameters"],
            "data_hash": meta["data_hash"],
            "training_window": meta["training_window"],
            "completeness": meta["completeness"],
            "evaluation": {k: v for k, v in candidate.evaluation.items() if k != "candidate"},
            "gates": meta["gates"],
            **_provenance(request),
        },
        by=request.requested_by,
        why=request.reason,
    )


def promote_candidate(
    settings: RetrainSettings,
    deployment: Deployment,
    request: RetrainRequest,
    candidate: Candidate,
    *,
    started_with: ActiveState,
    has_champion: bool,
) -> RetrainOutcome:
    """The promotion step, the only place a retrain changes what is served.

    A candidate that failed its gates is marked rejected and nothing served changes; one that could not be
    judged (no comparison with the champion was possible) stays a candidate, held for an operator, with the
    reason in its history, and nothing served changes either. One that passed
    takes the role PromotionMode names (active, canary at CANARY_PERCENT, or shadow), through the same
    ``Deployment`` calls an operator makes; with no champion to protect it becomes active whatever the mode.
    Each of those writes only if the active parameter is still ``started_with``; if it moved, or another
    role change is still in progress after the wait, the candidate stays a candidate, with the reason in
    its history, and the outcome is "superseded": an operator's decision wins over an automatic one.
    """
    version, verdict, scores = candidate.bundle.version, candidate.verdict, candidate.bundle.metadata["metrics"]
    if verdict.outcome == "held":
        why = "; ".join(verdict.reasons)
        deployment.registry.set_status(version, VersionStatus.CANDIDATE, by=RETRAIN_ACTOR, why=why)
        logger.warning("candidate held for an operator", extra={"version": version, "reasons": verdict.reasons})
        return RetrainOutcome(request, "held", version, verdict.reasons, scores)
    if not verdict.passed:
        deployment.registry.set_status(
            version,
            VersionStatus.REJECTED,
            by=RETRAIN_ACTOR,
            why="; ".join(verdict.reasons),
            extra={"rejected_because": verdict.reasons},
        )
        return RetrainOutcome(request, "rejected", version, verdict.reasons, scores)
    why = f"{request.trigger.value}: {request.reason}; gates passed"
    mode = settings.promotion_mode if has_champion else "active"
    try:
        if mode == "canary":
            deployment.set_canary(version, settings.canary_percent, by=RETRAIN_ACTOR, why=why, expect=started_with)
        elif mode == "shadow":
            deployment.set_shadow(version, by=RETRAIN_ACTOR, why=why, expect=started_with)
        else:
            deployment.promote(version, by=RETRAIN_ACTOR, why=why, expect=started_with)
            mode = "promoted"
    except ConflictError as exc:  # SupersededError, or another role change held the lock past the wait
        reason = f"passed its gates but not promoted: {exc}"
        deployment.registry.set_status(version, VersionStatus.CANDIDATE, by=RETRAIN_ACTOR, why=reason)
        logger.warning("candidate superseded by a change made during the run", extra={"version": version})
        return RetrainOutcome(request, "superseded", version, [reason], scores)
    return RetrainOutcome(request, mode, version, [], scores)


def _emit(metrics: Metrics | None, outcome: RetrainOutcome, verdict: Verdict) -> None:
    """EMF metrics of the run: counts are Count; log-loss is a score, so it has no unit."""
    if metrics is None:
        return
    metrics.add_metric(name="RetrainRuns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="CandidateLogLoss", unit=MetricUnit.NoUnit, value=outcome.metrics["log_loss"])
    metrics.add_metric(name="CandidateRejected", unit=MetricUnit.Count, value=int(verdict.outcome == "rejected"))
    metrics.add_metric(name="CandidateHeld", unit=MetricUnit.Count, value=int(verdict.outcome == "held"))
