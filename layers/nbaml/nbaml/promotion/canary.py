"""Progressive delivery: a canary moves through the template's steps (CANARY_STEPS, e.g. 10 -> 50 -> 100) on evidence.

Who acts:
- the retrain starts a candidate that passed its gates at the first step (``Rollout.start``);
- each drift check judges the canary on the paired games so far (``judge``, the statistics in
  ``nbaml.promotion.evidence``): advance one step, hold, or abort. At 100 % the canary is promoted (the
  active parameter written, the old champion inactive). An abort clears the canary parameter, marks the
  version rejected with the figures, and the drift check emits ``CanaryAborted`` (alarmed). A canary is
  aborted when shown worse, and when ``max_games`` pairs have not shown it non-inferior (futility);
- an operator pauses, resumes, forces a step, or aborts (admin API and ``nbaml canary``), each recorded.

Every step is a write of the canary (or active) parameter through ``nbaml.deployment`` (so it is in the
SSM history, with the figures as its description) and an entry in the version's registry history; the
version's ``canary`` attribute keeps every check's evidence, holds included, for the drift report.

Rules:
- **one step per check, and a step needs its own games**: after the first, a step is taken only when at
  least ``step_games`` (CANARY_STEP_GAMES) pairs were resolved since the previous one, so each share serves
  until the next weekly check, and a week with few games (the All-Star break) holds;
- **a new candidate mid-canary**: it replaces a canary still at its first step and not paused (the newer
  model was trained on more games, and the one it replaces has served only the first share); a canary past
  its first step, or paused, keeps its place and the newcomer stays a candidate, with the reason in its
  history (``DeferredError``; the retrain's outcome "deferred"): an operator may start it, and the next
  retrain brings a fresh candidate judged against whichever champion serves by then;
- **a rollback clears any canary** (``Deployment.rollback``);
- **paused** means no automatic change: the checks still record the evidence.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from nbaml.config import DriftSettings
from nbaml.deployment import ActiveState, Deployment, RoleChange, fresh_canary_state
from nbaml.errors import ConflictError, NbamlError, NotFoundError
from nbaml.promotion.evidence import Evidence, SequentialTest, decide, paired_differences
from nbaml.promotion.steps import next_step
from nbaml.storage import parameters
from nbaml.storage.predictions import PredictionLog
from nbaml.storage.registry import VersionStatus

logger = Logger(child=True)
RULE_ACTOR = "canary-rule"
MAX_CHECKS = 60  # a canary's stored checks (about a season of weekly ones)


class DeferredError(ConflictError):
    """A canary past its first step (or paused) keeps its place: the new candidate waits as a candidate."""


@dataclass
class Judgement:
    """What one drift check found and did about the canary (the report's ``canary`` section)."""

    version: str | None
    percent: int | None = None
    action: str = "none"  # none, hold, advanced, promoted, aborted, paused, failed
    evidence: Evidence | None = None
    detail: str = ""
    steps: list[dict[str, Any]] | None = None  # the version's checks so far, oldest first

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "percent": self.percent,
            "action": self.action,
            "evidence": self.evidence.as_dict() if self.evidence else None,
            "detail": self.detail,
            "checks": self.steps or [],
        }


class Rollout:
    """The canary's ladder on one stage: the Deployment writes, the registry remembers."""

    def __init__(self, deployment: Deployment, steps: tuple[int, ...], step_games: int = 25) -> None:
        self.deployment = deployment
        self.registry = deployment.registry
        self.steps = steps
        self.step_games = step_games  # pairs resolved at a share before the next step (CANARY_STEP_GAMES)

    # ---------------------------------------------------------------- state
    def state(self, version: str) -> dict[str, Any]:
        state = self.registry.get(version).get("canary")
        return dict(state) if isinstance(state, dict) else fresh_canary_state()

    def _save(self, version: str, state: dict[str, Any]) -> None:
        """The rollout record only (checks, pause, step counts): status changes write their own history."""
        state["checks"] = list(state.get("checks", []))[-MAX_CHECKS:]
        self.registry.annotate(version, {"canary": state})

    def current(self) -> parameters.Canary:
        canary = self.deployment.canary()
        if canary is None:
            raise NotFoundError("no canary is in flight")
        return canary

    # ---------------------------------------------------------------- the retrain's entry
    def start(self, version: str, *, by: str, why: str, expect: ActiveState | None = None) -> RoleChange:
        """Serve a new candidate at the first step, unless the canary in flight keeps its place."""
        running = self.deployment.canary()
        if running and running.version != version:
            paused = bool(self.state(running.version).get("paused")) if self._registered(running.version) else False
            if running.percent > self.steps[0] or paused:
                where = "paused" if paused else f"at {running.percent} %, past its first step"
                raise DeferredError(f"canary {running.version} is {where}: it keeps its place")
        return self.deployment.set_canary(version, self.steps[0], by=by, why=why, expect=expect)

    def _registered(self, version: str) -> bool:
        try:
            self.registry.get(version)
        except NotFoundError:
            return False
        return True

    # ---------------------------------------------------------------- the drift check's entry
    def judge(self, log: PredictionLog, test: SequentialTest, run_date: dt.date) -> Judgement:
        """Look at the canary's paired games and take the step the evidence allows (one per check)."""
        canary = self.deployment.canary()
        if canary is None:
            return Judgement(None, detail="no canary in flight")
        version = canary.version
        state = self.state(version)
        differences = paired_differences(paired_games(log, version, run_date))
        evidence = decide(differences, test)
        check: dict[str, Any] = {"run_date": run_date.isoformat(), "percent": canary.percent, **evidence.as_dict()}
        if state.get("pairs_at_step") is None:
            state["pairs_at_step"] = evidence.n  # a step an operator forced counts its games from here
        since_step = evidence.n - int(state["pairs_at_step"])
        action, detail = self._act(version, canary.percent, evidence, state, since_step, test)
        check |= {"action": action, "detail": detail}
        state["checks"] = [*state.get("checks", []), check]
        self._save(version, state)
        return Judgement(version, canary.percent, action, evidence, detail, state["checks"])

    def _act(
        self,
        version: str,
        percent: int,
        evidence: Evidence,
        state: dict[str, Any],
        since_step: int,
        test: SequentialTest,
    ) -> tuple[str, str]:
        figures = evidence.summary()
        if state.get("paused"):
            return "paused", f"paused by {state.get('paused_by', 'an operator')}; {figures}"
        if evidence.decision in ("abort", "futile"):
            self.abort(by=RULE_ACTOR, why=figures, evidence=evidence, state=state)
            return "aborted", figures
        if evidence.decision == "advance" and percent > self.steps[0] and since_step < self.step_games:
            return "hold", f"{since_step} paired games at {percent} % (a step needs {self.step_games}); {figures}"
        if evidence.decision == "advance":
            change = self.advance(by=RULE_ACTOR, why=figures, state=state, pairs=evidence.n)
            return (
                "promoted" if change.role == "active" else "advanced"
            ), f"{change.before} -> {change.after}; {figures}"
        return "hold", figures

    # ---------------------------------------------------------------- moves (the rule's and an operator's)
    def advance(
        self, *, by: str, why: str, state: dict[str, Any] | None = None, pairs: int | None = None
    ) -> RoleChange:
        """One step up the ladder; the last step promotes the canary to active."""
        canary = self.current()
        own = state if state is not None else self.state(canary.version)
        target = next_step(self.steps, canary.percent)
        own["pairs_at_step"] = pairs  # None for an operator's step: the next check counts from its own n
        own.setdefault("moves", []).append({"by": by, "from": canary.percent, "to": target, "why": why[:300]})
        if target >= 100:
            change = self.deployment.promote(canary.version, by=by, why=f"canary at 100 %: {why}")
        else:
            step = f"canary step {canary.percent} -> {target} %: {why}"
            change = self.deployment.set_canary(canary.version, target, by=by, why=step)
        self._save(canary.version, own)
        return change

    def abort(
        self, *, by: str, why: str, evidence: Evidence | None = None, state: dict[str, Any] | None = None
    ) -> RoleChange:
        """Clear the canary and reject the version, with the figures."""
        canary = self.current()
        own = state if state is not None else self.state(canary.version)
        own.setdefault("moves", []).append({"by": by, "from": canary.percent, "to": 0, "why": why[:300]})
        because = [f"canary aborted by {by}: {why}"]
        extra: dict[str, Any] = {"rejected_because": because, "canary": own}
        if evidence is not None:
            extra["canary_evidence"] = evidence.as_dict()
        return self.deployment.clear_canary(
            by=by, why=f"canary aborted: {why}", status=VersionStatus.REJECTED, extra=extra
        )

    def pause(self, *, by: str, why: str) -> RoleChange:
        return self._set_paused(True, by=by, why=why)

    def resume(self, *, by: str, why: str) -> RoleChange:
        return self._set_paused(False, by=by, why=why)

    def _set_paused(self, paused: bool, *, by: str, why: str) -> RoleChange:
        canary = self.current()
        state = self.state(canary.version)
        word = "paused" if paused else "resumed"
        if bool(state.get("paused")) == paused:
            raise ConflictError(f"canary {canary.version} is already {word}")
        state |= {"paused": paused, "paused_by": by if paused else None}
        move = {"by": by, "from": canary.percent, "to": canary.percent, "why": f"{word}: {why}"}
        state.setdefault("moves", []).append(move)
        with self.deployment.changing_roles(by):
            self.registry.set_status(
                canary.version, VersionStatus.CANARY, by=by, why=f"canary {word}: {why}", extra={"canary": state}
            )
        return RoleChange("canary", canary.encode(), canary.encode(), by, f"{word}: {why}")


def paired_games(log: PredictionLog, version: str, until: dt.date) -> list[tuple[bool, float, float]]:
    """``(home_won, champion p, canary p)`` of each resolved game both roles scored, oldest first."""
    canary = [i for i in log.resolved(version=version, until=until) if i.get("role") == "canary"]
    if not canary:
        return []
    since = dt.date.fromisoformat(min(str(i["game_date"]) for i in canary))
    champion = {i["game_id"]: i for i in log.resolved(role="champion", since=since, until=until)}
    shared = sorted((i for i in canary if i["game_id"] in champion), key=lambda i: i["resolved_key"])
    return [
        (bool(i["home_won"]), float(champion[i["game_id"]]["probability"]), float(i["probability"])) for i in shared
    ]


def sequential_test(settings: DriftSettings) -> SequentialTest:
    return SequentialTest(
        margin=settings.canary_margin,
        alpha_promote=settings.canary_alpha_promote,
        alpha_abort=settings.canary_alpha_abort,
        min_games=settings.canary_min_games,
        max_games=settings.canary_max_games,
    )


def judge_canary(settings: DriftSettings, run_date: dt.date) -> Judgement:
    """The drift check's step: judge the canary in flight on its paired games, and act on it.

    A step that cannot be taken (the roles lock held past its wait, the version gone from the registry, a
    storage error) is reported as "failed" and changes nothing: the rest of the drift check still runs, and
    next week's check tries again.
    """
    rollout = Rollout(Deployment(settings), settings.steps, settings.canary_step_games)
    try:
        return rollout.judge(PredictionLog(settings.predictions_table), sequential_test(settings), run_date)
    except NbamlError as exc:
        canary = rollout.deployment.canary()
        logger.error("canary step failed", extra={"error": str(exc)})
        return Judgement(
            canary.version if canary else None, canary.percent if canary else None, "failed", None, str(exc)
        )
