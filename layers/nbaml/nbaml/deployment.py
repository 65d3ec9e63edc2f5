"""Operator actions on the deployment roles: promote, roll back, canary, shadow.

One implementation behind every path that changes what is served: the admin API, the command line,
``infra/rollback.sh``'s checked twin, and the retrain pipeline's automatic promotion. Each action first
proves the version exists in the registry and its bundle verifies (manifest and SHA-256), then writes the
SSM parameter (the switch every warm predict instance follows within its max_age), then records the
change in the registry with who, when and why. The parameter's history is the audit trail.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from nbaml.bundle import ModelBundle, is_valid_version
from nbaml.config import CommonSettings
from nbaml.errors import ConflictError, NotFoundError
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.registry import ModelRegistry, VersionStatus

PREVIOUS = "previous"


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
        return ModelBundle.from_files(self.store.read_bundle_files(version), expected_version=version)

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
    def promote(self, version: str, *, by: str, why: str) -> RoleChange:
        """Make ``version`` the champion; the one it replaces becomes inactive."""
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
        """Serve ``to`` again, or with "previous" the last different version the active parameter held."""
        target = self.previous_active() if to == PREVIOUS else to
        return self.promote(target, by=by, why=f"rollback: {why}")

    def previous_active(self) -> str:
        """The most recent earlier value of the active parameter that differs from the current one."""
        changes = parameters.history(self.settings.active_model_param)
        current = changes[-1].value if changes else parameters.NONE
        for change in reversed(changes[:-1]):
            if change.value not in (current, parameters.NONE):
                return change.value
        raise NotFoundError("no earlier active version to roll back to")

    def set_canary(self, version: str, percent: int, *, by: str, why: str) -> RoleChange:
        if not 0 < percent <= 100:
            raise ValueError("canary percent must be between 1 and 100")
        if version == self.active():
            raise ConflictError(f"{version} is already the champion")
        self.verify(version)
        value = parameters.Canary(version, percent).encode()
        before = parameters.read(self.settings.canary_model_param)
        parameters.write(self.settings.canary_model_param, value, why=f"{by}: {why}")
        return RoleChange("canary", before, value, by, why)

    def clear_canary(self, *, by: str, why: str) -> RoleChange:
        before = parameters.read(self.settings.canary_model_param)
        parameters.write(self.settings.canary_model_param, parameters.NONE, why=f"{by}: {why}")
        return RoleChange("canary", before, parameters.NONE, by, why)

    def set_shadow(self, version: str, *, by: str, why: str) -> RoleChange:
        if version == self.active():
            raise ConflictError(f"{version} is already the champion")
        self.verify(version)
        before = self.shadow()
        parameters.write(self.settings.shadow_model_param, version, why=f"{by}: {why}")
        return RoleChange("shadow", before, version, by, why)

    def clear_shadow(self, *, by: str, why: str) -> RoleChange:
        before = self.shadow()
        parameters.write(self.settings.shadow_model_param, parameters.NONE, why=f"{by}: {why}")
        return RoleChange("shadow", before, parameters.NONE, by, why)
