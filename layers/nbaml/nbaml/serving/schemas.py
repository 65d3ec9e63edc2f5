"""Request and response bodies of the prediction API (pydantic; they make the OpenAPI spec at /docs)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from nbaml.errors import UnknownTeamError
from nbaml.games.teams import team_abbreviation


class GameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    home: str = Field(description="home team: abbreviation (BOS) or name (Boston Celtics)", examples=["BOS"])
    away: str = Field(description="away team", examples=["LAL"])
    date: dt.date = Field(description="game day (US local date), after the last collected game day")

    @field_validator("home", "away")
    @classmethod
    def _team(cls, value: str) -> str:
        try:
            return team_abbreviation(value)
        except UnknownTeamError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _two_teams(self) -> Self:
        if self.home == self.away:
            raise ValueError(f"home and away are the same team ({self.home})")
        return self


class PredictionRequest(BaseModel):
    """One game, or a night's slate under ``games``."""

    model_config = ConfigDict(extra="forbid")

    games: list[GameIn] = Field(min_length=1, description="the slate; at most SLATE_LIMIT games")

    @model_validator(mode="before")
    @classmethod
    def _single_game(cls, data: Any) -> Any:
        if isinstance(data, dict) and "games" not in data and "home" in data:
            return {"games": [data]}
        return data


class PredictionOut(BaseModel):
    game_id: str
    home: str
    away: str
    date: dt.date
    home_win_probability: float = Field(ge=0, le=1)
    pick: str
    version: str
    role: Literal["champion", "canary"]


class PredictionResponse(BaseModel):
    predictions: list[PredictionOut]


class Reasoned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=500, description="why: recorded in the registry and SSM history")


class PromoteRequest(Reasoned):
    version: str = Field(min_length=2, max_length=40)


class RollbackRequest(Reasoned):
    version: str = Field(default="previous", min_length=2, max_length=40, description='a version or "previous"')


class CanaryRequest(Reasoned):
    version: str = Field(min_length=2, max_length=40)
    percent: int = Field(ge=1, le=100)


class ShadowRequest(Reasoned):
    version: str = Field(min_length=2, max_length=40)


class RetrainAccepted(BaseModel):
    request_id: str
    queued: bool = True
