"""The one schedule grammar (infra.cron): AWS's documented examples, time zones on the 2023 daylight-saving
dates, and proof that the schedule clock fires every template the linter passes.

2023 in America/New_York: clocks went from 02:00 EST to 03:00 EDT on Sunday 12 March and from 02:00 EDT
back to 01:00 EST on Sunday 5 November.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra import cron
from infra import template as tpl
from infra.clock import ScheduleClock

NEW_YORK = "America/New_York"
SPRING_FORWARD = dt.date(2023, 3, 12)
FALL_BACK = dt.date(2023, 11, 5)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def year_2023(expression: str, timezone: str = cron.UTC) -> list[dt.datetime]:
    schedule = cron.parse(expression, scheduler=True)
    assert isinstance(schedule, cron.Cron)
    return schedule.firings(utc(2023, 1, 1), utc(2024, 1, 1), timezone)


def on_days(firings: list[dt.datetime]) -> dict[dt.date, list[dt.time]]:
    days: dict[dt.date, list[dt.time]] = {}
    for at in firings:
        days.setdefault(at.date(), []).append(at.time())
    return days


# ---------------------------------------------------------------- the examples of AWS's cron reference
def test_given_the_documented_daily_examples_when_fired_over_2023_then_they_run_every_day_at_their_time() -> None:
    # cron(0 10 * * ? *): 10:00 UTC every day; cron(15 12 * * ? *): 12:15 UTC every day
    for expression, time in (("cron(0 10 * * ? *)", dt.time(10, 0)), ("cron(15 12 * * ? *)", dt.time(12, 15))):
        days = on_days(year_2023(expression))
        assert len(days) == 365 and set(map(tuple, days.values())) == {(time,)}


def test_given_the_documented_weekday_examples_when_fired_then_they_run_monday_to_friday_only() -> None:
    # cron(0 18 ? * MON-FRI *): 18:00 Monday to Friday
    days = on_days(year_2023("cron(0 18 ? * MON-FRI *)"))
    assert {d.isoweekday() for d in days} == {1, 2, 3, 4, 5} and len(days) == 260
    assert set(map(tuple, days.values())) == {(dt.time(18, 0),)}
    # cron(0/10 * ? * MON-FRI *): every 10 minutes Monday to Friday
    days = on_days(year_2023("cron(0/10 * ? * MON-FRI *)"))
    assert {d.isoweekday() for d in days} == {1, 2, 3, 4, 5} and {len(t) for t in days.values()} == {144}
    # cron(0/5 8-17 ? * MON-FRI *): every 5 minutes Monday to Friday from 08:00 to 17:55
    days = on_days(year_2023("cron(0/5 8-17 ? * MON-FRI *)"))
    assert {len(t) for t in days.values()} == {120}
    assert {(t[0], t[-1]) for t in days.values()} == {(dt.time(8, 0), dt.time(17, 55))}


def test_given_the_documented_monthly_examples_when_fired_then_they_pick_the_day_of_each_month() -> None:
    # cron(0 8 1 * ? *): 08:00 on the first day of each month
    assert year_2023("cron(0 8 1 * ? *)") == [utc(2023, m, 1, 8) for m in range(1, 13)]
    # cron(0 9 ? * 2#1 *): 09:00 on the first Monday of each month
    first_mondays = [2, 6, 6, 3, 1, 5, 3, 7, 4, 2, 6, 4]
    assert year_2023("cron(0 9 ? * 2#1 *)") == [utc(2023, m, d, 9) for m, d in enumerate(first_mondays, 1)]


def test_given_the_documented_wildcards_when_fired_then_each_means_what_the_reference_says() -> None:
    # , in the month field: JAN,FEB,MAR is January, February and March
    assert [t.month for t in year_2023("cron(0 0 1 JAN,FEB,MAR ? *)")] == [1, 2, 3]
    # - in the day field: 1-15 is the 1st to the 15th
    assert {t.day for t in year_2023("cron(0 0 1-15 * ? *)")} == set(range(1, 16))
    # / in the minutes field: 1/10 is every tenth minute from the first (1, 11, 21, ...)
    assert {t.minute for t in year_2023("cron(1/10 0 1 1 ? *)")} == {1, 11, 21, 31, 41, 51}
    # W: 3W is the weekday nearest the 3rd (3 June 2023 is a Saturday, 3 September a Sunday)
    third = {t.month: t.day for t in year_2023("cron(0 0 3W * ? *)")}
    assert (third[6], third[9], third[10]) == (2, 4, 3)
    # and W never leaves the month: 1 July 2023 is a Saturday, 31 December a Sunday
    assert [t.day for t in year_2023("cron(0 0 1W JUL ? *)")] == [3]
    assert [t.day for t in year_2023("cron(0 0 31W DEC ? *)")] == [29]
    assert year_2023("cron(0 0 31W APR ? *)") == [], "April has no 31st"
    # #: 3#2 is the second Tuesday of the month
    assert year_2023("cron(0 0 ? MAR 3#2 *)") == [utc(2023, 3, 14)]
    assert year_2023("cron(0 0 ? JAN 2#5 *)") == [utc(2023, 1, 30)] and year_2023("cron(0 0 ? FEB 2#5 *)") == []
    # L in day-of-month: the last day of the month (2024 is a leap year)
    assert [t.day for t in year_2023("cron(0 0 L FEB ? *)")] == [28]
    schedule = cron.parse("cron(0 0 L FEB ? *)")
    assert isinstance(schedule, cron.Cron) and schedule.days_in(2024, 2) == [29]
    assert [t.day for t in year_2023("cron(0 0 LW SEP,DEC ? *)")] == [29, 29]
    # L in day-of-week: the last day of the week (Saturday); nL the last such weekday of the month
    assert {t.isoweekday() for t in year_2023("cron(0 0 ? * L *)")} == {6}
    assert [(t.month, t.day) for t in year_2023("cron(0 0 ? MAR,APR 6L *)")] == [(3, 31), (4, 28)]
    assert year_2023("cron(0 0 ? MAR,APR FRIL *)") == year_2023("cron(0 0 ? MAR,APR 6L *)")
    # names are case-insensitive; the year field limits the years
    assert year_2023("cron(0 18 ? * mon-fri *)") == year_2023("cron(0 18 ? * 2-6 *)")
    assert year_2023("cron(0 0 1 1 ? 2024-2025)") == []
    once = cron.parse("cron(0 0 1 1 ? 2024-2025)")
    assert once.next_after(utc(2024, 6, 1)) == utc(2025, 1, 1) and once.next_after(utc(2025, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("cron(0 0 ? * 3#1,6#3 *)", "'#' takes one expression"),  # the reference's own invalid example
        ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 10 5 * MON *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 10 * * ? *)", "minutes '60' is not 0-59"),
        ("cron(0 24 * * ? *)", "hours '24' is not 0-23"),
        ("cron(0 0 32 * ? *)", "day-of-month '32' is not 1-31"),
        ("cron(0 0 0 * ? *)", "day-of-month '0' is not 1-31"),
        ("cron(0 0 1 13 ? *)", "month '13' is not 1-12 or JAN-DEC"),
        ("cron(0 0 1 JANUARY ? *)", "month 'JANUARY'"),
        ("cron(0 0 ? * 0 *)", "day-of-week '0' is not 1-7 or SUN-SAT"),
        ("cron(0 0 ? * 8 *)", "day-of-week '8'"),
        ("cron(0 0 1 * ? 1969)", "year '1969' is not 1970-2199"),
        ("cron(0 0 1 * ? 2200)", "year '2200'"),
        ("cron(0 10-5 * * ? *)", "runs backwards"),
        ("cron(0/0 10 * * ? *)", "positive whole step"),
        ("cron(? 10 * * ? *)", "'?' is only for day-of-month or day-of-week"),
        ("cron(0 0 ? * MON/2 *)", "day-of-week takes no increments"),
        ("cron(0 0 ? * 2#6 *)", "must be 1-5"),
        ("cron(0 0 L-2 * ? *)", "stand alone"),
        ("cron(0 0 1,L * ? *)", "stand alone"),
        ("cron(0 0 ? * 2,6L *)", "stand alone"),
        ("cron(0 0 * * ?)", "has 5 fields"),
        ("cron(0 0 1 * ? * *)", "has 7 fields"),
        ("rate(1 hours)", "singular for 1 and plural otherwise"),
        ("rate(5 hour)", "singular for 1 and plural otherwise"),
        ("rate(0 minutes)", "positive"),
        ("rate(2 weeks)", "not minute(s), hour(s) or day(s)"),
        ("rate(five minutes)", "is not rate("),
        ("at(2023-03-12T03:00:00)", "only for EventBridge Scheduler"),
        ("every day", "is not cron(...) or rate(...)"),
        (None, "literal string"),
    ],
)
def test_given_an_expression_eventbridge_refuses_when_linted_then_the_problem_is_named(
    expression: Any, says: str
) -> None:
    problems = cron.problems(expression)
    assert any(says in p for p in problems), problems
    with pytest.raises(cron.ScheduleExpressionError):
        cron.parse(expression)


def test_given_the_documented_rate_examples_when_parsed_then_each_is_its_interval() -> None:
    every = {e: cron.parse(e) for e in ("rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(1 day)")}
    assert [s.every for s in every.values() if isinstance(s, cron.Rate)] == [
        dt.timedelta(minutes=1),
        dt.timedelta(minutes=5),
        dt.timedelta(hours=1),
        dt.timedelta(days=1),
    ]
    # a rate schedule fires when created and every interval after
    five = every["rate(5 minutes)"]
    assert isinstance(five, cron.Rate)
    created = utc(2023, 1, 1, 12, 2)
    assert five.firings(utc(2023, 1, 1), utc(2023, 1, 1, 12, 13), origin=created) == [
        created,
        utc(2023, 1, 1, 12, 7),
        utc(2023, 1, 1, 12, 12),
    ]
    assert five.next_after(utc(2023, 1, 1, 12, 7), origin=created) == utc(2023, 1, 1, 12, 12)


def test_given_scheduler_at_expressions_when_parsed_then_they_fire_once_and_bad_dates_are_refused() -> None:
    at = cron.parse("at(2023-06-01T09:30:00)", scheduler=True)
    assert isinstance(at, cron.At) and at.instant() == utc(2023, 6, 1, 9, 30)
    assert at.instant(NEW_YORK) == utc(2023, 6, 1, 13, 30)
    assert at.next_after(utc(2023, 6, 1, 13, 30), NEW_YORK) is None
    assert "no such time" in cron.problems("at(2023-02-30T10:00:00)", scheduler=True)[0]
    assert cron.problems("at(2023-06-01 09:30)", scheduler=True) == ["is not at(yyyy-mm-ddThh:mm:ss)"]


# ---------------------------------------------------------------- time zones on the 2023 daylight-saving dates
def test_given_3am_in_new_york_when_the_clocks_change_then_it_stays_3am_local() -> None:
    # Given the seed's 3 AM read as 3 AM Eastern
    fires = on_days(year_2023("cron(0 3 * * ? *)", NEW_YORK))
    # Then it is 08:00 UTC in winter time and 07:00 UTC in summer time, switching on the two dates
    assert fires[SPRING_FORWARD - dt.timedelta(days=1)] == [dt.time(8)]
    assert fires[SPRING_FORWARD] == [dt.time(7)]
    assert fires[FALL_BACK - dt.timedelta(days=1)] == [dt.time(7)]
    assert fires[FALL_BACK] == [dt.time(8)]
    assert len(fires) == 365 and all(len(times) == 1 for times in fires.values())


@pytest.mark.parametrize(
    ("wall_time", "first_day", "expected"),
    [
        # 02:30 does not exist on 12 March: 11 March fires at 07:30 UTC (EST), 12 March not at all, 13 March
        # at 06:30 UTC (EDT)
        ("cron(30 2 * * ? *)", dt.date(2023, 3, 11), [utc(2023, 3, 11, 7, 30), utc(2023, 3, 13, 6, 30)]),
        # 01:30 exists twice on 5 November (05:30 UTC in EDT, 06:30 UTC in EST): it fires once, at the first
        (
            "cron(30 1 * * ? *)",
            dt.date(2023, 11, 4),
            [utc(2023, 11, 4, 5, 30), utc(2023, 11, 5, 5, 30), utc(2023, 11, 6, 6, 30)],
        ),
    ],
    ids=["skipped hour in spring", "repeated hour in autumn"],
)
def test_given_a_wall_time_the_clock_change_skips_or_repeats_then_it_fires_as_scheduler_documents(
    wall_time: str, first_day: dt.date, expected: list[dt.datetime]
) -> None:
    # Given a daily schedule in New York at a time the change skips or repeats
    schedule = cron.parse(wall_time, scheduler=True)
    assert isinstance(schedule, cron.Cron)
    # When fired over the days around it, or asked its next firing after each
    start = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.UTC)
    firings = schedule.firings(start, start + dt.timedelta(days=3), NEW_YORK)
    # Then a skipped time does not fire, and a repeated one fires once, at its first occurrence
    assert firings == expected
    assert [schedule.next_after(at, NEW_YORK) for at in expected[:-1]] == expected[1:]


def test_given_a_half_hourly_schedule_when_the_clocks_change_then_the_days_have_46_and_48_firings() -> None:
    # Given every half hour in New York; then 46 firings on the short day, 48 (not 50) on the long one
    half_hourly = cron.parse("cron(0/30 * * * ? *)", scheduler=True)
    assert isinstance(half_hourly, cron.Cron)
    local = [t.astimezone(ZoneInfo(NEW_YORK)) for t in half_hourly.firings(utc(2023, 1, 1), utc(2024, 1, 1), NEW_YORK)]
    for day, count in ((SPRING_FORWARD, 46), (FALL_BACK, 48), (dt.date(2023, 7, 1), 48)):
        on_day = [t for t in local if t.date() == day]
        assert len(on_day) == count and len({t.astimezone(dt.UTC) for t in on_day}) == count


def test_given_a_daily_rate_when_the_clocks_change_then_it_keeps_24_hours_apart() -> None:
    # Given rate(1 day) created at 03:00 Eastern the day before spring forward
    rate = cron.parse("rate(1 day)", scheduler=True)
    assert isinstance(rate, cron.Rate)
    firings = rate.firings(utc(2023, 3, 11), utc(2023, 3, 14), origin=utc(2023, 3, 11, 8))
    # Then it fires every 24 hours of elapsed time: 03:00, then 04:00, 04:00 on New York's clocks
    assert [b - a for a, b in itertools.pairwise(firings)] == [dt.timedelta(days=1)] * 2
    assert [t.astimezone(ZoneInfo(NEW_YORK)).hour for t in firings] == [3, 4, 4]


def test_given_at_in_a_time_zone_when_the_clocks_change_then_it_obeys_the_same_rules_as_cron() -> None:
    assert cron.parse("at(2023-03-12T02:30:00)", scheduler=True).instant(NEW_YORK) is None  # type: ignore[union-attr]
    assert cron.parse("at(2023-11-05T01:30:00)", scheduler=True).instant(NEW_YORK) == utc(2023, 11, 5, 5, 30)  # type: ignore[union-attr]


# ---------------------------------------------------------------- the linter and the clock cannot disagree
def template_with(event_type: str, expression: Any, timezone: Any = None, state: str | None = None) -> dict:
    key = "ScheduleExpression" if event_type == "ScheduleV2" else "Schedule"
    props: dict[str, Any] = {key: expression}
    if timezone is not None:
        props["ScheduleExpressionTimezone"] = timezone
    if state is not None:
        props["State"] = state
    event = {"Type": event_type, "Properties": props}
    function = {"Type": tpl.FUNCTION, "Properties": {"Events": {"Nightly": event}}}
    return {"Resources": {"CollectFunction": function}}


def test_given_a_scheduler_template_in_new_york_when_the_clock_runs_then_it_fires_at_3am_eastern() -> None:
    # Given the template's schedule as issue 17 will write it
    clock = ScheduleClock(template_with("ScheduleV2", "cron(0 3 * * ? *)", NEW_YORK))
    # When / Then: the clock fires at the instants EventBridge Scheduler would, across both changes
    assert [f.at for f in clock.firings_on(SPRING_FORWARD)] == [utc(2023, 3, 12, 7)]
    assert [f.at for f in clock.firings_on(FALL_BACK)] == [utc(2023, 11, 5, 8)]
    assert [f.at for f in clock.firings_on(dt.date(2023, 1, 10))] == [utc(2023, 1, 10, 8)]
    # and a disabled schedule is linted but never fires
    disabled = template_with("ScheduleV2", "cron(0 3 * * ? *)", NEW_YORK, state="DISABLED")
    assert tpl.schedule_problems(disabled) == [] and ScheduleClock(disabled).firings_on(FALL_BACK) == []
    # and a time zone AWS does not know is refused by both
    unknown = template_with("ScheduleV2", "cron(0 3 * * ? *)", "America/Gotham")
    assert "not an IANA time zone" in tpl.schedule_problems(unknown)[0]
    with pytest.raises(cron.ScheduleExpressionError, match="Gotham"):
        ScheduleClock(unknown)


def _field(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A field from its atoms: alone, in lists, ranges and increments, valid or not."""
    item = st.one_of(
        values,
        st.builds(lambda a, b: f"{a}-{b}", values, values),
        st.builds(lambda a, n: f"{a}/{n}", st.one_of(values, st.just("*")), st.sampled_from(["0", "1", "5", "x"])),
    )
    return st.one_of(st.just("*"), st.just("?"), st.lists(item, min_size=1, max_size=3).map(",".join))


NUMBERS = st.integers(min_value=-1, max_value=62).map(str)
DAY_ATOMS = st.one_of(NUMBERS, st.sampled_from(["L", "LW", "15W", "W", "32W", "L-2"]))
WEEK_ATOMS = st.one_of(
    st.sampled_from(["0", "1", "7", "8", "MON", "fri", "SUN", "JAN", "L", "6L", "FRIL", "2#1", "3#6", "MON#2"]),
)
CRONS = st.builds(
    lambda *fields: f"cron({' '.join(fields)})",
    _field(NUMBERS),
    _field(NUMBERS),
    _field(DAY_ATOMS),
    _field(st.one_of(NUMBERS, st.sampled_from(["JAN", "dec", "FOO"]))),
    _field(WEEK_ATOMS),
    _field(st.sampled_from(["1969", "1970", "2023", "2199", "2200"])),
)


def _valid_field(
    low: int, high: int, extra: list[str] | None = None, increments: bool = True
) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    step = st.tuples(st.one_of(value.map(str), st.just("*")), st.integers(1, 9)).map(lambda a: f"{a[0]}/{a[1]}")
    item = st.one_of(
        value.map(str),
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        *([step] if increments else []),
    )
    listed = st.lists(item, min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), listed, st.sampled_from(extra or ["*"]))


VALID_CRONS = st.builds(
    lambda minute, hour, days, month, year: f"cron({minute} {hour} {days} {month} {year})",
    _valid_field(0, 59),
    _valid_field(0, 23),
    st.one_of(
        _valid_field(1, 31, ["L", "LW", "15W", "1W", "31W"]).map(lambda d: f"{d} * ?"),
        _valid_field(1, 7, ["L", "6L", "FRIL", "2#1", "MON#5", "MON-FRI"], increments=False).map(lambda d: f"? * {d}"),
    ),
    st.just(""),
    st.sampled_from(["*", "2023", "2023-2025", "2024/2"]),
).map(lambda e: e.replace("  ", " "))


EXPRESSIONS = st.one_of(
    CRONS,
    VALID_CRONS,
    st.builds(
        lambda n, u: f"rate({n} {u})",
        st.sampled_from(["0", "1", "2", "-1"]),
        st.sampled_from(["minute", "minutes", "hour", "hours", "day", "days", "week"]),
    ),
    st.sampled_from(["at(2023-11-05T01:30:00)", "at(2023-02-30T00:00:00)", "at(2023-03-12T02:30:00)", "daily"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(["Schedule", "ScheduleV2"]),
    expression=EXPRESSIONS,
    timezone=st.sampled_from([None, "UTC", NEW_YORK, "Europe/Paris", "Mars/Olympus"]),
)
def test_given_any_schedule_when_linted_and_clocked_then_the_clock_runs_exactly_what_the_linter_passes(
    event_type: str, expression: str, timezone: str | None
) -> None:
    # Given a template with one schedule, valid or not
    template = template_with(event_type, expression, timezone if event_type == "ScheduleV2" else None)
    # When the linter judges it and the clock loads it
    passed = tpl.schedule_problems(template) == []
    try:
        clock = ScheduleClock(template, deployed_at=utc(2023, 3, 1))
    except cron.ScheduleExpressionError:
        clock = None
    # Then the clock runs exactly what the linter passes, and fires it without error across a DST change
    assert passed == (clock is not None)
    if clock is not None:
        start, end = utc(2023, 3, 11), utc(2023, 3, 14)
        firings = clock.firings_between(start, end)
        assert all(start <= f.at < end for f in firings)
        assert [f.at for f in firings] == sorted(f.at for f in firings)


@settings(max_examples=200, deadline=None)
@given(
    expression=VALID_CRONS,
    after=st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2024, 12, 31)),
    timezone=st.sampled_from(["UTC", NEW_YORK]),
)
def test_given_a_valid_cron_when_asked_its_next_firing_then_it_is_the_first_of_its_firings(
    expression: str, after: dt.datetime, timezone: str
) -> None:
    # Given a valid cron expression and any moment
    schedule = cron.parse(expression)
    assert isinstance(schedule, cron.Cron)
    after = after.replace(tzinfo=dt.UTC)
    # When asked its next firing
    found = schedule.next_after(after, timezone)
    # Then it is the first firing after that moment, and fires on a day and at a time the fields name
    following = schedule.firings(after + dt.timedelta(microseconds=1), after + dt.timedelta(days=3), timezone)
    if following:
        assert found == following[0]
    else:
        assert found is None or found >= after + dt.timedelta(days=3)
    if found is not None:
        wall = found.astimezone(ZoneInfo(timezone))
        assert wall.minute in schedule.minutes and wall.hour in schedule.hours
        assert wall.day in schedule.days_in(wall.year, wall.month)


# ---------------------------------------------------------------- template.yaml's own schedules, on the league's clock
LEAGUE_CLOCK_CASES = [
    # collect, 03:00 Eastern: the day before, the day of and the day after each change of 2023 and 2024
    ("CollectFunction", dt.date(2023, 3, 11), utc(2023, 3, 11, 8)),
    ("CollectFunction", SPRING_FORWARD, utc(2023, 3, 12, 7)),  # 03:00 EDT, the first minute after the gap
    ("CollectFunction", dt.date(2023, 3, 13), utc(2023, 3, 13, 7)),
    ("CollectFunction", dt.date(2023, 11, 4), utc(2023, 11, 4, 7)),
    ("CollectFunction", FALL_BACK, utc(2023, 11, 5, 8)),  # 03:00 EST, after 01:00-02:00 was lived twice
    ("CollectFunction", dt.date(2024, 3, 10), utc(2024, 3, 10, 7)),
    ("CollectFunction", dt.date(2024, 11, 3), utc(2024, 11, 3, 8)),
    # drift_check, Mondays 04:00 Eastern, either side of each change
    ("DriftCheckFunction", dt.date(2023, 3, 6), utc(2023, 3, 6, 9)),
    ("DriftCheckFunction", dt.date(2023, 3, 13), utc(2023, 3, 13, 8)),
    ("DriftCheckFunction", dt.date(2023, 10, 30), utc(2023, 10, 30, 8)),
    ("DriftCheckFunction", dt.date(2023, 11, 6), utc(2023, 11, 6, 9)),
    ("DriftCheckFunction", dt.date(2024, 3, 11), utc(2024, 3, 11, 8)),
    # retrain, the 1st at 05:00 Eastern
    ("RetrainFunction", dt.date(2023, 3, 1), utc(2023, 3, 1, 10)),
    ("RetrainFunction", dt.date(2023, 4, 1), utc(2023, 4, 1, 9)),
    ("RetrainFunction", dt.date(2023, 11, 1), utc(2023, 11, 1, 9)),  # still EDT: the change is on the 5th
    ("RetrainFunction", dt.date(2023, 12, 1), utc(2023, 12, 1, 10)),
    ("RetrainFunction", dt.date(2024, 4, 1), utc(2024, 4, 1, 9)),
]


@pytest.mark.parametrize(("function", "day", "expected"), LEAGUE_CLOCK_CASES, ids=lambda v: str(v))
def test_given_the_template_schedules_when_clocked_then_each_fires_at_the_seeds_hour_eastern_in_utc(
    function: str, day: dt.date, expected: dt.datetime
) -> None:
    from nbaml.events import scheduled_run_date, scheduled_time
    from nbaml.games.teams import LEAGUE_TIMEZONE

    # Given the schedule clock reading template.yaml (no expression or time zone repeated here)
    clock = ScheduleClock(tpl.load())
    # When it is asked for that league day's firings
    (firing,) = [f for f in clock.firings_on(day, LEAGUE_TIMEZONE) if f.function == function]
    event = firing.event()
    # Then it fires at the UTC instant Scheduler would, and the function reads that instant and its league date
    assert firing.at == expected
    assert scheduled_time(event) == expected and scheduled_run_date(event) == day


def test_given_the_template_then_every_schedule_runs_on_the_leagues_clock_with_retries_and_a_dead_letter_queue() -> (
    None
):
    from nbaml.games.teams import LEAGUE_TIMEZONE

    sam = tpl.load()
    events = tpl.schedules(sam)
    assert set(events) == {"CollectFunction", "DriftCheckFunction", "RetrainFunction"}
    for function, declared in events.items():
        for event in declared:
            props = tpl.function_properties(sam, function)["Events"][event.name]["Properties"]
            assert event.scheduler and event.timezone == LEAGUE_TIMEZONE, (function, event)
            assert props["RetryPolicy"]["MaximumRetryAttempts"] >= 1 and props["DeadLetterConfig"]["Arn"]
            # the function reads the instant it fired for from the event's time
            assert '"time": "<aws.scheduler.scheduled-time>"' in event.input
