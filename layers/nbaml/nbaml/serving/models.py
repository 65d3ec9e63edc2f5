"""The models a warm predict instance serves, swapped in without a restart when their SSM parameters change.

Each role's parameter is re-read at most once per ``max_age`` (``Fresh``): at most one SSM call per role per
max_age, and a parameter write reaches every warm instance within max_age. Between reads a request touches
neither SSM, boto3 nor the environment (bench/bench_serving.py measured the Powertools cache's lookups, which
read the environment about ten times and build the SSM client's identity three times a request, at about a
tenth of a one-game request), and a failed read is not retried before max_age, so a throttled SSM is not
asked harder by every request. Bundles are loaded
once per version and kept, so flipping back to a version already seen costs nothing. A parameter that
names a version that is missing or whose checksums fail is refused: the last good model keeps serving,
an error is logged and the ModelLoadRefused metric (alarmed in the template) is emitted. An unreachable
S3 or SSM never takes down a model already in memory.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.bundle import ModelBundle
from nbaml.errors import BundleIntegrityError, NbamlError
from nbaml.features import LeagueState, incompatibility
from nbaml.games.calendar import LeagueCalendar
from nbaml.games.history import GameHistory
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore

logger = Logger(child=True)
T = TypeVar("T")
_UNREAD = object()


class Fresh(Generic[T]):
    """A value re-read from its source at most every ``max_age`` seconds, however often it is asked.

    A failed read keeps the last good value (an unreachable S3 or SSM never takes away what is in memory) and
    is not retried before max_age either, so a throttled source is not asked harder. With no good value yet,
    the failure is raised.
    """

    def __init__(self, load: Callable[[], T], max_age: float, what: str, clock: Callable[[], float]) -> None:
        self.load = load
        self.max_age = max_age
        self.what = what
        self.clock = clock
        self._value: object = _UNREAD
        self._error: NbamlError | None = None
        self._read_at = float("-inf")

    def get(self) -> T:
        now = self.clock()
        if now - self._read_at >= self.max_age:
            self._read_at = now
            try:
                self._value, self._error = self.load(), None
            except NbamlError as exc:
                self._error = exc
                logger.warning(f"{self.what} unreadable; keeping the one in memory", extra={"error": str(exc)})
        if self._value is _UNREAD:
            assert self._error is not None
            raise self._error
        return self._value  # type: ignore[return-value]

    @property
    def failing(self) -> bool:
        """Whether the last read failed (the value in memory is the last good one, older than max_age)."""
        return self._error is not None


@dataclass(frozen=True)
class LoadedModel:
    version: str
    bundle: ModelBundle
    since: dt.datetime
    checksum: str = "verified"


@dataclass(frozen=True)
class Refusal:
    version: str
    error: str  # the exception's class: what /health shows anyone
    reason: str  # its text too (it can name the bucket and account): for the log only
    at: dt.datetime


class ServedModels:
    """Champion, canary and shadow for this execution environment, each following its parameter."""

    def __init__(
        self,
        *,
        store: ArtifactStore,
        active_param: str,
        canary_param: str,
        shadow_param: str,
        max_age: int,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.params = {"active": active_param, "canary": canary_param, "shadow": shadow_param}
        self.max_age = max_age
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._bundles: dict[str, ModelBundle] = {}
        self._current: dict[str, LoadedModel | None] = {"active": None, "canary": None, "shadow": None}
        self._canary_percent = 0
        self._refused: dict[str, tuple[float, Refusal]] = {}
        self.last_refusal: Refusal | None = None
        self._league = Fresh(GameHistory(store).league, max_age, "team state and calendar", clock)
        self._roles = {
            role: Fresh(functools.partial(parameters.read, name), max_age, f"{role} parameter {name}", clock)
            for role, name in self.params.items()
        }

    # ---------------------------------------------------------------- roles
    def champion(self) -> LoadedModel | None:
        return self._follow("active")

    def canary(self) -> tuple[LoadedModel, int] | None:
        model = self._follow("canary")
        return (model, self._canary_percent) if model else None

    def shadow(self) -> LoadedModel | None:
        return self._follow("shadow")

    def _follow(self, role: str) -> LoadedModel | None:
        try:
            value = self._roles[role].get()  # the last good value while SSM fails (Fresh logs the failure)
        except NbamlError:  # never read yet
            return self._current[role]
        version, percent = value, 0
        if role == "canary":
            canary = parameters.Canary.decode(value)
            version, percent = (canary.version, canary.percent) if canary else (parameters.NONE, 0)
        if version == parameters.NONE:
            if role != "active":
                self._current[role] = None
            return self._current[role]
        current = self._current[role]
        if current is not None and current.version == version:
            self._canary_percent = percent if role == "canary" else self._canary_percent
            return current
        bundle = self._load(version)
        if bundle is None:
            # Refused: the champion keeps its last good model; a challenger role simply stops.
            if role != "active":
                self._current[role] = None
            return self._current[role]
        loaded = LoadedModel(version=version, bundle=bundle, since=dt.datetime.now(dt.UTC))
        self._current[role] = loaded
        if role == "canary":
            self._canary_percent = percent
        logger.info("model swapped in", extra={"role": role, "version": version})
        return loaded

    def _load(self, version: str) -> ModelBundle | None:
        with self._lock:
            if version in self._bundles:
                return self._bundles[version]
            refused = self._refused.get(version)
            if refused and self.clock() - refused[0] < max(self.max_age, 1):
                return None
            try:
                bundle = ModelBundle.from_files(self.store.read_bundle_files(version), expected_version=version)
                incompatible = incompatibility(bundle.metadata)
                if incompatible:  # this code's features would mean something else to that model
                    raise BundleIntegrityError(f"{version}: {incompatible}")
            except NbamlError as exc:
                refusal = Refusal(version, type(exc).__name__, f"{type(exc).__name__}: {exc}", dt.datetime.now(dt.UTC))
                self._refused[version] = (self.clock(), refusal)
                self.last_refusal = refusal
                logger.error("model version refused", extra={"version": version, "reason": refusal.reason})
                if self.metrics is not None:
                    self.metrics.add_metric(name="ModelLoadRefused", unit=MetricUnit.Count, value=1)
                return None
            self._bundles[version] = bundle
            return bundle

    # ---------------------------------------------------------------- team state
    def league(self) -> tuple[LeagueState | None, LeagueCalendar | None]:
        """The stored team state and the league calendar written with it, re-read together at most every
        max_age; the pair in memory is kept if S3 is unreachable."""
        try:
            return self._league.get()
        except NbamlError:
            return None, None

    def league_state(self) -> LeagueState | None:
        return self.league()[0]

    @property
    def league_unreadable(self) -> bool:
        """Whether the last re-read of the pair failed: the one in memory may miss what collect wrote since."""
        return self._league.failing
