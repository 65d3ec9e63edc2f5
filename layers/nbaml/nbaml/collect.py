"""The collect job: completed games of the last days from a feed into every place that needs them.

Order matters, so a failure leaves nothing half-written and a rerun completes the work:
1. fetch the raw payloads (a feed failure raises here, after the feed's retries, before any write);
2. archive them to S3 raw/ before parsing them (a parser bug never loses a day);
3. parse, counting every defect; upsert clean games into Games (idempotent);
4. merge final games into the training snapshot, then refresh the team state;
5. join outcomes onto the predictions of the games whose result is new or changed (ground truth for
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
from nbaml.games.feeds import open_feed
from nbaml.games.feeds.base import GameFeed
from nbaml.games.history import GameHistory
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
    payloads: int = 0
    games: int = 0
    final_games: int = 0
    upserts: dict[str, int] = field(default_factory=dict)
    training_added: int = 0
    training_changed: int = 0
    state: str = "unchanged"
    predictions_resolved: int = 0
    defects: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_date": self.run_date.isoformat(),
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
        }


def collect_recent_games(
    settings: CollectSettings, *, run_date: dt.date, metrics: Metrics | None = None, feed: GameFeed | None = None
) -> CollectReport:
    """Collect the completed games of the ``collect_lookback_days`` days before ``run_date``."""
    feed = feed or open_feed(settings)
    window = (run_date - dt.timedelta(days=settings.collect_lookback_days), run_date - dt.timedelta(days=1))
    report = CollectReport(run_date=run_date, window=window, feed=feed.name)

    payloads = feed.fetch_raw(*window)
    store = ArtifactStore(settings.nbaml_bucket)
    for payload in payloads:
        store.put_bytes(raw_key(collect_batch(run_date), payload.key), payload.body, payload.content_type)
    report.payloads = len(payloads)

    batch = feed.parse(payloads)
    report.defects = batch.defects.as_dict()
    if batch.defects.total:
        logger.warning("feed defects skipped", extra={"defects": report.defects["counts"], "feed": feed.name})
    report.games = len(batch.games)
    final = [g for g in batch.games if g.is_final]
    report.final_games = len(final)
    report.upserts = GameStore(settings.games_table).upsert(batch.games).as_dict()

    history = GameHistory(store)
    merged = history.merge(final)
    report.training_added, report.training_changed = len(merged.added), len(merged.changed)
    _, report.state = history.refresh_state(merged)

    # Only results that are new or changed need joining: the rest were joined on an earlier day.
    report.predictions_resolved = PredictionLog(settings.predictions_table).resolve(merged.touched)

    if metrics is not None:
        metrics.add_metric(name="GamesCollected", unit=MetricUnit.Count, value=report.final_games)
        metrics.add_metric(name="PredictionsResolved", unit=MetricUnit.Count, value=report.predictions_resolved)
        for kind, count in batch.defects.counts.items():
            metrics.add_metric(name=f"FeedDefects_{kind.value}", unit=MetricUnit.Count, value=count)
    logger.info("collected", extra=report.as_dict())
    return report
