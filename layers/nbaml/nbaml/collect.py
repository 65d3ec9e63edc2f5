"""The collect job: the games of the last days, as the feed reports them at the run's scheduled time, into every
place that needs them, and each day's completeness into the league calendar.

The window is the ``collect_lookback_days`` days before the run's league date and that date itself (today's
schedule, with its tip-offs). The feed is asked as of the run's scheduled time: a game not ended by then is
pending (scheduled or in progress), and its day is not complete until a later run sees it final.

Order matters, so a failure leaves nothing half-written and a rerun completes the work:
1. fetch the raw payloads (a feed failure raises here, after the feed's retries, before any write);
2. archive them to S3 raw/ before parsing them (a parser bug never loses a day);
3. parse, counting every defect; upsert clean games into Games (idempotent; a final game never goes back);
4. merge final games into the training snapshot, then refresh the team state;
5. record each day of the window in the league calendar (final, postponed, cancelled, pending game ids),
   after the state it vouches for;
6. join outcomes onto the predictions of the games whose result is new or changed (ground truth for
   drift_check); a late correction of a score re-joins its predictions.
Every step is idempotent, so the same day collected twice, or a replayed event, changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.config import CollectSettings
from nbaml.games.calendar import LeagueCalendar
from nbaml.games.feeds import open_feed
from nbaml.games.feeds.base import GameFeed, day_range
from nbaml.games.history import GameHistory
from nbaml.games.teams import league_date
from nbaml.layout import collect_batch, raw_key
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
from nbaml.storage.predictions import PredictionLog

logger = Logger(child=True)


@dataclass
class CollectReport:
    run_date: dt.date
    window: tuple[dt.date, dt.date]
    feed: str
    at: dt.datetime | None = None
    payloads: int = 0
    games: int = 0
    final_games: int = 0
    upserts: dict[str, int] = field(default_factory=dict)
    training_added: int = 0
    training_changed: int = 0
    state: str = "unchanged"
    predictions_resolved: int = 0
    defects: dict[str, int] = field(default_factory=dict)
    # per day of the window: how many games were final, postponed or cancelled, and which are still pending
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete_through: dt.date | None = None

    @property
    def pending_before_today(self) -> list[str]:
        """Games of the days before the run's date still pending: results the run expected and did not get."""
        return sorted(
            g for day, record in self.days.items() if day < self.run_date.isoformat() for g in record["pending"]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_date": self.run_date.isoformat(),
            "at": self.at.isoformat() if self.at else None,
            "window": [self.window[0].isoformat(), self.window[1].isoformat()],
            "feed": self.feed,
            "payloads": self.payloads,
            "games": self.games,
            "final_games": self.final_games,
            "upserts": self.upserts,
            "training_added": self.training_added,
            "training_changed": self.training_changed,
            "state": self.state,
            "predictions_resolved": self.predictions_resolved,
            "defects": self.defects,
            "days": self.days,
            "complete_through": self.complete_through.isoformat() if self.complete_through else None,
            "pending_before_today": self.pending_before_today,
        }


def collect_recent_games(
    settings: CollectSettings, *, at: dt.datetime, metrics: Metrics | None = None, feed: GameFeed | None = None
) -> CollectReport:
    """Collect the window ending on the league date of ``at`` (the run's scheduled time), as of ``at``."""
    feed = feed or open_feed(settings)
    run_date = league_date(at)
    window = (run_date - dt.timedelta(days=settings.collect_lookback_days), run_date)
    report = CollectReport(run_date=run_date, window=window, feed=feed.name, at=at)

    payloads = feed.fetch_raw(*window, as_of=at)
    store = ArtifactStore(settings.nbaml_bucket)
    for payload in payloads:
        store.put_bytes(raw_key(collect_batch(run_date), payload.key), payload.body, payload.content_type)
    report.payloads = len(payloads)

    batch = feed.parse(payloads)
    report.defects = batch.defects.as_dict()
    if batch.defects.total:
        logger.warning("feed defects skipped", extra={"defects": report.defects["counts"], "feed": feed.name})
    games = batch.games  # the calendar records the window's days; a game the feed dated outside is kept all the same
    report.games = len(games)
    final = [g for g in games if g.is_final]
    report.final_games = len(final)
    report.upserts = GameStore(settings.games_table).upsert(games, collected_at=at).as_dict()

    history = GameHistory(store)
    merged = history.merge(final)
    report.training_added, report.training_changed = len(merged.added), len(merged.changed)
    _, report.state, digest = history.refresh_state(merged)
    calendar = (history.load_calendar() or LeagueCalendar()).record(window, games, at)
    calendar = history.save_calendar(calendar, digest)
    report.complete_through = calendar.complete_through
    report.days = {day.isoformat(): _day_summary(calendar, day) for day in day_range(*window) if day in calendar.days}

    # Only results that are new or changed need joining: the rest were joined on an earlier day.
    report.predictions_resolved = PredictionLog(settings.predictions_table).resolve(merged.touched)

    if metrics is not None:
        metrics.add_metric(name="GamesCollected", unit=MetricUnit.Count, value=report.final_games)
        metrics.add_metric(name="PredictionsResolved", unit=MetricUnit.Count, value=report.predictions_resolved)
        metrics.add_metric(name="ResultsPending", unit=MetricUnit.Count, value=len(report.pending_before_today))
        for kind, count in batch.defects.counts.items():
            metrics.add_metric(name=f"FeedDefects_{kind.value}", unit=MetricUnit.Count, value=count)
    if report.pending_before_today:
        logger.warning(
            "results still pending after their day",
            extra={"pending": report.pending_before_today, "complete_through": str(report.complete_through)},
        )
    logger.info("collected", extra=report.as_dict())
    return report


def _day_summary(calendar: LeagueCalendar, day: dt.date) -> dict[str, Any]:
    record = calendar.days[day]
    return {
        "final": len(record.final),
        "postponed": len(record.postponed),
        "cancelled": len(record.cancelled),
        "pending": list(record.pending),
    }
