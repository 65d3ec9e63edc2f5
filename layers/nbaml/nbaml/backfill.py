"""Loading history into a stack: a whole file (or synthetic seasons) at once, the bulk twin of collect.

Same order as collect (raw payload archived first, then parse, then every store), but written in bulk:
Games through batch writes, the training snapshot replaced, the team state rebuilt from scratch, and the
league calendar told that every day of the window is complete.
Idempotent: loading the same history twice leaves the same state.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nbaml.config import CommonSettings
from nbaml.features import build_features
from nbaml.games.calendar import LeagueCalendar
from nbaml.games.defects import DefectReport
from nbaml.games.feeds.base import FeedBatch, GameFeed, RawPayload
from nbaml.games.history import GameHistory
from nbaml.layout import backfill_batch, raw_key
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore


@dataclass
class BackfillReport:
    source: str
    payloads: int
    games: int
    final_games: int
    seasons: list[int]
    defects: DefectReport
    state_as_of: dt.date | None
    complete_through: dt.date | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "payloads": self.payloads,
            "games": self.games,
            "final_games": self.final_games,
            "seasons": self.seasons,
            "defects": self.defects.as_dict()["counts"],
            "state_as_of": self.state_as_of.isoformat() if self.state_as_of else None,
            "complete_through": self.complete_through.isoformat() if self.complete_through else None,
        }


def backfill(
    settings: CommonSettings,
    feed: GameFeed,
    start: dt.date,
    end: dt.date,
    *,
    payloads: list[RawPayload] | None = None,
) -> BackfillReport:
    """Archive, parse and load every game of ``feed`` between ``start`` and ``end`` (inclusive).

    ``payloads`` replaces the fetch when the caller already holds the source whole (a file: every row is
    archived and checked, including rows with no date, which belong to no window).
    """
    store = ArtifactStore(settings.nbaml_bucket)
    payloads = payloads if payloads is not None else feed.fetch_raw(start, end)
    batch_name = backfill_batch(dt.datetime.now(dt.UTC))
    for payload in payloads:
        store.put_bytes(raw_key(batch_name, payload.key), payload.body, payload.content_type)
    batch: FeedBatch = feed.parse(payloads)
    return load(settings, batch, source=feed.name, payloads=len(payloads), complete_through=end)


def load(
    settings: CommonSettings,
    batch: FeedBatch,
    *,
    source: str,
    payloads: int = 0,
    complete_through: dt.date | None = None,
) -> BackfillReport:
    """Write parsed games to Games, the training snapshot and the team state, and vouch in the league calendar
    that every day up to ``complete_through`` (the last game's date unless told) is complete: a backfill loads
    a source's every game of its window."""
    store = ArtifactStore(settings.nbaml_bucket)
    GameStore(settings.games_table).put_many(batch.games)
    history = GameHistory(store)
    history.merge(batch.games)
    state = build_features(history.games()).state
    digest = history.save_state(state)
    through = max([d for d in (complete_through, *(g.game_date for g in batch.games)) if d is not None], default=None)
    calendar = history.load_calendar()
    if through is not None:
        calendar = LeagueCalendar.backfilled(through, calendar)
    if calendar is not None:
        history.save_calendar(calendar, digest)
    final = [g for g in batch.games if g.is_final]
    return BackfillReport(
        source=source,
        payloads=payloads,
        games=len(batch.games),
        final_games=len(final),
        seasons=sorted({g.season for g in final}),
        defects=batch.defects,
        state_as_of=state.as_of if state else None,
        complete_through=calendar.complete_through if calendar else None,
    )
