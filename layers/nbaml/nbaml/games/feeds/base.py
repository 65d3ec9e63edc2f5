"""The interface every game feed implements, and the cross-row checks they all share.

Fetching and parsing are separate steps on purpose: the collect function archives the raw payloads to S3
before it parses them, so a parser bug or a feed that changes its format never loses the day's data.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nbaml.games.defects import DefectKind, DefectReport
from nbaml.games.records import Game, GameStatus, final_at, tip_off_of


@dataclass(frozen=True)
class RawPayload:
    """A feed's payload exactly as received, with the relative name it is archived under.

    ``key`` is relative (``api-basketball/2024-01-05.json``); the collect function prefixes it with the
    bucket's layout, so feeds know nothing about storage.
    """

    source: str
    key: str
    body: bytes
    content_type: str


@dataclass
class FeedBatch:
    """What a parse yields: clean, deduplicated games (sorted by date then id) and what was rejected."""

    games: list[Game] = field(default_factory=list)
    defects: DefectReport = field(default_factory=DefectReport)


@runtime_checkable
class GameFeed(Protocol):
    """A source of NBA games: the live API, the historical file, or the embedded synthetic league."""

    name: str

    def fetch_raw(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None) -> list[RawPayload]:
        """The payloads covering the inclusive date window, as received, for archiving before parsing.

        ``as_of`` is the moment asked about (collect passes its scheduled time): a game is final in the answer
        only once it has ended by then. The live API always answers as of now; the emulated feeds (the synthetic
        league, the history file) answer as of ``as_of`` (``as_known_at``), or as of the end of every game
        when it is None (history, backfills).
        """
        ...

    def parse(self, payloads: list[RawPayload]) -> FeedBatch:
        """Clean games from payloads; never raises on bad rows, each is a counted defect and is skipped."""
        ...

    def schedule(self, day: dt.date) -> list[Game]:
        """The games scheduled on ``day`` (status scheduled, no scores), asked about before tip-off."""
        ...


def day_range(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    """Every date of the inclusive window (none when ``end`` is before ``start``)."""
    for offset in range((end - start).days + 1):
        yield start + dt.timedelta(days=offset)


def _content(game: Game) -> tuple[object, ...]:
    """What makes two copies the same game: everything but the source's own row id."""
    return (
        game.game_id,
        game.game_date,
        game.season,
        game.stage,
        game.status,
        game.home,
        game.away,
        game.home_score,
        game.away_score,
    )


def describe(game: Game) -> str:
    """Where a game came from, for defect examples, when the feed knows nothing more precise."""
    return game.game_id if game.source_id is None else f"{game.game_id} ({game.source} id {game.source_id})"


def reconcile(candidates: Iterable[Game], defects: DefectReport, where: Callable[[Game], str] = describe) -> list[Game]:
    """Run the cross-row checks once over a feed's parsed rows and return the clean games.

    Every feed calls this after its row-level checks, so the rules are the same whatever the source:
    - duplicates with identical content keep one copy; each extra copy is a ``duplicate_identical``;
    - copies of one game id that disagree (score, status) drop every copy, each a ``duplicate_conflicting``,
      because nothing says which copy is right;
    - a team in more than one game on a date drops every game it is in that day (``team_twice_on_date``).
    The result is sorted by date then game id, so output does not depend on payload order. ``where`` names
    a game's row in defect examples (a feed passes its row numbers or payload keys).
    """
    by_id: dict[str, list[Game]] = defaultdict(list)
    for game in candidates:
        by_id[game.game_id].append(game)

    unique: list[Game] = []
    for game_id, copies in by_id.items():
        if len(copies) == 1:
            unique.append(copies[0])
            continue
        if len({_content(g) for g in copies}) == 1:
            unique.append(copies[0])
            for extra in copies[1:]:
                defects.add(DefectKind.DUPLICATE_IDENTICAL, where(extra), f"repeats {where(copies[0])}")
            continue
        results = sorted({f"{g.status}:{g.home_score}-{g.away_score}" for g in copies})
        for copy in copies:
            defects.add(
                DefectKind.DUPLICATE_CONFLICTING,
                where(copy),
                f"{len(copies)} copies of {game_id} disagree: {', '.join(results)}",
            )

    busy: dict[tuple[dt.date, str], list[Game]] = defaultdict(list)
    for game in unique:
        busy[(game.game_date, game.home)].append(game)
        busy[(game.game_date, game.away)].append(game)
    clashing = {id(g): team for (_, team), games in busy.items() if len(games) > 1 for g in games}
    clean: list[Game] = []
    for game in unique:
        team = clashing.get(id(game))
        if team is None:
            clean.append(game)
        else:
            defects.add(DefectKind.TEAM_TWICE_ON_DATE, where(game), f"{team} plays more than once on {game.game_date}")
    clean.sort(key=lambda g: (g.game_date, g.game_id))
    return clean


def batch_of(parsed: Iterable[tuple[Game | None, str]], defects: DefectReport) -> FeedBatch:
    """A feed's batch from its row parser's output: (game, place) per row, None for a row already counted
    as a defect. The cross-row checks run once over the lot, naming each game by its place."""
    candidates: list[Game] = []
    places: dict[int, str] = {}
    for game, where in parsed:
        if game is not None:
            candidates.append(game)
            places[id(game)] = where
    games = reconcile(candidates, defects, where=lambda g: f"{places.get(id(g), '?')} {g.game_id}")
    return FeedBatch(games=games, defects=defects)


def unscored(game: Game, status: GameStatus = GameStatus.SCHEDULED) -> Game:
    """The same game as it looked before it ended: scheduled (or ``status``), no scores."""
    return Game.create(
        game_date=game.game_date,
        home=game.home,
        away=game.away,
        status=status,
        source=game.source,
        stage=game.stage,
        source_id=game.source_id,
        tip_off=game.tip_off,
    )


def as_known_at(game: Game, moment: dt.datetime | None) -> Game:
    """``game`` as an emulated feed reports it at ``moment``: as it ended once GAME_LENGTH has passed since
    tip-off (or when ``moment`` is None), in progress from tip-off, scheduled before, without scores until final."""
    if moment is None or not game.is_final or moment >= final_at(game):
        return game
    return unscored(game, GameStatus.IN_PROGRESS if moment >= tip_off_of(game) else GameStatus.SCHEDULED)
