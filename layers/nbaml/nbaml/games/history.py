"""The completed games kept in S3 for training (``layout.training_season_key``), the team state derived
from them (``layout.LEAGUE_STATE``) and the league calendar that says which days it holds completely
(``layout.LEAGUE_CALENDAR``).

All are rewritten whole on each change; the bucket is versioned, so earlier versions stay. The team
state is updated incrementally when the new games are all later than what it has seen, and rebuilt
from the snapshot when a late or corrected result arrives, so it always equals a rebuild from scratch.

The state and the calendar are two objects, written state first: the calendar names the SHA-256 of the
state bytes it was written with, and ``league`` reads the pair again when a collect came between its two
reads, so a reader never pairs a calendar that vouches for a day with a state that lacks its games.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nbaml.errors import NotFoundError, StorageError
from nbaml.features import STATE_FORMAT, LeagueState, build_features, update_state
from nbaml.games.calendar import Completeness, LeagueCalendar
from nbaml.games.records import Game
from nbaml.layout import LEAGUE_CALENDAR, LEAGUE_STATE, TRAINING_GAMES, season_of, training_season_key
from nbaml.storage.artifacts import ArtifactStore, json_bytes


@dataclass
class MergeResult:
    added: list[Game] = field(default_factory=list)
    changed: list[Game] = field(default_factory=list)

    @property
    def touched(self) -> list[Game]:
        return [*self.added, *self.changed]


class GameHistory:
    """Final games by season in S3, and the league state built from them."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def seasons(self) -> list[int]:
        return sorted(season_of(key) for key in self.store.keys(TRAINING_GAMES))

    def season_games(self, season: int) -> list[Game]:
        try:
            body = self.store.get_bytes(training_season_key(season))
        except NotFoundError:
            return []
        return [Game.model_validate_json(line) for line in body.splitlines() if line.strip()]

    def games(self) -> list[Game]:
        """Every stored final game, oldest first."""
        games = [g for season in self.seasons() for g in self.season_games(season)]
        return sorted(games, key=lambda g: (g.game_date, g.game_id))

    def merge(self, games: Iterable[Game]) -> MergeResult:
        """Add final games to their season files; a repeat changes nothing, a corrected score replaces."""
        by_season: dict[int, list[Game]] = defaultdict(list)
        for game in games:
            if game.is_final:
                by_season[game.season].append(game)
        result = MergeResult()
        for season, incoming in sorted(by_season.items()):
            stored = {g.game_id: g for g in self.season_games(season)}
            dirty = False
            for game in incoming:
                old = stored.get(game.game_id)
                if old is None:
                    result.added.append(game)
                elif _outcome(old) != _outcome(game):
                    result.changed.append(game)
                else:
                    continue
                stored[game.game_id] = game
                dirty = True
            if dirty:
                self._write_season(season, stored.values())
        return result

    def complete_games(self) -> tuple[list[Game], dict[str, Any]]:
        """Every stored final game of a complete day (the league calendar's), and which days were left out and
        why: what a retrain trains on. Without a calendar every game counts, and the record says so."""
        complete = Completeness(self.load_calendar())
        return complete.only(self.games(), lambda g: g.game_date), complete.record()

    def replace_all(self, games: Iterable[Game]) -> int:
        """Write the snapshot from scratch (backfill); returns the number of final games written."""
        by_season: dict[int, list[Game]] = defaultdict(list)
        for game in games:
            if game.is_final:
                by_season[game.season].append(game)
        for season, season_games in by_season.items():
            self._write_season(season, season_games)
        return sum(len(v) for v in by_season.values())

    def _write_season(self, season: int, games: Iterable[Game]) -> None:
        ordered = sorted(games, key=lambda g: (g.game_date, g.game_id))
        body = "\n".join(g.model_dump_json() for g in ordered) + "\n"
        self.store.put_bytes(training_season_key(season), body.encode(), "application/x-ndjson")

    # ---------------------------------------------------------------- league state
    def load_state(self) -> LeagueState | None:
        """The stored state, or None when there is none or it was written in another format (after an upgrade
        that changed the features): either way the caller rebuilds it from the stored games, which is exact."""
        try:
            data = self.store.get_json(LEAGUE_STATE)
        except NotFoundError:
            return None
        if data.get("format") != STATE_FORMAT:
            return None
        return LeagueState.from_dict(data)

    def save_state(self, state: LeagueState) -> str:
        """Write the team state; returns the SHA-256 of the bytes written (what the calendar names)."""
        body = json_bytes(state.to_dict())
        self.store.put_bytes(LEAGUE_STATE, body, "application/json")
        return hashlib.sha256(body).hexdigest()

    def state_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.store.get_bytes(LEAGUE_STATE)).hexdigest()
        except NotFoundError:
            return None

    def refresh_state(self, merged: MergeResult) -> tuple[LeagueState, str, str]:
        """Bring the stored state up to date with what ``merge`` changed; returns it, how ("incremental",
        "rebuilt" or "unchanged") and the SHA-256 of its stored bytes."""
        state = self.load_state()
        if not merged.touched and state is not None:
            return state, "unchanged", str(self.state_digest())
        earliest = min((g.game_date for g in merged.touched), default=None)
        if state is not None and not merged.changed and (state.as_of is None or earliest > state.as_of):
            state = update_state(state, merged.added)
            how = "incremental"
        else:
            state = build_features(self.games()).state
            how = "rebuilt"
        return state, how, self.save_state(state)

    # ---------------------------------------------------------------- league calendar
    def load_calendar(self) -> LeagueCalendar | None:
        try:
            return LeagueCalendar.from_dict(self.store.get_json(LEAGUE_CALENDAR))
        except NotFoundError:
            return None

    def save_calendar(self, calendar: LeagueCalendar, state_digest: str) -> LeagueCalendar:
        """Write the calendar, naming the state it goes with (written after that state)."""
        calendar = calendar.with_state(state_digest)
        self.store.put_json(LEAGUE_CALENDAR, calendar.to_dict())
        return calendar

    def league(self, attempts: int = 3) -> tuple[LeagueState | None, LeagueCalendar | None]:
        """The team state and the calendar written with it (the predict function's view of the league).

        A calendar naming other state bytes was written by a collect that ran between the two reads: both are
        read again. After ``attempts`` the pair is refused (StorageError); the caller keeps what it had.
        """
        for _ in range(attempts):
            try:
                body = self.store.get_bytes(LEAGUE_STATE)
            except NotFoundError:
                return None, self.load_calendar()
            calendar = self.load_calendar()
            if calendar is None or calendar.state_sha256 in (None, hashlib.sha256(body).hexdigest()):
                data = json.loads(body)  # a state of another format is none (as load_state says): rebuilt by collect
                return (LeagueState.from_dict(data) if data.get("format") == STATE_FORMAT else None), calendar
        raise StorageError("the team state and the league calendar kept changing while read: try again")


def data_hash(games: Iterable[Game]) -> str:
    """A fingerprint of a training set: the ids and outcomes of its games, in order."""
    digest = hashlib.sha256()
    for game in sorted(games, key=lambda g: (g.game_date, g.game_id)):
        digest.update(json.dumps([game.game_id, game.home_score, game.away_score]).encode())
    return digest.hexdigest()


def _outcome(game: Game) -> tuple[object, ...]:
    return (game.status, game.home_score, game.away_score, game.stage)
