"""Request and response bodies of the prediction API (pydantic; they make the OpenAPI spec at /docs).

Every body a route answers with is declared here, errors included, so ``/openapi.json`` describes each
response a client can get. Inputs are bounded before any work: team strings and slates have a maximum
length, dates are ``YYYY-MM-DD`` text only, versions follow nbaml.bundle's pattern.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from nbaml.bundle import VERSION_PATTERN
from nbaml.errors import UnknownTeamError
from nbaml.games.teams import team_abbreviation
from nbaml.serving.predictor import HORIZON_DAYS

MISSING_DAYS_LIMIT = 31  # days listed in an IncompleteDaysProblem (the message counts the rest)
# A night has at most 15 NBA games; 20 leaves room for a client that asks two nights at once.
SLATE_LIMIT = 20
# "Portland Trail Blazers" is 22 characters: nothing longer names a team, so nothing longer is read.
TEAM_MAX_LENGTH = 40
# Anchored: an OpenAPI (JSON Schema) pattern is searched, pydantic's is matched from the start.
VERSION = f"^{VERSION_PATTERN}$"
PREVIOUS_OR_VERSION = f"^(?:previous|{VERSION_PATTERN})$"

_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _full_date(value: object) -> object:
    """RFC 3339 full-date text only: pydantic's lax mode would also read 0 as 1970-01-01 (epoch seconds)."""
    if type(value) is dt.date:
        return value
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        raise ValueError("a date is written YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a day of the calendar") from None


IsoDate = Annotated[dt.date, BeforeValidator(_full_date)]
Team = Annotated[
    str,
    Field(
        min_length=1,
        max_length=TEAM_MAX_LENGTH,
        description="abbreviation (BOS), name (Boston Celtics) or historical name (New Jersey Nets)",
    ),
]


# ---------------------------------------------------------------- requests
class GameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home: Team = Field(examples=["BOS"])
    away: Team = Field(examples=["LAL"])
    date: IsoDate = Field(
        description="game day (US local date): after the team state's last game day, and at most "
        f"{HORIZON_DAYS} days after the later of that day and today (US Eastern), every day before it complete",
        examples=["2024-01-15"],
    )

    @field_validator("home", "away")
    @classmethod
    def _team(cls, value: str) -> str:
        try:
            return team_abbreviation(value)
        except UnknownTeamError:
            # Not echoed: the answer names the field, the input stays with the caller.
            raise ValueError("unknown team: send an abbreviation (BOS) or a name (Boston Celtics)") from None

    @model_validator(mode="after")
    def _two_teams(self) -> Self:
        if self.home == self.away:
            raise ValueError(f"home and away are the same team ({self.home})")
        return self


class PredictionRequest(BaseModel):
    """A night's slate under ``games``, or one game on its own (read as a slate of one)."""

    model_config = ConfigDict(extra="forbid")

    games: list[GameIn] = Field(min_length=1, max_length=SLATE_LIMIT, description=f"at most {SLATE_LIMIT} games")

    @model_validator(mode="before")
    @classmethod
    def _single_game(cls, data: Any) -> Any:
        if isinstance(data, dict) and "games" not in data and "home" in data:
            return {"games": [data]}
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        # The spec says what the server reads: a slate, or a single game.
        slate = handler(core_schema)
        return {"anyOf": [slate, handler(GameIn.__pydantic_core_schema__)], "title": cls.__name__}


class Reasoned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why: recorded in the registry and SSM history")


class PromoteRequest(Reasoned):
    version: str = Field(pattern=VERSION, examples=["v1"])


class RollbackRequest(Reasoned):
    version: str = Field(default="previous", pattern=PREVIOUS_OR_VERSION, description='a version or "previous"')


class CanaryRequest(Reasoned):
    version: str = Field(pattern=VERSION)
    percent: int = Field(ge=1, le=100)


class ShadowRequest(Reasoned):
    version: str = Field(pattern=VERSION)


# ---------------------------------------------------------------- answers
class PredictionOut(BaseModel):
    game_id: str
    home: str
    away: str
    date: dt.date
    home_win_probability: float = Field(ge=0, le=1)
    pick: str
    version: str
    role: Literal["champion", "canary"]
    on_schedule: bool = Field(
        description="a game of the league calendar's schedule; false for a hypothetical matchup, whose "
        "prediction is logged with a TTL and never judged"
    )
    logged: bool = Field(description="false once the game has started: only predictions before tip-off count")


class PredictionResponse(BaseModel):
    predictions: list[PredictionOut]


class PredictionsOnDate(BaseModel):
    date: dt.date
    predictions: list[dict[str, Any]] = Field(description="the Predictions table's items of that day")


class ServedVersion(BaseModel):
    version: str
    since: dt.datetime
    checksum: str


class CanaryShare(BaseModel):
    version: str
    percent: int


class RefusalOut(BaseModel):
    version: str
    error: str = Field(description="the kind of failure; the details are in the function's log")
    at: dt.datetime


class Health(BaseModel):
    status: Literal["ok", "no-model"]
    active: ServedVersion | None
    canary: CanaryShare | None
    shadow: str | None
    state_as_of: dt.date | None
    last_refusal: RefusalOut | None
    pending_log_writes: int


class VersionRecord(BaseModel):
    """A ModelVersions item: status, metrics, training window, history of who/when/why, and more."""

    model_config = ConfigDict(extra="allow")

    version: str
    status: str


class ActiveChange(BaseModel):
    value: str
    parameter_version: int
    at: dt.datetime
    why: str


class ModelsOverview(BaseModel):
    active: str
    canary: CanaryShare | None
    shadow: str | None
    versions: list[VersionRecord]
    active_history: list[ActiveChange]


class RoleChangeOut(BaseModel):
    role: str
    before: str
    after: str
    by: str
    why: str


class RetrainAccepted(BaseModel):
    request_id: str
    queued: bool = True


class Problem(BaseModel):
    """Every refusal but a validation error: what went wrong in general words, and the id to quote."""

    detail: str
    error: str = Field(description="the kind of error")
    request_id: str = Field(description="the id under which the details are logged")


class MissingDayOut(BaseModel):
    date: dt.date
    collected: bool = Field(description="false: no collect has seen this day yet")
    pending: list[str] = Field(description="its games not final, postponed or cancelled yet")


class IncompleteDaysProblem(Problem):
    """A 409 for a slate whose earlier days are not complete: the games (and days) its features would miss."""

    missing: list[MissingDayOut] = Field(description=f"at most {MISSING_DAYS_LIMIT} days, the earliest first")


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """A 422: which fields are wrong and why (the input itself is never echoed)."""

    detail: list[FieldProblem]
    error: str
    request_id: str
