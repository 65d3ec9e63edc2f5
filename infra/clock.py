"""The schedule clock: the template's schedules fired on a simulated calendar.

Reads every ``Schedule`` (EventBridge rule, UTC) and ``ScheduleV2`` (EventBridge Scheduler, in its
``ScheduleExpressionTimezone``) event from template.yaml (no expression is repeated in code), reads each
expression with ``infra.cron`` (the grammar the template linter checks by, so the clock fires every
schedule the linter passes) and yields each firing as the scheduled event EventBridge would deliver (the
shape of ``sam local generate-event cloudwatch scheduled-event``). Disabled schedules never fire.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from infra import cron
from infra import template as tpl


@dataclass(frozen=True)
class Firing:
    at: dt.datetime
    function: str  # logical id
    event_name: str
    expression: str

    @property
    def rule_logical_id(self) -> str:
        return f"{self.function}{self.event_name}"  # how SAM names the EventBridge rule of a Schedule event

    def event(
        self, account: str = "123456789012", region: str = "us-east-1", rule_arn: str | None = None
    ) -> dict[str, Any]:
        """The scheduled event EventBridge delivers for this firing."""
        return {
            "version": "0",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.rule_logical_id}@{self.at.isoformat()}")),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [rule_arn or f"arn:aws:events:{region}:{account}:rule/{self.rule_logical_id}"],
            "detail": {},
        }


class ScheduleClock:
    """Every enabled schedule of the template, asked day by day (UTC days).

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

    def firings_between(self, start: dt.datetime, end: dt.datetime) -> list[Firing]:
        """Every firing in [start, end), in time order."""
        found = []
        for function, event, schedule in self.schedules:
            if isinstance(schedule, cron.Rate):
                instants = schedule.firings(start, end, origin=self.deployed_at)
            else:
                instants = schedule.firings(start, end, timezone=event.timezone)
            found += [Firing(at, function, event.name, schedule.expression) for at in instants]
        return sorted(found, key=lambda f: (f.at, f.function))

    def firings_on(self, day: dt.date) -> list[Firing]:
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return self.firings_between(start, start + dt.timedelta(days=1))

    def firings(self, start: dt.date, end: dt.date) -> Iterator[Firing]:
        day = start
        while day <= end:
            yield from self.firings_on(day)
            day += dt.timedelta(days=1)
