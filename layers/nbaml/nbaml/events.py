"""The shapes of the events that start our functions, read in one place.

Scheduled events are shaped as EventBridge's ``Scheduled Event`` (``sam local generate-event cloudwatch
scheduled-event``), which is also the Input template.yaml gives its EventBridge Scheduler schedules; their
``time`` is the instant they fired for, so a replayed event covers the same window and a replay of a season
can fire them on a simulated calendar. The run date is that instant's date on the league's clock. Retrain
requests arrive as SQS records (from drift_check and the admin API), as a scheduled event (the monthly
forced retrain), or as a direct invocation carrying the request itself (the command line).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from nbaml.errors import NbamlError
from nbaml.games.teams import league_date

SCHEDULED_EVENT = "Scheduled Event"


class MalformedEventError(NbamlError, ValueError):
    """An event that is none of the shapes a function accepts."""


def scheduled_time(event: Mapping[str, Any]) -> dt.datetime:
    """The instant (UTC) a scheduled event fired for (its ``time``), falling back to now for a bare invoke.

    An EventBridge rule puts it in ``time``; our Scheduler schedules put Scheduler's
    ``<aws.scheduler.scheduled-time>`` there through their Input (template.yaml), so both read alike.
    """
    raw_time = event.get("time") if isinstance(event, Mapping) else None
    if not raw_time:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(str(raw_time).replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedEventError(f"scheduled event has an unreadable time {raw_time!r}") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)  # EventBridge's is UTC


def scheduled_run_date(event: Mapping[str, Any]) -> dt.date:
    """The league's (US Eastern) date of the instant a scheduled event fired for.

    The schedules run on the league's clock (03:00 Eastern is 07:00 or 08:00 UTC), so the run date is the
    date in that zone: a run at 22:00 Eastern on the 5th (03:00 UTC on the 6th) belongs to the 5th.
    """
    return league_date(scheduled_time(event))


class RetrainTrigger(StrEnum):
    SCHEDULE = "schedule"
    DRIFT = "drift"
    MANUAL = "manual"


class RetrainRequest(BaseModel):
    """Why a retrain runs and who asked: recorded on every run and on the candidate it produces."""

    trigger: RetrainTrigger
    reason: str = Field(min_length=1, max_length=500)
    requested_by: str = Field(default="unknown", max_length=200)
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    requested_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # A forced run trains and evaluates even when no new games arrived since the champion.
    force: bool = False

    def to_message(self) -> str:
        return self.model_dump_json()


@dataclass(frozen=True)
class RetrainDelivery:
    """One retrain request as it arrived: from an SQS message (its id, for a partial batch failure) or not."""

    request: RetrainRequest
    message_id: str | None = None


def retrain_requests(event: Mapping[str, Any]) -> list[RetrainRequest]:
    """Every retrain request an event carries: one per SQS record, or one for a schedule or a direct call."""
    return [delivery.request for delivery in retrain_deliveries(event)]


def retrain_deliveries(event: Mapping[str, Any]) -> list[RetrainDelivery]:
    """``retrain_requests``, each with the SQS message that carried it (None for a schedule or a direct call).

    A scheduled event's request id is the event's id, which EventBridge keeps when it retries a failed
    invocation; an SQS message carries the id its sender gave the request.
    """
    if not isinstance(event, Mapping):
        raise MalformedEventError("retrain event must be a JSON object")
    if event.get("detail-type") == SCHEDULED_EVENT:
        fired = scheduled_run_date(event)
        return [
            RetrainDelivery(
                RetrainRequest(
                    trigger=RetrainTrigger.SCHEDULE,
                    reason=f"monthly forced retrain ({fired:%Y-%m})",
                    requested_by=str((event.get("resources") or ["eventbridge"])[0]),
                    request_id=str(event.get("id") or uuid.uuid4().hex),
                    requested_at=scheduled_time(event),
                    force=True,
                )
            )
        ]
    try:
        if "Records" in event:
            return [
                RetrainDelivery(RetrainRequest.model_validate(json.loads(record["body"])), str(record["messageId"]))
                for record in event["Records"]
            ]
        return [RetrainDelivery(RetrainRequest.model_validate(event))]
    except (KeyError, TypeError, json.JSONDecodeError, ValidationError) as exc:
        raise MalformedEventError(f"not a retrain request: {exc}") from exc
