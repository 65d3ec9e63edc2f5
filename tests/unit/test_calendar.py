"""The league calendar: which days are complete, what a slate would miss, and what collect records of a night."""

from __future__ import annotations

import datetime as dt

from nbaml.collect import collect_recent_games
from nbaml.config import CollectSettings, load_settings
from nbaml.games.calendar import KEEP_DAYS, Completeness, LeagueCalendar, LeagueDay, MissingDay
from nbaml.games.history import GameHistory
from nbaml.games.records import Game, GameStatus
from nbaml.games.teams import league_time
from nbaml.storage.artifacts import ArtifactStore

DAY = dt.date(2024, 1, 5)
ONE = dt.timedelta(days=1)


def game(home: str, away: str, status: GameStatus, day: dt.date = DAY, hour: int = 19) -> Game:
    scores = {"home_score": 100, "away_score": 90} if status is GameStatus.FINAL else {}
    tip_off = league_time(day, dt.time(hour))
    return Game.create(game_date=day, home=home, away=away, status=status, source="t", tip_off=tip_off, **scores)


def test_given_a_day_then_it_is_complete_only_when_no_game_is_scheduled_or_in_progress() -> None:
    done = LeagueDay.of([game("BOS", "LAL", GameStatus.FINAL), game("MIA", "NYK", GameStatus.POSTPONED)])
    playing = LeagueDay.of([game("BOS", "LAL", GameStatus.FINAL), game("GSW", "DEN", GameStatus.IN_PROGRESS)])
    assert done.complete and not playing.complete
    assert playing.pending == ("20240105-DEN-GSW",) and len(playing.scheduled) == 2
    assert LeagueDay.of([]).complete  # a day without games, once looked at


def test_given_a_backfill_then_collects_then_the_watermark_moves_over_complete_days_only() -> None:
    # Given a backfill through the 3rd
    calendar = LeagueCalendar.backfilled(DAY - 2 * ONE)
    assert calendar.missing_before(DAY - ONE) == [] and calendar.complete(DAY - 2 * ONE)
    # When a run at 22:00 on the 5th sees the 4th done and the 5th still being played
    night = [game("BOS", "LAL", GameStatus.FINAL, DAY - ONE), game("BOS", "LAL", GameStatus.FINAL)]
    night.append(game("GSW", "DEN", GameStatus.IN_PROGRESS, hour=21))
    calendar = calendar.record((DAY - ONE, DAY), night, league_time(DAY, dt.time(22)))
    # Then the watermark stops at the 4th; a slate of the 6th would miss the game in progress
    assert calendar.complete_through == DAY - ONE
    assert calendar.missing_before(DAY + ONE) == [MissingDay(DAY, True, ("20240105-DEN-GSW",))]
    assert calendar.tip_off("20240105-DEN-GSW") == league_time(DAY, dt.time(21))
    assert calendar.tip_off("20240105-LAL-BOS") is None  # decided: no longer to come
    # and days never collected are named as such
    assert calendar.missing_before(DAY + 3 * ONE)[1:] == [
        MissingDay(DAY + ONE, False),
        MissingDay(DAY + 2 * ONE, False),
    ]
    # When the next morning's run sees it final, the watermark moves on and the tip-off is dropped
    final = [game("GSW", "DEN", GameStatus.FINAL, hour=21)]
    calendar = calendar.record((DAY, DAY + ONE), [*night[1:2], *final], league_time(DAY + ONE, dt.time(3)))
    assert calendar.complete_through == DAY + ONE and calendar.missing_before(DAY + 2 * ONE) == []
    assert calendar.tip_offs == {}


def test_given_no_backfill_then_nothing_is_vouched_for() -> None:
    calendar = LeagueCalendar().record(
        (DAY, DAY), [game("BOS", "LAL", GameStatus.FINAL)], league_time(DAY, dt.time(23))
    )
    assert calendar.complete_through is None
    assert calendar.missing_before(DAY + ONE) == [MissingDay(DAY, collected=False)]


def test_given_an_old_incomplete_day_then_it_is_kept_and_old_complete_ones_dropped() -> None:
    start = DAY - 40 * ONE
    calendar = LeagueCalendar.backfilled(start - ONE)
    stuck = game("GSW", "DEN", GameStatus.SCHEDULED, start)
    calendar = calendar.record((start, start), [stuck], league_time(start + ONE, dt.time(3)))
    for offset in range(1, 41):
        day = start + offset * ONE
        calendar = calendar.record((day, day), [], league_time(day, dt.time(3)))
    assert calendar.complete_through == start - ONE  # the pending game holds it
    assert start in calendar.days and "20231126-DEN-GSW" in calendar.tip_offs
    assert len(calendar.days) <= KEEP_DAYS + 2 or all(d > calendar.complete_through for d in calendar.days)
    assert calendar.skipped([start, start + ONE]) == {
        start.isoformat(): "1 game(s) not final: 20231126-DEN-GSW",
        (start + ONE).isoformat(): f"complete, but after {start} which is not",
    }


def test_given_a_job_reading_days_then_it_keeps_the_complete_ones_and_names_each_one_it_skipped() -> None:
    # Given: the 4th complete (backfilled), the 5th with a game still being played, the 6th never collected
    playing = game("GSW", "DEN", GameStatus.IN_PROGRESS)
    calendar = LeagueCalendar.backfilled(DAY - ONE).record((DAY, DAY), [playing], league_time(DAY, dt.time(22)))
    complete = Completeness(calendar)
    # When a job filters its items by day
    kept = complete.only([DAY - ONE, DAY, DAY + ONE, DAY - ONE], lambda d: d)
    # Then: the complete day's items only, and each skipped day with why
    assert kept == [DAY - ONE, DAY - ONE]
    assert complete.record() == {
        "calendar": True,
        "complete_through": (DAY - ONE).isoformat(),
        "skipped_days": {
            DAY.isoformat(): f"1 game(s) not final: {playing.game_id}",
            (DAY + ONE).isoformat(): "not collected",
        },
    }
    # Without a calendar (a stack from before it): every day counts, and the record says there was none
    nothing = Completeness(None)
    assert nothing.only([DAY], lambda d: d) == [DAY]
    assert nothing.record() == {"calendar": False, "complete_through": None, "skipped_days": {}}


def test_given_a_calendar_then_it_round_trips_through_json() -> None:
    calendar = LeagueCalendar.backfilled(DAY - ONE).record(
        (DAY, DAY), [game("GSW", "DEN", GameStatus.SCHEDULED, hour=22)], league_time(DAY, dt.time(3))
    )
    calendar = calendar.with_state("abc")
    assert LeagueCalendar.from_dict(calendar.to_dict()) == calendar


def test_given_collect_at_3am_eastern_then_the_night_before_is_complete_and_today_is_on_the_schedule(
    stack, league
) -> None:
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    day = season[40].game_date
    history = GameHistory(ArtifactStore(stack.bucket))
    # Given a backfill that vouches for the days before the window
    from nbaml.backfill import load
    from nbaml.config import CommonSettings
    from nbaml.games.feeds.base import FeedBatch

    before = [g for g in season if g.game_date < day - 7 * ONE]
    load(load_settings(CommonSettings), FeedBatch(games=before), source="generator", complete_through=day - 8 * ONE)
    # When collect runs at 03:00 Eastern, after the night's last game
    report = collect_recent_games(settings, at=league_time(day, dt.time(3)), feed=league)
    calendar = history.load_calendar()
    # Then every day before today is complete, today's games are pending with their tip-offs
    today = [g for g in season if g.game_date == day]
    assert report.complete_through == day - ONE == calendar.complete_through
    assert report.pending_before_today == []
    assert sorted(report.days[day.isoformat()]["pending"]) == sorted(g.game_id for g in today)
    assert {g.game_id: g.tip_off for g in today} == {gid: calendar.tip_off(gid) for gid in calendar.days[day].pending}
    # and the calendar names the state written with it
    assert calendar.state_sha256 == history.state_digest()
    state, paired = history.league()
    assert paired == calendar and state.as_of < day


def test_given_collect_too_early_then_the_nights_late_games_are_pending_and_the_day_incomplete(stack, league) -> None:
    settings = load_settings(CollectSettings)
    season = league.games(2019)
    day = season[40].game_date
    # When collect runs at 03:00 UTC (22:00 or 23:00 Eastern the evening before), as the template once had it
    report = collect_recent_games(settings, at=dt.datetime.combine(day, dt.time(3), tzinfo=dt.UTC), feed=league)
    evening = day - ONE
    late = sorted(
        g.game_id
        for g in season
        if g.game_date == evening
        and g.tip_off + dt.timedelta(hours=2, minutes=45) > dt.datetime.combine(day, dt.time(3), tzinfo=dt.UTC)
    )
    # Then the run belongs to the evening before, and the games of that evening not ended yet are pending
    assert report.run_date == evening and late
    assert sorted(report.days[evening.isoformat()]["pending"]) == late
