"""The schedule clock: the template's schedules fired on a simulated calendar.

Reads every ``Schedule`` (EventBridge rule, UTC) and ``ScheduleV2`` (EventBridge Scheduler, in its
``ScheduleExpressionTimezone``) event from template.yaml (no expression or time zone is repeated in code),
reads each expression with ``infra.cron`` (the grammar the template linter checks by, so the clock fires
every schedule the linter passes) and yields each firing with the event its function receives: for a rule,
the scheduled event EventBridge delivers (the shape of ``sam local generate-event cloudwatch
scheduled-event``); for a Scheduler schedule, the template's ``Input`` with the context attributes
Scheduler fills (``<aws.scheduler.scheduled-time>`` and the others). Disabled schedules never fire.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from infra import cron
from infra import template as tpl

SCHEDULER_GROUP = "default"  # SAM's ScheduleV2 puts each schedule in the default group unless told otherwise


@dataclass(frozen=True)
class Firing:
    at: dt.datetime  # UTC
    function: str  # logical id
    event_name: str
    expression: str
    scheduler: bool = False  # a ScheduleV2 (EventBridge Scheduler) rather than a Schedule (an EventBridge rule)
    timezone: str = cron.UTC
    input: str | None = None  # ScheduleV2's Input

    @property
    def resource_logical_id(self) -> str:
        """How SAM names the rule of a Schedule event, or the AWS::Scheduler::Schedule of a ScheduleV2 one."""
        return f"{self.function}{self.event_name}"

    def arn(self, name: str | None = None, account: str = "123456789012", region: str = "us-east-1") -> str:
        """The rule's or schedule's ARN, from its physical name (the logical id when not deployed)."""
        name = name or self.resource_logical_id
        if self.scheduler:
            return f"arn:aws:scheduler:{region}:{account}:schedule/{SCHEDULER_GROUP}/{name}"
        return f"arn:aws:events:{region}:{account}:rule/{name}"

    def event(
        self, account: str = "123456789012", region: str = "us-east-1", name: str | None = None
    ) -> dict[str, Any]:
        """The event the function receives for this firing (``name``: the deployed rule's or schedule's)."""
        arn = self.arn(name, account, region)
        time = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if not self.scheduler:
            return {
                "version": "0",
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{arn}@{self.at.isoformat()}")),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": account,
                "time": time,
                "region": region,
                "resources": [arn],
                "detail": {},
            }
        if not isinstance(self.input, str):
            raise cron.ScheduleExpressionError(
                self.resource_logical_id,
                ["a ScheduleV2 event without Input gets Scheduler's default notification, whose shape is not "
                 "documented: give it an Input"],
            )  # fmt: skip
        attributes = {
            "schedule-arn": arn,
            "scheduled-time": time,
            "execution-id": uuid.uuid5(uuid.NAMESPACE_URL, f"{arn}@{time}").hex[:16],
            "attempt-number": "1",
        }
        text = self.input
        for key, value in attributes.items():
            text = text.replace(f"<aws.scheduler.{key}>", value)
        return dict(json.loads(text))


class ScheduleClock:
    """Every enabled schedule of the template, asked day by day (days of ``timezone``: UTC unless told).

    ``deployed_at`` is when the stack was created: a ``rate()`` schedule fires then and every interval
    after, as on AWS (by default the Unix epoch, so rates fire on multiples of their interval). The
    template is checked by the linter's own schedule pass first, so a template the linter passes always
    runs and one it refuses raises ``ScheduleExpressionError`` with the linter's lines.
    """

    def __init__(self, template: Mapping[str, Any], deployed_at: dt.datetime | None = None) -> None:
        problems = tpl.schedule_problems(template)
        if problems:
            raise cron.ScheduleExpressionError("the template's schedules", problems)
        self.deployed_at = deployed_at or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        self.schedules = [
            (function, event, cron.parse(event.expression, scheduler=event.scheduler))
            for function, events in tpl.schedules(template).items()
            for event in events
            if event.enabled
        ]

    def firing(self, function: str, at: dt.datetime) -> Firing:
        """A firing of ``function``'s (first) schedule at ``at``, whenever that is: the event a run out of
        turn gets (an operator's, a test's), shaped as the schedule's own."""
        for logical_id, event, schedule in self.schedules:
            if logical_id == function:
                return Firing(
                    at, function, event.name, schedule.expression, event.scheduler, event.timezone, event.input
                )
        raise KeyError(f"{function} has no enabled schedule in the template")

    def firings_between(self, start: dt.datetime, end: dt.datetime) -> list[Firing]:
        """Every firing in [start, end), in time order."""
        found = []
        for function, event, schedule in self.schedules:
            if isinstance(schedule, cron.Rate):
                instants = schedule.firings(start, end, origin=self.deployed_at)
            else:
                instants = schedule.firings(start, end, timezone=event.timezone)
            found += [
                Firing(at, function, event.name, schedule.expression, event.scheduler, event.timezone, event.input)
                for at in instants
            ]
        return sorted(found, key=lambda f: (f.at, f.function))

    def firings_on(self, day: dt.date, timezone: str = cron.UTC) -> list[Firing]:
        """Every firing from midnight to midnight of ``day`` on ``timezone``'s wall clock (23 or 25 hours on
        the days its clocks change)."""
        zone = ZoneInfo(timezone)
        start = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone).astimezone(dt.UTC)
        return self.firings_between(start, end)

    def firings(self, start: dt.date, end: dt.date, timezone: str = cron.UTC) -> Iterator[Firing]:
        day = start
        while day <= end:
            yield from self.firings_on(day, timezone)
            day += dt.timedelta(days=1)
