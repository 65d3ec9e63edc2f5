"""The league's calendar as collect last saw it: each day's games by status, and when the games still to come
start (``layout.LEAGUE_CALENDAR``, beside the team state).

A day is **complete** when every game scheduled for it is final, postponed or cancelled; a day without games
is complete once a collect (or a backfill) has looked at it. ``complete_through`` is the watermark: that day
and every day before it are complete. The team state then holds every game up to it, so:

- the predict function serves a date only when every day before it is complete (``missing_before`` names
  the games it would miss otherwise), and knows from ``tip_off`` whether a game on the schedule has started;
- drift_check and retrain use the days up to the watermark and name the ones after it they skip
  (``Completeness``).

collect records each day of its window from what the feed said at its scheduled time (``record``); a
backfill vouches for every day up to the last it loaded (``backfilled``). A day can only be observed by a
collect whose window covers it: after an outage longer than the window (or before the first backfill), the
days in between stay "not collected" and the watermark waits for a backfill. Days well behind the
watermark are dropped; an incomplete day is kept until it completes, however old.

The document names the team state it was written with (``state_sha256``), so a reader that met collect
between its two writes can tell (``nbaml.games.history``). Standard library and the record only: the predict
function imports it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from nbaml.games.records import Game, tip_off_of

FORMAT = 1
KEEP_DAYS = 21  # complete days kept behind the newest recorded one
ONE_DAY = dt.timedelta(days=1)
T = TypeVar("T")


@dataclass(frozen=True)
class LeagueDay:
    """One day's games by status, as the feed last reported them."""

    final: tuple[str, ...] = ()
    postponed: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()  # scheduled or in progress

    @property
    def complete(self) -> bool:
        return not self.pending

    @property
    def scheduled(self) -> tuple[str, ...]:
        """Every game the day had on its schedule, whatever became of it."""
        return tuple(sorted((*self.final, *self.postponed, *self.cancelled, *self.pending)))

    @classmethod
    def of(cls, games: Iterable[Game]) -> LeagueDay:
        by: dict[str, list[str]] = {"final": [], "postponed": [], "cancelled": [], "pending": []}
        for game in games:
            kind = "pending" if game.is_pending else str(game.status)
            by[kind].append(game.game_id)
        return cls(**{kind: tuple(sorted(ids)) for kind, ids in by.items()})

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "final": list(self.final),
            "postponed": list(self.postponed),
            "cancelled": list(self.cancelled),
            "pending": list(self.pending),
        }


@dataclass(frozen=True)
class MissingDay:
    """A day before a slate that is not complete: never collected, or with these games still pending."""

    day: dt.date
    collected: bool
    pending: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.collected:
            return f"{self.day}: not collected"
        return f"{self.day}: {len(self.pending)} not final ({', '.join(self.pending)})"


@dataclass(frozen=True)
class LeagueCalendar:
    complete_through: dt.date | None = None
    days: Mapping[dt.date, LeagueDay] = field(default_factory=dict)
    tip_offs: Mapping[str, dt.datetime] = field(default_factory=dict)  # games still to be decided, by id
    collected_at: dt.datetime | None = None
    state_sha256: str | None = None

    # ---------------------------------------------------------------- writing
    @classmethod
    def backfilled(cls, through: dt.date, earlier: LeagueCalendar | None = None) -> LeagueCalendar:
        """A backfill loaded every game up to ``through``: those days are complete, whatever was recorded."""
        if earlier is None:
            return cls(complete_through=through)
        mark = max(through, earlier.complete_through) if earlier.complete_through else through
        kept = {day: record for day, record in earlier.days.items() if day > through}
        return replace(earlier, complete_through=mark, days=kept)._advanced()

    def record(self, window: tuple[dt.date, dt.date], games: Iterable[Game], at: dt.datetime) -> LeagueCalendar:
        """What one collect saw at ``at``: every day of the window (inclusive), from the games the feed listed."""
        by_day: dict[dt.date, list[Game]] = {}
        for game in games:
            by_day.setdefault(game.game_date, []).append(game)
        days = dict(self.days)
        tip_offs = dict(self.tip_offs)
        day = window[0]
        while day <= window[1]:
            for game_id in days.get(day, LeagueDay()).scheduled:
                tip_offs.pop(game_id, None)
            listed = by_day.get(day, [])
            days[day] = LeagueDay.of(listed)
            tip_offs.update({g.game_id: tip_off_of(g) for g in listed if g.is_pending})
            day += ONE_DAY
        return replace(self, days=days, tip_offs=tip_offs, collected_at=at)._advanced()

    def _advanced(self) -> LeagueCalendar:
        """The watermark moved over every complete day that follows it; old complete days dropped."""
        mark = self.complete_through
        if mark is not None:
            while (record := self.days.get(mark + ONE_DAY)) is not None and record.complete:
                mark += ONE_DAY
        newest = max(self.days, default=mark)
        horizon = (newest or dt.date.min) - dt.timedelta(days=KEEP_DAYS)
        days = {d: r for d, r in sorted(self.days.items()) if d > horizon or not r.complete or (mark and d > mark)}
        kept = {game_id for record in days.values() for game_id in record.pending}
        tip_offs = {game_id: at for game_id, at in self.tip_offs.items() if game_id in kept}
        return replace(self, complete_through=mark, days=days, tip_offs=tip_offs)

    def with_state(self, digest: str) -> LeagueCalendar:
        return replace(self, state_sha256=digest)

    # ---------------------------------------------------------------- reading
    def complete(self, day: dt.date) -> bool:
        """Whether ``day`` and every day before it are complete (the team state holds all their games)."""
        return self.complete_through is not None and day <= self.complete_through

    def missing_before(self, day: dt.date) -> list[MissingDay]:
        """The days before ``day`` that are not complete: [] when a slate of ``day`` sees every earlier game."""
        if self.complete(day - ONE_DAY):
            return []
        if self.complete_through is None:  # no backfill has vouched for any day: nothing before is known
            return [MissingDay(day - ONE_DAY, collected=False)]
        missing = []
        current = self.complete_through + ONE_DAY
        while current < day:
            record = self.days.get(current)
            if record is None:
                missing.append(MissingDay(current, collected=False))
            elif not record.complete:
                missing.append(MissingDay(current, collected=True, pending=record.pending))
            current += ONE_DAY
        return missing

    def on_schedule(self, game_id: str, day: dt.date) -> bool:
        """Whether ``game_id`` is a game the feed listed for ``day`` (False for a day never collected)."""
        record = self.days.get(day)
        return record is not None and game_id in record.scheduled

    def tip_off(self, game_id: str) -> dt.datetime | None:
        """When a game on the schedule that is still to be decided starts; None for any other game."""
        return self.tip_offs.get(game_id)

    def skipped(self, days: Iterable[dt.date]) -> dict[str, str]:
        """Why each of ``days`` after the watermark cannot be used yet (drift_check's and retrain's record)."""
        return {
            day.isoformat(): _why(self.days.get(day), self.complete_through)
            for day in sorted(set(days))
            if not self.complete(day)
        }

    # ---------------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "complete_through": self.complete_through.isoformat() if self.complete_through else None,
            "collected_at": self.collected_at.isoformat() if self.collected_at else None,
            "state_sha256": self.state_sha256,
            "days": {day.isoformat(): record.as_dict() for day, record in sorted(self.days.items())},
            "tip_offs": {game_id: at.isoformat() for game_id, at in sorted(self.tip_offs.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeagueCalendar:
        if data.get("format") != FORMAT:
            raise ValueError(f"unknown league calendar format {data.get('format')!r}, expected {FORMAT}")
        mark = data.get("complete_through")
        at = data.get("collected_at")
        return cls(
            complete_through=dt.date.fromisoformat(mark) if mark else None,
            days={
                dt.date.fromisoformat(day): LeagueDay(**{k: tuple(v) for k, v in record.items()})
                for day, record in data.get("days", {}).items()
            },
            tip_offs={game_id: dt.datetime.fromisoformat(t) for game_id, t in data.get("tip_offs", {}).items()},
            collected_at=dt.datetime.fromisoformat(at) if at else None,
            state_sha256=data.get("state_sha256"),
        )


class Completeness:
    """The days a job may use (the calendar's complete ones), and those it skipped: the one rule drift_check
    and retrain apply. Without a calendar every day counts, and the record says so."""

    def __init__(self, calendar: LeagueCalendar | None) -> None:
        self.calendar = calendar
        self.skipped: set[dt.date] = set()

    def only(self, items: Iterable[T], day_of: Callable[[T], dt.date]) -> list[T]:
        """The items of complete days; the others' days are remembered as skipped."""
        if self.calendar is None:
            return list(items)
        kept = []
        for item in items:
            day = day_of(item)
            if self.calendar.complete(day):
                kept.append(item)
            else:
                self.skipped.add(day)
        return kept

    def record(self) -> dict[str, Any]:
        """What a report or a bundle states: the watermark, and each skipped day with why."""
        if self.calendar is None:
            return {"calendar": False, "complete_through": None, "skipped_days": {}}
        mark = self.calendar.complete_through
        return {
            "calendar": True,
            "complete_through": mark.isoformat() if mark else None,
            "skipped_days": self.calendar.skipped(self.skipped),
        }


def _why(record: LeagueDay | None, mark: dt.date | None) -> str:
    if record is None:
        return "not collected"
    if not record.complete:
        return f"{len(record.pending)} game(s) not final: {', '.join(record.pending)}"
    return f"complete, but after {mark + ONE_DAY if mark else 'a day'} which is not"
