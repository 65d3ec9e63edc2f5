"""The retrain job: one run at a time, train a candidate, write its bundle, register it, gate it, promote it.

It trains on the games of complete days only (the league calendar's; nbaml.games.history.complete_games)
and records in the bundle's metadata and the registry which days it skipped and why. A failed run never
changes what is served: the bundle's manifest is written last (a crash leaves no
bundle any reader accepts), the registry item comes after the bundle, and the served roles are written
last of all, only for a candidate that passed its gates, in one step (``promote_candidate``) through the
same ``Deployment`` calls an operator makes. That step is a compare-and-set against the active version the
run read when it started: an operator who rolled back or promoted meanwhile wins, and the run records
why it did not promote, and the decision itself is recorded on the version's item.

A request runs once. A request that already registered a version (an earlier delivery that crashed or
timed out after training) is not trained again: its outcome is read back from that version's item and
the roles, and a promotion step the earlier delivery never reached is run now, compare-and-set against
the active version that delivery started with (recorded on the item). ``nbaml.training.delivery`` answers
a redelivery of a finished request with its recorded outcome before any of this runs.

Tracking (MLflow) and metrics follow the decision and never change it: a tracking failure is a warning
and a ``TrackingFailed`` metric, never a failed run.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.bundle import ModelBundle, first_version, timestamp_version
from nbaml.config import RetrainSettings
from nbaml.deployment import ActiveState, Deployment
from nbaml.errors import ConflictError, NbamlError, NotFoundError
from nbaml.events import RetrainRequest
from nbaml.games.history import GameHistory, data_hash
from nbaml.games.records import Game
from nbaml.promotion.canary import DeferredError, Rollout
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


# What a run decided about its candidate, recorded on the version's item ("decision").
DECISIONS = ("promoted", "canary", "shadow", "rejected", "held", "deferred", "superseded")


@dataclass
class RetrainOutcome:
    request: RetrainRequest
    status: str  # one of DECISIONS (held included), or skipped, locked
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # True when an earlier delivery of the same request had already trained this version.
    resumed: bool = False
    tracking: tracking.TrackingResult = tracking.NOT_CONFIGURED

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request.request_id,
            "trigger": self.request.trigger.value,
            "reason": self.request.reason,
            "requested_at": self.request.requested_at.isoformat(),
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
            "metrics": {k: v for k, v in self.metrics.items() if k != "calibration"},
            "resumed": self.resumed,
            "tracking": self.tracking.as_dict(),
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
    earlier = deployment.registry.made_by_request(request.request_id)
    if earlier is not None:
        return _finish(settings, metrics, _resume(settings, deployment, request, earlier))
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
    _register(deployment, candidate, request, started_with)
    meta = candidate.bundle.metadata
    outcome = promote_candidate(
        settings,
        deployment,
        request,
        version,
        candidate.verdict,
        meta["metrics"],
        started_with=started_with,
        has_champion=champion is not None,
    )
    outcome.tracking = _track(settings, meta, files, outcome)
    return _finish(settings, metrics, outcome)


def _finish(settings: RetrainSettings, metrics: Metrics | None, outcome: RetrainOutcome) -> RetrainOutcome:
    _emit(metrics, outcome)
    logger.info("retrain finished", extra=outcome.as_dict())
    return outcome


def _track(
    settings: RetrainSettings, metadata: dict[str, Any], files: dict[str, bytes], outcome: RetrainOutcome
) -> tracking.TrackingResult:
    """The side channel: the run in MLflow, if a tracking server is configured (never raises)."""
    return tracking.log_run(
        settings.mlflow_tracking_uri,
        settings.mlflow_experiment_name,
        str(outcome.version),
        metadata,
        files,
        outcome.status,
    )


def _resume(
    settings: RetrainSettings, deployment: Deployment, request: RetrainRequest, record: dict[str, Any]
) -> RetrainOutcome:
    """The outcome of a request whose earlier delivery registered ``record``'s version, without training again.

    The decision recorded on the item, if the earlier delivery got that far; else what the roles show
    (it stopped between a role write and recording the decision); else the promotion step it never
    reached, run now against the active version it started with.
    """
    version, scores = str(record["version"]), dict(record.get("metrics") or {})
    logger.warning(
        "this request already trained a version: resuming it, not training again",
        extra={"request_id": request.request_id, "version": version, "decision": record.get("decision")},
    )
    decision = record.get("decision")
    if decision in DECISIONS:
        outcome = RetrainOutcome(request, str(decision), version, list(record.get("decision_reasons") or []), scores)
    elif (role := _role_of(deployment, version)) is not None:
        if role == "promoted" and record.get("status") != VersionStatus.ACTIVE.value:
            _record_promotion(deployment, version, str((record.get("started_with") or {}).get("value")))
        deployment.registry.annotate(version, {"decision": role, "decision_reasons": []})
        outcome = RetrainOutcome(request, role, version, [], scores)
    else:
        gates = record.get("gates") or {}
        verdict = Verdict(
            passed=bool(gates.get("passed")),
            held=gates.get("outcome") == "held",
            reasons=list(gates.get("reasons") or []),
            checks=dict(gates.get("checks") or {}),
        )
        started = record.get("started_with") or {}
        outcome = promote_candidate(
            settings,
            deployment,
            request,
            version,
            verdict,
            scores,
            started_with=ActiveState(str(started.get("value")), int(started.get("parameter_version", 0))),
            has_champion=(record.get("evaluation") or {}).get("champion") is not None,
        )
    outcome.resumed = True
    if settings.mlflow_tracking_uri:  # the earlier delivery may have stopped before it tracked the run
        try:
            files = deployment.store.read_bundle_files(version)
        except NbamlError as exc:
            logger.warning("cannot read the bundle to track it", extra={"version": version, "reason": str(exc)})
            outcome.tracking = tracking.TrackingResult(True, error=f"bundle unreadable: {exc}")
        else:
            outcome.tracking = _track(settings, json.loads(files["metadata.json"]), files, outcome)
    return outcome


def _record_promotion(deployment: Deployment, version: str, replaced: str) -> None:
    """The registry side of a promotion that died between writing the active parameter and recording it."""
    registry, why = deployment.registry, "promotion recorded on redelivery: the active parameter already named it"
    registry.set_status(version, VersionStatus.ACTIVE, by=RETRAIN_ACTOR, why=why)
    try:
        if registry.get(replaced).get("status") == VersionStatus.ACTIVE.value:
            registry.set_status(replaced, VersionStatus.INACTIVE, by=RETRAIN_ACTOR, why=f"replaced by {version}")
    except NotFoundError:  # no champion before it, or one the registry never had
        pass


def _role_of(deployment: Deployment, version: str) -> str | None:
    """The role ``version`` holds now, as the retrain decisions name them (None: no role)."""
    if deployment.active() == version:
        return "promoted"
    canary = deployment.canary()
    if canary is not None and canary.version == version:
        return "canary"
    if deployment.shadow() == version:
        return "shadow"
    return None


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


def _register(deployment: Deployment, candidate: Candidate, request: RetrainRequest, started_with: ActiveState) -> None:
    """The registry item (status candidate), written only once its bundle is complete.

    It records the active version the run started with, so a redelivery can finish the promotion step
    with the same compare-and-set.
    """
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
            "started_with": {"value": started_with.value, "parameter_version": started_with.parameter_version},
            **_provenance(request),
        },
        by=request.requested_by,
        why=request.reason,
    )


def promote_candidate(
    settings: RetrainSettings,
    deployment: Deployment,
    request: RetrainRequest,
    version: str,
    verdict: Verdict,
    scores: dict[str, Any],
    *,
    started_with: ActiveState,
    has_champion: bool,
) -> RetrainOutcome:
    """The promotion step, the only place a retrain changes what is served.

    A candidate that failed its gates is marked rejected and nothing served changes; one that could not be
    judged (no comparison with the champion was possible) stays a candidate, held for an operator, with the
    reason in its history, and nothing served changes either. One that passed
    takes the role PromotionMode names (active, canary at the first of CANARY_STEPS, or shadow), through the
    same ``Deployment`` calls an operator makes; with no champion to protect it becomes active whatever the
    mode. A canary past its first step keeps its place (``nbaml.promotion.canary``): the candidate stays a
    candidate, "deferred", with the reason in its history.
    Each of those writes only if the active parameter is still ``started_with``; if it moved, or another
    role change is still in progress after the wait, the candidate stays a candidate, with the reason in
    its history, and the outcome is "superseded": an operator's decision wins over an automatic one.
    The decision is recorded on the version's item last ("decision", "decision_reasons").
    """
    outcome = _promotion(settings, deployment, request, version, verdict, scores, started_with, has_champion)
    deployment.registry.annotate(version, {"decision": outcome.status, "decision_reasons": outcome.reasons})
    return outcome


def _promotion(
    settings: RetrainSettings,
    deployment: Deployment,
    request: RetrainRequest,
    version: str,
    verdict: Verdict,
    scores: dict[str, Any],
    started_with: ActiveState,
    has_champion: bool,
) -> RetrainOutcome:
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
            Rollout(deployment, settings.steps).start(version, by=RETRAIN_ACTOR, why=why, expect=started_with)
        elif mode == "shadow":
            deployment.set_shadow(version, by=RETRAIN_ACTOR, why=why, expect=started_with)
        else:
            deployment.promote(version, by=RETRAIN_ACTOR, why=why, expect=started_with)
            mode = "promoted"
    except DeferredError as exc:
        reason = f"passed its gates; waits: {exc}"
        deployment.registry.set_status(version, VersionStatus.CANDIDATE, by=RETRAIN_ACTOR, why=reason)
        return RetrainOutcome(request, "deferred", version, [reason], scores)
    except ConflictError as exc:  # SupersededError, or another role change held the lock past the wait
        reason = f"passed its gates but not promoted: {exc}"
        deployment.registry.set_status(version, VersionStatus.CANDIDATE, by=RETRAIN_ACTOR, why=reason)
        logger.warning("candidate superseded by a change made during the run", extra={"version": version})
        return RetrainOutcome(request, "superseded", version, [reason], scores)
    return RetrainOutcome(request, mode, version, [], scores)


def _emit(metrics: Metrics | None, outcome: RetrainOutcome) -> None:
    """EMF metrics of the run: counts are Count; log-loss is a score, so it has no unit.

    A resumed request trained nothing now, so it adds no run and no candidate; ``TrackingFailed`` (0 or 1,
    alarmed) is emitted whenever a tracking server is configured.
    """
    if metrics is None:
        return
    if outcome.tracking.configured:
        metrics.add_metric(name="TrackingFailed", unit=MetricUnit.Count, value=int(outcome.tracking.failed))
    if outcome.resumed:
        metrics.add_metric(name="RetrainResumed", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="RetrainRuns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="CandidateLogLoss", unit=MetricUnit.NoUnit, value=outcome.metrics["log_loss"])
    metrics.add_metric(name="CandidateRejected", unit=MetricUnit.Count, value=int(outcome.status == "rejected"))
    metrics.add_metric(name="CandidateHeld", unit=MetricUnit.Count, value=int(outcome.status == "held"))
