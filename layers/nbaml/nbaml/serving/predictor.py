"""Scoring a slate: features from the stored team state, the champion (or the canary for its share of
games), the shadow scored and logged but never returned, and every role's prediction logged.

Dates are checked before any work: after the team state's last game day (features never see the game
itself) and at most HORIZON_DAYS ahead of the later of that day and today (league date), so nobody logs
predictions for games years away. The state's day alone cannot be the anchor: it stands still through the
All-Star break and the off-season, when no game is collected.

Then completeness: a date is served only when every day before it is complete in the league calendar (every
game final, postponed or cancelled), so features never silently miss a game of a half-collected night; a
slate whose earlier days are incomplete or not collected is refused (IncompleteDaysError, a 409 naming the
games and days missing).

What is logged, and how (nbaml.storage.predictions):
- a game on the calendar's schedule that has not started (``now`` before its tip-off): logged, replacing any
  earlier prediction of that game x version x role. The prediction a game is judged by is the last one made
  before tip-off on complete data, not the first ever asked for;
- a game on the schedule that has started or been decided: answered, not logged (never after tip-off);
- a matchup not on the schedule (hypothetical, or a day not collected yet): answered and logged with a TTL
  (``expires_at``), only where no real prediction of that id exists; it is never joined to an outcome, so it
  never reaches monitoring, and DynamoDB deletes it.

Why an anonymous caller can never change what a real game is judged by: it chooses only home, away and date.
For a game on the schedule, what gets logged is what the served model computes from the stored state at that
moment: exactly what the scheduled slate request would log then (the canary's share is a hash of the game,
not of the caller). Asking again only moves the judged prediction closer to tip-off, the definition itself;
after tip-off nothing is written, and a resolved prediction is never replaced. Anything off the schedule is
hypothetical: it cannot replace a real item, and expires.

``now`` is injectable: the replay runs the API on its simulated clock.

A failed log write never fails the answer: the record is kept in memory and retried on a later request
(boto3 has already retried with backoff by then), and the PredictionLogFailed metric is emitted. A request's
log work is bounded: its own records, then at most FLUSH_LIMIT queued ones, all within LOG_BUDGET_SECONDS;
what is left waits in the queue (at most PENDING_LIMIT records) for the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.errors import ConflictError, NbamlError
from nbaml.features import LeagueState
from nbaml.games.calendar import LeagueCalendar, MissingDay
from nbaml.games.records import game_id_for
from nbaml.games.teams import league_date
from nbaml.metrics import picks_home
from nbaml.serving.models import LoadedModel, ServedModels
from nbaml.serving.routing import served_by_canary
from nbaml.storage.predictions import PredictionRecord, pack_features

logger = Logger(child=True)
HORIZON_DAYS = 3
HYPOTHETICAL_TTL = dt.timedelta(days=7)  # how long a hypothetical matchup's predictions stay in the log
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


class IncompleteDaysError(ConflictError):
    """Days before a slate's date are not complete: the features would miss their games."""

    def __init__(self, day: dt.date, missing: list[MissingDay], *, unreadable: bool = False) -> None:
        pending = [g for m in missing for g in m.pending]
        uncollected = [m.day.isoformat() for m in missing if not m.collected]
        parts = [f"{len(pending)} game(s) not final ({', '.join(pending[:10])}{' ...' if len(pending) > 10 else ''})"]
        parts = parts if pending else []
        if uncollected:
            shown = ", ".join(uncollected[:5]) + (f" and {len(uncollected) - 5} more" if len(uncollected) > 5 else "")
            parts.append(f"day(s) not collected: {shown}")
        why = "; ".join(parts)
        if unreadable:  # S3 did not answer: the days may be complete in the calendar collect wrote since
            why += " (as the team state in memory says: it could not be read again just now)"
        super().__init__(f"not every day before {day} is complete: {why}; predictions wait for them")
        self.day = day
        self.missing = missing


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
    on_schedule: bool = True  # a game of the league calendar's schedule (else a hypothetical matchup)
    logged: bool = True  # False once the game has started: only predictions before tip-off are logged


@dataclass(frozen=True)
class Roles:
    """The versions that score a request: the champion, the canary and its share, the shadow."""

    champion: LoadedModel
    canary: tuple[LoadedModel, int] | None
    shadow: LoadedModel | None

    def for_game(self, game_id: str) -> tuple[tuple[LoadedModel, str], list[tuple[LoadedModel, str]]]:
        """(the served model and role, every model and role that scores the game)."""
        served: tuple[LoadedModel, str] = (self.champion, "champion")
        scored: list[tuple[LoadedModel, str]] = [served]
        if self.canary and self.canary[0].version != self.champion.version:
            scored.append((self.canary[0], "canary"))
            if served_by_canary(game_id, self.canary[1]):
                served = (self.canary[0], "canary")
        if self.shadow and self.shadow.version not in {m.version for m, _ in scored}:
            scored.append((self.shadow, "shadow"))
        return served, scored


@dataclass(frozen=True)
class Logging:
    """Whether and how a game's predictions are logged (see the module docstring)."""

    on_schedule: bool
    logged: bool
    expires_at: int | None = None  # epoch seconds: a hypothetical matchup's TTL

    @classmethod
    def of(
        cls, game_id: str, day: dt.date, calendar: LeagueCalendar | None, now: dt.datetime, hypothetical: Logging
    ) -> Logging:
        """``hypothetical`` is the request's one answer for a matchup off the schedule (``hypothetical_at``)."""
        if calendar is None or not calendar.on_schedule(game_id, day):
            return hypothetical
        tip_off = calendar.tip_off(game_id)
        return cls(on_schedule=True, logged=tip_off is not None and now < tip_off)

    @classmethod
    def hypothetical_at(cls, now: dt.datetime) -> Logging:
        """Logged with the TTL that ``now`` gives: built once a request, not once a game of the slate."""
        return cls(on_schedule=False, logged=True, expires_at=int((now + HYPOTHETICAL_TTL).timestamp()))


def feature_hash(row: list[float]) -> str:
    """16 hex digits of the SHA-256 of the row's float64 bytes (as the log stores them): exact, and a tenth of the
    cost of hashing its JSON (which was 17 µs of a 15-game slate's ~150 µs a game)."""
    return hashlib.sha256(pack_features(row)).hexdigest()[:16]


class Predictor:
    def __init__(
        self,
        models: ServedModels,
        sink: PredictionSink,
        metrics: Metrics | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.models = models
        self.sink = sink
        self.metrics = metrics
        self.clock = clock
        self.now = now
        self._pending: deque[PredictionRecord] = deque(maxlen=PENDING_LIMIT)

    def predict(self, queries: list[GameQuery]) -> list[Answer]:
        champion = self.models.champion()
        if champion is None:
            raise NoModelError("no model is active yet: train one and promote it")
        state, calendar = self.models.league()
        if state is None:
            raise NoModelError("no team state yet: collect or backfill games first")
        now = self.now()
        self._check_dates(queries, state.as_of, league_date(now))
        self._check_complete(queries, calendar or LeagueCalendar())
        roles = Roles(champion, self.models.canary(), self.models.shadow())

        answers: list[Answer] = []
        records: list[PredictionRecord] = []
        served_at, hypothetical = now.isoformat(), Logging.hypothetical_at(now)
        for query in queries:
            game_id = game_id_for(query.date, query.home, query.away)
            logging = Logging.of(game_id, query.date, calendar, now, hypothetical)
            answer, scored = self._score(query, game_id, state, roles, served_at, logging)
            answers.append(answer)
            records += scored if logging.logged else []
        self._log(records)
        return answers

    def _score(
        self, query: GameQuery, game_id: str, state: LeagueState, roles: Roles, served_at: str, logging: Logging
    ) -> tuple[Answer, list[PredictionRecord]]:
        """The answer (the served role's probability) and a record of every role that scored the game."""
        row = state.features(query.home, query.away, query.date)
        digest = feature_hash(row)
        game_date = query.date.isoformat()
        served, scored = roles.for_game(game_id)
        answer: Answer | None = None
        records = []
        for model, role in scored:
            started = time.perf_counter()
            probability = model.bundle.predict_proba(row)
            latency_ms = (time.perf_counter() - started) * 1000
            if (model, role) == served:
                pick = query.home if picks_home(probability) else query.away
                answer = Answer(
                    game_id, query.home, query.away, query.date, probability, pick, model.version, role,
                    on_schedule=logging.on_schedule, logged=logging.logged,
                )  # fmt: skip
            records.append(
                PredictionRecord(
                    game_id=game_id,
                    game_date=game_date,
                    home=query.home,
                    away=query.away,
                    version=model.version,
                    role=role,
                    probability=probability,
                    feature_hash=digest,
                    latency_ms=latency_ms,
                    served_at=served_at,
                    features=row,
                    served=(model, role) == served,
                    expires_at=logging.expires_at,
                )
            )
        assert answer is not None  # the served role is one of those scored
        return answer, records

    def _check_dates(self, queries: list[GameQuery], as_of: dt.date | None, today: dt.date) -> None:
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

    def _check_complete(self, queries: list[GameQuery], calendar: LeagueCalendar) -> None:
        """Refuse the slate unless every day before each of its dates is complete in the league calendar."""
        for day in sorted({q.date for q in queries}):
            missing = calendar.missing_before(day)
            if missing:
                if self.metrics is not None:
                    self.metrics.add_metric(name="SlateRefusedIncomplete", unit=MetricUnit.Count, value=1)
                raise IncompleteDaysError(day, missing, unreadable=self.models.league_unreadable)

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
