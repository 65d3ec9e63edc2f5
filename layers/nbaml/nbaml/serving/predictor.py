"""Scoring a slate: features from the stored team state, the champion (or the canary for its share of
games), the shadow scored and logged but never returned, and every role's prediction logged once.

Dates are checked before any work: after the team state's last game day (features never see the game
itself) and at most HORIZON_DAYS ahead of the later of that day and today (UTC), so nobody logs
predictions for games years away. The state's day alone cannot be the anchor: it stands still through the
All-Star break and the off-season, when no game is collected.

A failed log write never fails the answer: the record is kept in memory and retried on a later request
(boto3 has already retried with backoff by then), and the PredictionLogFailed metric is emitted. A request's
log work is bounded: its own records, then at most FLUSH_LIMIT queued ones, all within LOG_BUDGET_SECONDS;
what is left waits in the queue (at most PENDING_LIMIT records) for the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.errors import NbamlError
from nbaml.games.records import game_id_for
from nbaml.metrics import picks_home
from nbaml.serving.models import LoadedModel, ServedModels
from nbaml.serving.routing import served_by_canary
from nbaml.storage.predictions import PredictionRecord

logger = Logger(child=True)
HORIZON_DAYS = 3
PENDING_LIMIT = 10_000
FLUSH_LIMIT = 25
# A slate's own writes (at most 20 games x 3 roles) take well under a second on a healthy table; the budget
# only bites when DynamoDB is slow, and keeps such a request far from the function's 29 s timeout.
LOG_BUDGET_SECONDS = 5.0


class NoModelError(NbamlError):
    """No version holds the active role yet (or none ever loaded)."""


class DateOutsideWindowError(NbamlError, ValueError):
    """A game's date is on or before the team state's last game day (features would see the game), or
    further ahead than HORIZON_DAYS. ``index`` is the game's place in the slate."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class PredictionSink(Protocol):
    def record(self, prediction: PredictionRecord) -> bool: ...


@dataclass(frozen=True)
class GameQuery:
    home: str
    away: str
    date: dt.date


@dataclass(frozen=True)
class Answer:
    game_id: str
    home: str
    away: str
    date: dt.date
    home_win_probability: float
    pick: str
    version: str
    role: str


def feature_hash(row: list[float]) -> str:
    """16 hex digits of the SHA-256 of the row's float64 bytes: exact, and a tenth of the cost of hashing its JSON
    (which was 17 µs of a 15-game slate's ~150 µs a game)."""
    return hashlib.sha256(struct.pack(f"<{len(row)}d", *row)).hexdigest()[:16]


class Predictor:
    def __init__(
        self,
        models: ServedModels,
        sink: PredictionSink,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        self.models = models
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.today = today
        self._pending: deque[PredictionRecord] = deque(maxlen=PENDING_LIMIT)

    def predict(self, queries: list[GameQuery]) -> list[Answer]:
        champion = self.models.champion()
        if champion is None:
            raise NoModelError("no model is active yet: train one and promote it")
        canary = self.models.canary()
        shadow = self.models.shadow()
        state = self.models.league_state()
        if state is None:
            raise NoModelError("no team state yet: collect or backfill games first")

        self._check_dates(queries, state.as_of)

        answers: list[Answer] = []
        records: list[PredictionRecord] = []
        for query in queries:
            game_id = game_id_for(query.date, query.home, query.away)
            row = state.features(query.home, query.away, query.date)
            digest = feature_hash(row)
            served: tuple[LoadedModel, str] = (champion, "champion")
            scored: list[tuple[LoadedModel, str]] = [(champion, "champion")]
            if canary and canary[0].version != champion.version:
                scored.append((canary[0], "canary"))
                if served_by_canary(game_id, canary[1]):
                    served = (canary[0], "canary")
            if shadow and shadow.version not in {m.version for m, _ in scored}:
                scored.append((shadow, "shadow"))
            for model, role in scored:
                started = time.perf_counter()
                probability = model.bundle.predict_proba(row)
                latency_ms = (time.perf_counter() - started) * 1000
                if (model, role) == served:
                    answers.append(
                        Answer(
                            game_id=game_id,
                            home=query.home,
                            away=query.away,
                            date=query.date,
                            home_win_probability=probability,
                            pick=query.home if picks_home(probability) else query.away,
                            version=model.version,
                            role=role,
                        )
                    )
                records.append(
                    PredictionRecord(
                        game_id=game_id,
                        game_date=query.date.isoformat(),
                        home=query.home,
                        away=query.away,
                        version=model.version,
                        role=role,
                        probability=probability,
                        feature_hash=digest,
                        latency_ms=latency_ms,
                        features=row,
                        served=(model, role) == served,
                    )
                )
        self._log(records)
        return answers

    def _check_dates(self, queries: list[GameQuery], as_of: dt.date | None) -> None:
        today = self.today()
        last = (today if as_of is None else max(as_of, today)) + dt.timedelta(days=HORIZON_DAYS)
        for index, query in enumerate(queries):
            if as_of is not None and query.date <= as_of:
                raise DateOutsideWindowError(
                    index,
                    f"{query.date} is not after the last collected game day {as_of}: "
                    "predictions are made before tip-off",
                )
            if query.date > last:
                raise DateOutsideWindowError(index, f"{query.date} is more than {HORIZON_DAYS} days ahead ({last})")

    def _log(self, records: list[PredictionRecord]) -> None:
        """This request's records, then up to FLUSH_LIMIT queued ones, while LOG_BUDGET_SECONDS last.

        After one refused write the table is taken to be refusing: nothing more is tried on this request.
        """
        deadline = self.clock() + LOG_BUDGET_SECONDS
        refused = False
        for record in records:
            if refused or self.clock() >= deadline:
                self._queue(record)
            else:
                refused = not self._write(record)
        flush = 0 if refused else min(FLUSH_LIMIT, len(self._pending))
        for _ in range(flush):
            if self.clock() >= deadline or not self._write(self._pending.popleft()):
                break

    def _write(self, record: PredictionRecord) -> bool:
        """One write; a refused record goes to the back of the queue."""
        try:
            self.sink.record(record)
        except NbamlError as exc:
            self._queue(record)
            logger.warning("prediction log write failed; queued for retry", extra={"error": str(exc)})
            if self.metrics is not None:
                self.metrics.add_metric(name="PredictionLogFailed", unit=MetricUnit.Count, value=1)
            return False
        return True

    def _queue(self, record: PredictionRecord) -> None:
        if len(self._pending) == PENDING_LIMIT:
            logger.error("prediction log queue full; the oldest record is dropped", extra={"limit": PENDING_LIMIT})
            if self.metrics is not None:
                self.metrics.add_metric(name="PredictionLogDropped", unit=MetricUnit.Count, value=1)
        self._pending.append(record)

    @property
    def pending(self) -> int:
        return len(self._pending)
