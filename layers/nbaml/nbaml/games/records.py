"""The one clean game record every feed produces and every store, feature and model reads."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nbaml.games.teams import Team, assumed_tip_off, league_date

GAME_LENGTH = dt.timedelta(hours=2, minutes=45)
"""How long after tip-off a game is final, as the emulated feeds (the synthetic league, the history file) and
the replay assume: an NBA game lasts about two hours and a quarter, and an overtime or a long review adds
a quarter of an hour. A 22:30 Eastern tip-off (19:30 Pacific) is final by 01:15 Eastern, before collect's
03:00."""


class GameStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"  # started, not final yet: pending, like a scheduled game
    FINAL = "final"
    POSTPONED = "postponed"
    CANCELLED = "cancelled"


# A day is complete when none of its games is still one of these (nbaml.games.calendar).
PENDING = frozenset({GameStatus.SCHEDULED, GameStatus.IN_PROGRESS})


class Stage(StrEnum):
    """Regular season or playoffs: the seed keeps playoff games out of training (different dynamics)."""

    REGULAR = "regular"
    PLAYOFFS = "playoffs"


def season_of(day: dt.date) -> int:
    """The season a date belongs to, named by the year it starts (2022 = 2022-23).

    Derived from the date because sources' season labels can be wrong. Seasons start in October
    (December in the lockout and pandemic years, which this rule also covers); the one exception is
    the 2020 bubble, whose 2019-20 playoffs ran until October 11, 2020 (the 2020-21 season began on
    December 22, so nothing of it falls in that window).
    """
    if day.year == 2020 and day.month == 10 and day.day <= 15:
        return 2019
    return day.year if day.month >= 10 else day.year - 1


def game_id_for(day: dt.date, home: str, away: str) -> str:
    """A stable id from what identifies a game in every source: its date and its two teams (YYYYMMDD-AWAY-HOME;
    isoformat, not strftime, which costs a microsecond more on each game a slate asks for)."""
    return f"{day.isoformat().replace('-', '')}-{away}-{home}"


class Game(BaseModel):
    """One NBA game, clean: known teams, a date, and a score exactly when it is final."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    game_id: str = Field(description="stable id: YYYYMMDD-AWAY-HOME")
    game_date: dt.date
    season: int = Field(description="year the season starts, derived from game_date")
    stage: Stage = Stage.REGULAR
    status: GameStatus
    home: Team
    away: Team
    home_score: int | None = Field(default=None, ge=0)
    away_score: int | None = Field(default=None, ge=0)
    source: str = Field(description="feed that produced the record: api-basketball, file, generator")
    source_id: str | None = None
    tip_off: dt.datetime | None = Field(
        default=None,
        description="scheduled start, UTC; its US Eastern date is game_date. None in records stored before the "
        "feeds gave it (nbaml.games.teams.assumed_tip_off stands in where one is needed)",
    )

    @field_validator("tip_off")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("tip_off needs a time zone (it is stored in UTC)")
        return value.astimezone(dt.UTC)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.home == self.away:
            raise ValueError(f"a team cannot play itself: {self.home}")
        if self.season != season_of(self.game_date):
            raise ValueError(f"season {self.season} disagrees with date {self.game_date}")
        if self.game_id != game_id_for(self.game_date, self.home, self.away):
            raise ValueError(f"game_id {self.game_id!r} is not derived from date and teams")
        if self.tip_off is not None and league_date(self.tip_off) != self.game_date:
            raise ValueError(f"tip-off {self.tip_off.isoformat()} is not on {self.game_date} (US Eastern)")
        scored = self.home_score is not None and self.away_score is not None
        if self.status is GameStatus.FINAL:
            if not scored:
                raise ValueError("a final game needs both scores")
            if self.home_score == self.away_score:
                raise ValueError("an NBA game cannot end in a tie")
        return self

    @classmethod
    def create(
        cls,
        *,
        game_date: dt.date,
        home: str,
        away: str,
        status: GameStatus,
        source: str,
        home_score: int | None = None,
        away_score: int | None = None,
        stage: Stage = Stage.REGULAR,
        source_id: str | None = None,
        tip_off: dt.datetime | None = None,
    ) -> Game:
        """Build a record, deriving the id and the season from the date and teams."""
        return cls(
            game_id=game_id_for(game_date, home, away),
            game_date=game_date,
            season=season_of(game_date),
            stage=stage,
            status=status,
            home=home,
            away=away,
            home_score=home_score,
            away_score=away_score,
            source=source,
            source_id=source_id,
            tip_off=tip_off,
        )

    @property
    def is_final(self) -> bool:
        return self.status is GameStatus.FINAL

    @property
    def is_pending(self) -> bool:
        """Scheduled or being played: neither final nor called off, so its day is not complete yet."""
        return self.status in PENDING

    @property
    def home_won(self) -> bool | None:
        """True or False for a final game, None before it ends."""
        if not self.is_final:
            return None
        return self.home_score > self.away_score  # type: ignore[operator]


def tip_off_of(game: Game) -> dt.datetime:
    """When ``game`` starts: its tip-off, or the stated assumption for a record without one."""
    return game.tip_off or assumed_tip_off(game.game_date, game.home)


def final_at(game: Game) -> dt.datetime:
    """When an emulated feed reports ``game`` final: GAME_LENGTH after its tip-off."""
    return tip_off_of(game) + GAME_LENGTH
