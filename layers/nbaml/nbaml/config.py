"""Settings of each function, parsed once at cold start from the environment the template gives it.

The template's ``Environment`` is the only source: every field here is an environment variable
declared in template.yaml (Globals or the function's own), so the local stack, ``sam local`` and AWS
configure a function the same way. A missing or malformed variable fails the cold start with a
ConfigurationError naming it, instead of failing later inside a job.
"""

from __future__ import annotations

import os
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nbaml.errors import ConfigurationError


class EnvironmentSettings(BaseModel):
    """Settings whose fields are environment variables of the same name, in any case (``STAGE`` is ``stage``).

    Plain pydantic, not pydantic-settings: every value is a string the template sets, so reading them is a
    dictionary lookup, and the predict function's cold start spares pydantic-settings' import (13 ms, with
    argparse for its command-line source). Constructed directly (``FeedSettings(feed_source="file")``), a
    model reads nothing from the environment.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_environment(cls) -> Self:
        values = {key.lower(): value for key, value in os.environ.items()}
        return cls.model_validate({name: values[name] for name in cls.model_fields if name in values})


class CommonSettings(EnvironmentSettings):
    """What every function shares (template Globals)."""

    stage: str = Field(min_length=1)
    nbaml_bucket: str = Field(min_length=1)
    games_table: str = Field(min_length=1)
    predictions_table: str = Field(min_length=1)
    model_versions_table: str = Field(min_length=1)
    active_model_param: str = Field(min_length=1)
    canary_model_param: str = Field(min_length=1)
    shadow_model_param: str = Field(min_length=1)
    # The canary's ladder (nbaml.promotion.canary): the retrain starts a candidate at the first share, the
    # drift check (or an operator) moves it up one step at a time, and 100 makes it active.
    canary_steps: str = "10,50,100"

    @field_validator("canary_steps")
    @classmethod
    def _steps(cls, value: str) -> str:
        from nbaml.promotion.steps import parse_steps

        parse_steps(value)
        return value

    @property
    def steps(self) -> tuple[int, ...]:
        from nbaml.promotion.steps import parse_steps

        return parse_steps(self.canary_steps)


class FeedSettings(EnvironmentSettings):
    """Which feed collect reads (``nbaml.games.feeds.open_feed`` builds it)."""

    feed_source: Literal["generator", "api-basketball", "file"] = "generator"
    feed_key_param: str = ""
    # Local replays and tests only (not in the template): the file feed's path, the generator's seed, and
    # another https base URL for the API-Basketball client (a local TLS server that serves its response
    # shape; its certificate is trusted through the standard SSL_CERT_FILE).
    feed_file: str = ""
    feed_seed: int = 2024
    feed_base_url: str = ""

    def environment(self) -> dict[str, str]:
        """The feed variables that were set, as the environment that gives a collect function the same feed."""
        chosen = sorted(self.model_fields_set & set(FeedSettings.model_fields))
        return {name.upper(): str(getattr(self, name)) for name in chosen}


class CollectSettings(CommonSettings, FeedSettings):
    collect_lookback_days: int = Field(default=7, ge=1, le=60)


class DriftSettings(CommonSettings):
    retrain_queue_url: str = Field(min_length=1)
    drift_rule: Literal["seed", "sequential"] = "sequential"
    drift_window: int = Field(default=50, ge=10)
    drift_threshold: float = Field(default=0.05, gt=0, lt=1)
    psi_alarm: float = Field(default=0.2, gt=0)
    # The canary's sequential test (nbaml.promotion.evidence: what each number bounds).
    canary_margin: float = Field(default=0.01, gt=0, lt=1)
    canary_alpha_promote: float = Field(default=0.01, gt=0, lt=0.5)
    canary_alpha_abort: float = Field(default=0.05, gt=0, lt=0.5)
    canary_min_games: int = Field(default=50, ge=2)
    canary_max_games: int = Field(default=100, ge=2)
    canary_step_games: int = Field(default=25, ge=1)


class RetrainSettings(CommonSettings):
    # Each request's outcome by its id (Powertools Idempotency): a redelivered request runs once.
    retrain_requests_table: str = Field(min_length=1)
    # An MLflow tracking server's URL (template parameter TrackingUri); empty: runs are not tracked.
    mlflow_tracking_uri: str = ""
    mlflow_experiment_name: str = Field(default="nbaml", min_length=1)
    promotion_mode: Literal["active", "canary", "shadow"] = "active"
    retrain_lock_ttl_seconds: int = Field(default=1800, ge=60)
    gate_min_accuracy: float = Field(default=0.60, ge=0, le=1)
    gate_min_roc_auc: float = Field(default=0.62, ge=0, le=1)
    gate_max_ece: float = Field(default=0.05, ge=0, le=1)
    gate_max_p99_ms: float = Field(default=500.0, gt=0)
    gate_logloss_tolerance: float = Field(default=0.005, ge=0)
    # Local smoke runs only (not in the template): "quick" searches a one-point grid.
    train_profile: Literal["full", "quick"] = "full"


class PredictSettings(CommonSettings):
    model_param_max_age_seconds: int = Field(default=30, ge=0, le=3600)
    admin_token_param: str = Field(min_length=1)
    retrain_queue_url: str = Field(min_length=1)


class AuthorizerSettings(EnvironmentSettings):
    admin_token_param: str = Field(min_length=1)


S = TypeVar("S", bound=EnvironmentSettings)


def load_settings(kind: type[S]) -> S:
    """Parse ``kind`` from the environment, turning pydantic's error into one that names each variable."""
    try:
        return kind.from_environment()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigurationError(f"{kind.__name__} is not configured: {problems}") from exc
