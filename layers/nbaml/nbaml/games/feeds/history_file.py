"""The historical results file (``nba_games_2009_2023.csv``): real seasons for training and for replays.

The file is raw and has the defects real feeds have, so it goes through the same row checks and the same
cross-row reconciliation as the live feed. What the shared 2009-23 file holds (verified row by row):

- the 2022-23 season twice: once labelled 2022 and once labelled 2023, identical otherwise. The file's
  label convention is the **start year** (2009 = 2009-10, like ``season_of``): every other label matches
  the date under that rule, and 2023 is the end year of 2022-23. So those 1230 rows are counted as
  ``season_label_mismatch`` (kept with the date's season) and then as ``duplicate_identical``;
- five rows with the home team, the date and the season missing (``missing_field``);
- Celtics-Pacers of 2013-04-16, cancelled after the Boston Marathon bombing and recorded 0-0 with no
  W/L (``unplayed_zero_score``).

All games are regular season (the file has no playoff rows). The file gives dates, not start times: each
game's ``tip_off`` is the stated assumption of ``nbaml.games.teams.assumed_tip_off`` (the home team's local
19:30).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections import defaultdict
from pathlib import Path

from pydantic import ValidationError

from nbaml.errors import UnknownTeamError
from nbaml.games.defects import DefectKind, DefectReport, RowDefect
from nbaml.games.feeds.base import FeedBatch, RawPayload, batch_of, unscored
from nbaml.games.records import GAME_LENGTH, Game, GameStatus, Stage, season_of
from nbaml.games.teams import assumed_tip_off, team_abbreviation

SOURCE = "file"
CONTENT_TYPE = "text/csv"
SEASON = "SEASON_ID"
DATE = "GAME_DATE"
HOME_ABBR, HOME_NAME, HOME_PTS = "home.TEAM_ABBREVIATION", "home.TEAM_NAME", "home.PTS"
AWAY_ABBR, AWAY_NAME, AWAY_PTS = "away.TEAM_ABBREVIATION", "away.TEAM_NAME", "away.PTS"
HOME_WL = "home.WL"
COLUMNS = (SEASON, DATE, HOME_ABBR, HOME_NAME, HOME_PTS, AWAY_ABBR, AWAY_NAME, AWAY_PTS, HOME_WL)
_IDENTITY = (SEASON, DATE, HOME_ABBR, HOME_NAME, AWAY_ABBR, AWAY_NAME)


class HistoryFileFeed:
    """The CSV file as a ``GameFeed``: ``fetch_raw`` cuts the window's rows out of it byte for byte."""

    name = SOURCE

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._body: bytes | None = None
        self._batch: FeedBatch | None = None
        self._by_date: dict[dt.date, list[Game]] | None = None

    def read_bytes(self) -> bytes:
        """The whole file, read once per feed (a Lambda reuses the feed across invocations)."""
        if self._body is None:
            self._body = self.path.read_bytes()
        return self._body

    def fetch_raw(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None) -> list[RawPayload]:
        """One CSV payload: the header and the rows dated in the window, exactly as they are in the file.

        The file emulates a live feed asked at ``as_of``: a game that has not ended by then (its assumed
        tip-off plus GAME_LENGTH) is listed with its points and W/L blank, as a feed lists a game it has no
        result for yet; every other row is the file's, byte for byte. Rows whose date is missing or unreadable
        belong to no window; ``load_games`` reads them (and counts them as defects) because it parses the
        whole file.
        """
        text = self.read_bytes().decode("utf-8-sig", errors="replace")
        lines = text.splitlines(keepends=True)
        kept: list[str] = lines[:1]
        reader = csv.reader(lines[1:])
        consumed = 0
        header = next(csv.reader(lines[:1]), [])
        at = {name: header.index(name) if name in header else COLUMNS.index(name) for name in COLUMNS}
        for record in reader:
            first, consumed = consumed, reader.line_num
            day = _date_or_none(record[at[DATE]] if len(record) > at[DATE] else "")
            if day is None or not start <= day <= end:
                continue
            if as_of is not None and _unfinished(record, at, day, as_of):
                for name in (HOME_PTS, AWAY_PTS, HOME_WL):
                    record[at[name]] = ""
                out = io.StringIO()
                csv.writer(out, lineterminator=_line_end(lines[consumed])).writerow(record)
                kept.append(out.getvalue())
            else:
                kept.extend(lines[1 + first : 1 + consumed])
        key = f"{SOURCE}/{self.path.stem}/{start:%Y-%m-%d}_{end:%Y-%m-%d}.csv"
        return [RawPayload(source=SOURCE, key=key, body="".join(kept).encode(), content_type=CONTENT_TYPE)]

    def parse(self, payloads: list[RawPayload]) -> FeedBatch:
        """Row checks on every payload, then the shared cross-row checks over all of them together."""
        defects = DefectReport()
        return batch_of((row for payload in payloads for row in parse_rows(payload, defects)), defects)

    def load(self) -> FeedBatch:
        """The whole file parsed once (cached): training history and the replay's schedule read it."""
        if self._batch is None:
            payload = RawPayload(
                source=SOURCE, key=f"{SOURCE}/{self.path.name}", body=self.read_bytes(), content_type=CONTENT_TYPE
            )
            self._batch = self.parse([payload])
        return self._batch

    def schedule(self, day: dt.date) -> list[Game]:
        """That day's clean games as they stood before tip-off, so a real season can be replayed."""
        if self._by_date is None:
            by_date: dict[dt.date, list[Game]] = defaultdict(list)
            for game in self.load().games:
                by_date[game.game_date].append(game)
            self._by_date = dict(by_date)
        return [unscored(game) for game in self._by_date.get(day, [])]


def load_games(path: str | Path) -> FeedBatch:
    """Every clean game of the file and the defects found, in one call."""
    return HistoryFileFeed(path).load()


def parse_rows(payload: RawPayload, defects: DefectReport) -> list[tuple[Game, str]]:
    """Games from one CSV payload after the row-level checks, each with its row; bad rows are counted and skipped.

    A row is placed as ``<key>:<line>`` (line 1 is the header), so an example leads straight to the row.
    """
    text = payload.body.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing_columns = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing_columns:
        defects.add(DefectKind.MALFORMED, payload.key, f"header lacks columns {missing_columns}")
        return []
    games: list[tuple[Game, str]] = []
    for row in reader:
        where = f"{payload.key}:{reader.line_num}"
        try:
            game, label_problem = _game_from_row(row)
        except RowDefect as defect:
            defects.add(defect.kind, where, defect.reason)
            continue
        if label_problem is not None:
            defects.add(DefectKind.SEASON_LABEL_MISMATCH, where, label_problem)
        games.append((game, where))
    return games


def _game_from_row(row: dict[str | None, str | None]) -> tuple[Game, str | None]:
    """One row's checks, in an order that names the most specific defect first (a 0-0 row also lacks W/L).

    Returns the game and, when its season label disagrees with its date, why: that defect keeps the row.
    """
    if None in row or any(value is None for value in row.values()):
        raise RowDefect(DefectKind.MALFORMED, f"row does not have the header's {len(COLUMNS)} fields")
    cell = {key: (value or "").strip() for key, value in row.items() if key is not None}

    empty = [c for c in _IDENTITY if not cell[c]]
    if empty:
        raise RowDefect(DefectKind.MISSING_FIELD, f"empty {', '.join(empty)}")
    day = _date_or_none(cell[DATE])
    if day is None:
        raise RowDefect(DefectKind.MALFORMED, f"unreadable {DATE} {cell[DATE]!r}")
    home = _team(cell[HOME_ABBR], cell[HOME_NAME])
    away = _team(cell[AWAY_ABBR], cell[AWAY_NAME])
    if home == away:
        raise RowDefect(DefectKind.SAME_TEAM_BOTH_SIDES, f"{home} on both sides")

    not_played_yet = not (cell[HOME_PTS] or cell[AWAY_PTS] or cell[HOME_WL])  # a feed's game without a result
    home_pts, away_pts = (None, None) if not_played_yet else _final_score(cell, home, away)
    try:
        game = Game.create(
            game_date=day,
            home=home,
            away=away,
            status=GameStatus.SCHEDULED if not_played_yet else GameStatus.FINAL,
            source=SOURCE,
            home_score=home_pts,
            away_score=away_pts,
            stage=Stage.REGULAR,
            tip_off=assumed_tip_off(day, home),
        )
    except ValidationError as exc:
        raise RowDefect(DefectKind.MALFORMED, f"invalid game: {exc.errors()[0].get('msg', exc)}") from exc
    return game, _label_problem(cell[SEASON], day)


def _final_score(cell: dict[str, str], home: str, away: str) -> tuple[int, int]:
    """The points of a game that was played and decided, which the W/L label must agree with."""
    if not cell[HOME_PTS] or not cell[AWAY_PTS]:
        raise RowDefect(DefectKind.FINAL_WITHOUT_SCORE, f"points {cell[HOME_PTS]!r}-{cell[AWAY_PTS]!r}")
    home_pts, away_pts = _points(cell[HOME_PTS]), _points(cell[AWAY_PTS])
    if home_pts == 0 or away_pts == 0:
        raise RowDefect(DefectKind.UNPLAYED_ZERO_SCORE, f"{home} {home_pts}-{away_pts} {away}: never played")
    if home_pts == away_pts:
        raise RowDefect(DefectKind.MALFORMED, f"tie {home_pts}-{away_pts}")
    label = cell[HOME_WL]
    if not label:
        raise RowDefect(DefectKind.MISSING_FIELD, f"empty {HOME_WL}")
    if label not in ("W", "L"):
        raise RowDefect(DefectKind.MALFORMED, f"{HOME_WL} {label!r} is neither W nor L")
    if (label == "W") != (home_pts > away_pts):
        raise RowDefect(DefectKind.WINNER_LABEL_MISMATCH, f"{HOME_WL}={label} but {home_pts}-{away_pts}")
    return home_pts, away_pts


def _unfinished(record: list[str], at: dict[str, int], day: dt.date, as_of: dt.datetime) -> bool:
    """Whether the row's game has not ended by ``as_of`` (a row naming no known home team is left as it is)."""
    try:
        home = team_abbreviation(record[at[HOME_ABBR]])
    except (UnknownTeamError, IndexError):
        return False
    return as_of < assumed_tip_off(day, home) + GAME_LENGTH


def _line_end(line: str) -> str:
    return line[len(line.rstrip("\r\n")) :] or "\n"


def _label_problem(label: str, day: dt.date) -> str | None:
    """Why a start-year season label disagrees with the date, or None when it agrees."""
    season = season_of(day)
    try:
        value = float(label)
    except ValueError:
        value = math.nan
    if math.isfinite(value) and value == season:
        return None
    return f"{SEASON} {label!r} but {day} is in season {season} ({season}-{(season + 1) % 100:02d})"


def _team(abbreviation: str, name: str) -> str:
    try:
        by_abbr = team_abbreviation(abbreviation)
        by_name = team_abbreviation(name)
    except UnknownTeamError as exc:
        raise RowDefect(DefectKind.UNKNOWN_TEAM, str(exc)) from exc
    if by_abbr != by_name:
        raise RowDefect(DefectKind.UNKNOWN_TEAM, f"{abbreviation!r} and {name!r} name different franchises")
    return by_abbr


def _points(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not value.is_integer() or value < 0:
        raise RowDefect(DefectKind.MALFORMED, f"points {text!r} are not a whole number >= 0")
    return int(value)


def _date_or_none(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None
