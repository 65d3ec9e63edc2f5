"""Operator actions on the deployment roles: promote, roll back, canary, shadow.

One implementation behind every path that changes what is served: the admin API, the command line,
``infra/rollback.sh``'s checked twin, and the retrain pipeline's automatic promotion. Each action first
proves the version exists in the registry and its bundle verifies (manifest and SHA-256), then writes the
SSM parameter (the switch every warm predict instance follows within its max_age), then records the
change in the registry with who, when and why. The parameter's history is the audit trail.

One role change at a time: every action holds the registry's ``roles`` lock (a conditional write with a
short expiry), waiting a few seconds for one in progress. A retrain's promotion is also a compare-and-set:
it passes the active parameter's value and version as it read them when the run started, and if anyone
(an operator's rollback, ``rollback.sh``) changed it meanwhile, the candidate is not promoted
(``SupersededError``): the operator's decision wins.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nbaml.bundle import ModelBundle, is_valid_version
from nbaml.config import CommonSettings
from nbaml.errors import ConflictError, NotFoundError
from nbaml.features import incompatibility
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.registry import ModelRegistry, VersionStatus

PREVIOUS = "previous"
ROLES_LOCK = "roles"
ROLES_LOCK_TTL_SECONDS = 60  # a role change takes well under a second; a crashed holder's lock lapses
ROLES_LOCK_WAIT_SECONDS = 10.0  # within the HTTP API's 29 s timeout


def fresh_canary_state() -> dict[str, Any]:
    """A canary's rollout record when a version takes the role: no checks yet, every pair counts toward its step."""
    return {"paused": False, "pairs_at_step": 0, "checks": [], "moves": []}


class SupersededError(ConflictError):
    """The active version changed since a retrain read it: an operator's change wins over the candidate."""


@dataclass(frozen=True)
class ActiveState:
    """The active parameter's value and version number at one moment: what a compare-and-set compares."""

    value: str
    parameter_version: int


@dataclass(frozen=True)
class RoleChange:
    role: str
    before: str
    after: str
    by: str
    why: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "before": self.before, "after": self.after, "by": self.by, "why": self.why}


class Deployment:
    """The three roles of a stage (active, canary, shadow) and the registry that explains them."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.store = ArtifactStore(settings.nbaml_bucket)
        self.registry = ModelRegistry(settings.model_versions_table)

    # ---------------------------------------------------------------- reading
    def active(self) -> str:
        return parameters.read(self.settings.active_model_param)

    def active_state(self) -> ActiveState:
        return ActiveState(*parameters.read_versioned(self.settings.active_model_param))

    def canary(self) -> parameters.Canary | None:
        return parameters.Canary.decode(parameters.read(self.settings.canary_model_param))

    def shadow(self) -> str:
        return parameters.read(self.settings.shadow_model_param)

    def verify(self, version: str) -> ModelBundle:
        """The bundle of a registered version, checksums verified; raises if either is missing or wrong."""
        if not is_valid_version(version):
            raise NotFoundError(f"{version!r} is not a model version (v1 or vYYYYMMDD_HHMMSS)")
        record = self.registry.get(version)
        if record.get("status") == VersionStatus.REJECTED.value:
            raise ConflictError(f"{version} was rejected by its gates: {record.get('rejected_because', '')}")
        bundle = ModelBundle.from_files(self.store.read_bundle_files(version), expected_version=version)
        incompatible = incompatibility(bundle.metadata)
        if incompatible:
            raise ConflictError(f"{version} cannot be served by this code: {incompatible}")
        return bundle

    def overview(self) -> dict[str, Any]:
        """Roles, registry and the active parameter's history: what ``GET /models`` shows."""
        canary = self.canary()
        return {
            "active": self.active(),
            "canary": {"version": canary.version, "percent": canary.percent} if canary else None,
            "shadow": None if self.shadow() == parameters.NONE else self.shadow(),
            "versions": self.registry.versions(),
            "active_history": [
                {
                    "value": c.value,
                    "parameter_version": c.version,
                    "at": c.modified_at.isoformat(),
                    "by": c.modified_by,
                    "why": c.description,
                }
                for c in parameters.history(self.settings.active_model_param)
            ],
        }

    # ---------------------------------------------------------------- changing
    @contextlib.contextmanager
    def changing_roles(self, by: str) -> Iterator[None]:
        """Hold the roles lock for the block: one role change at a time, whoever asks."""
        owner = f"{by}#{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + ROLES_LOCK_WAIT_SECONDS
        while True:
            try:
                self.registry.acquire_lock(ROLES_LOCK, owner, ROLES_LOCK_TTL_SECONDS)
                break
            except ConflictError as exc:
                if time.monotonic() >= deadline:
                    raise ConflictError(f"another role change is in progress ({exc}); try again") from exc
                time.sleep(0.1)
        try:
            yield
        finally:
            self.registry.release_lock(ROLES_LOCK, owner)

    def _unchanged_since(self, expected: ActiveState | None) -> None:
        if expected is None:
            return
        now = self.active_state()
        if now != expected:
            last = parameters.history(self.settings.active_model_param)[-1]
            raise SupersededError(
                f"the active version changed while the run was under way: {expected.value} (parameter version "
                f"{expected.parameter_version}) became {now.value} (version {now.parameter_version}: "
                f"{last.description or 'no description'})"
            )

    def promote(self, version: str, *, by: str, why: str, expect: ActiveState | None = None) -> RoleChange:
        """Make ``version`` the champion; the one it replaces becomes inactive.

        ``expect``: promote only if the active parameter still is what the caller read (else SupersededError).
        """
        with self.changing_roles(by):
            self._unchanged_since(expect)
            return self._promote(version, by=by, why=why)

    def _promote(self, version: str, *, by: str, why: str) -> RoleChange:
        self.verify(version)
        before = self.active()
        if before == version:
            return RoleChange("active", before, version, by, "already active")
        parameters.write(self.settings.active_model_param, version, why=f"{by}: {why}")
        self.registry.set_status(version, VersionStatus.ACTIVE, by=by, why=why)
        if before != parameters.NONE:
            # A parameter may name a version the registry never had: then there is nothing to record.
            with contextlib.suppress(NotFoundError):
                self.registry.set_status(before, VersionStatus.INACTIVE, by=by, why=f"replaced by {version}: {why}")
        # A version cannot be champion and challenger at once.
        canary = self.canary()
        if canary and canary.version == version:
            parameters.write(self.settings.canary_model_param, parameters.NONE, why=f"{by}: {version} promoted")
        if self.shadow() == version:
            parameters.write(self.settings.shadow_model_param, parameters.NONE, why=f"{by}: {version} promoted")
        return RoleChange("active", before, version, by, why)

    def rollback(self, to: str = PREVIOUS, *, by: str, why: str) -> RoleChange:
        """Serve ``to`` again, or with "previous" the last different version the active parameter held.

        A rollback also clears any canary in flight: it was judged against the champion being replaced, and
        whoever rolls back wants fewer models serving, not a challenger stepping up meanwhile.
        """
        with self.changing_roles(by):
            target = self.previous_active() if to == PREVIOUS else to
            change = self._promote(target, by=by, why=f"rollback: {why}")
            if self.canary() is not None:
                self._clear_canary(by=by, why=f"rollback to {target} clears the canary: {why}")
            return change

    def previous_active(self) -> str:
        """The most recent earlier value of the active parameter that differs from the current one."""
        changes = parameters.history(self.settings.active_model_param)
        current = changes[-1].value if changes else parameters.NONE
        for change in reversed(changes[:-1]):
            if change.value not in (current, parameters.NONE):
                return change.value
        raise NotFoundError("no earlier active version to roll back to")

    def set_canary(
        self, version: str, percent: int, *, by: str, why: str, expect: ActiveState | None = None
    ) -> RoleChange:
        if not 0 < percent <= 100:
            raise ValueError("canary percent must be between 1 and 100")
        with self.changing_roles(by):
            self._unchanged_since(expect)
            if version == self.active():
                raise ConflictError(f"{version} is already the champion")
            self.verify(version)
            value = parameters.Canary(version, percent).encode()
            before = parameters.read(self.settings.canary_model_param)
            running = parameters.Canary.decode(before)
            parameters.write(self.settings.canary_model_param, value, why=f"{by}: {why}")
            # A version new to the role starts a fresh rollout record; the one it replaces is a candidate again.
            fresh = None if running and running.version == version else {"canary": fresh_canary_state()}
            self.registry.set_status(
                version, VersionStatus.CANARY, by=by, why=f"canary {percent} %: {why}", extra=fresh
            )
            if running and running.version != version:
                self._demote_canary(running.version, by=by, why=f"replaced as canary by {version}: {why}")
            return RoleChange("canary", before, value, by, why)

    def clear_canary(
        self,
        *,
        by: str,
        why: str,
        status: VersionStatus = VersionStatus.CANDIDATE,
        extra: dict[str, Any] | None = None,
    ) -> RoleChange:
        """Stop the canary; its version becomes ``status`` (a candidate again, or rejected by an abort)."""
        with self.changing_roles(by):
            return self._clear_canary(by=by, why=why, status=status, extra=extra)

    def _clear_canary(
        self,
        *,
        by: str,
        why: str,
        status: VersionStatus = VersionStatus.CANDIDATE,
        extra: dict[str, Any] | None = None,
    ) -> RoleChange:
        before = parameters.read(self.settings.canary_model_param)
        running = parameters.Canary.decode(before)
        parameters.write(self.settings.canary_model_param, parameters.NONE, why=f"{by}: {why}")
        if running is not None:
            self._demote_canary(running.version, by=by, why=why, status=status, extra=extra)
        return RoleChange("canary", before, parameters.NONE, by, why)

    def _demote_canary(
        self,
        version: str,
        *,
        by: str,
        why: str,
        status: VersionStatus = VersionStatus.CANDIDATE,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record that ``version`` left the canary role (only if the registry still has it as the canary)."""
        with contextlib.suppress(NotFoundError):
            current = self.registry.get(version).get("status")
            if current == VersionStatus.CANARY.value or (status is VersionStatus.REJECTED and current != "active"):
                self.registry.set_status(version, status, by=by, why=why, extra=extra)

    def set_shadow(self, version: str, *, by: str, why: str, expect: ActiveState | None = None) -> RoleChange:
        with self.changing_roles(by):
            self._unchanged_since(expect)
            if version == self.active():
                raise ConflictError(f"{version} is already the champion")
            self.verify(version)
            before = self.shadow()
            parameters.write(self.settings.shadow_model_param, version, why=f"{by}: {why}")
            return RoleChange("shadow", before, version, by, why)

    def clear_shadow(self, *, by: str, why: str) -> RoleChange:
        with self.changing_roles(by):
            before = self.shadow()
            parameters.write(self.settings.shadow_model_param, parameters.NONE, why=f"{by}: {why}")
            return RoleChange("shadow", before, parameters.NONE, by, why)
