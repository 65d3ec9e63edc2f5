"""Injected changes shared by the drift benchmarks: what a broken feed would have made of real seasons.

- ``swapped_rows``: the features each regular-season game would have been served with had the feed swapped
  its home and away teams (the same league state, asked for the other matchup: every feature, the margin
  rating's home advantage included, as the serving code would compute it).
- ``low_home_scores``: the games with the home score 15 % low from a date on, as a feed with a unit or
  parsing bug would deliver them; features rebuilt from them carry the bug into every team's state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from nbaml.features import LeagueState, update_state
from nbaml.games.records import Game, Stage

LOW_HOME_SCORE = 0.85


def swapped_rows(games: Iterable[Game]) -> dict[str, list[float]]:
    """game_id -> the features of (away at home, home away) from the games before its date."""
    ordered = sorted((g for g in games if g.status == "final"), key=lambda g: (g.game_date, g.game_id))
    state = LeagueState()
    rows: dict[str, list[float]] = {}
    i = 0
    while i < len(ordered):
        day = ordered[i].game_date
        j = i
        while j < len(ordered) and ordered[j].game_date == day:
            j += 1
        batch = ordered[i:j]
        for g in batch:
            if g.stage == Stage.REGULAR:
                rows[g.game_id] = state.features(g.away, g.home, day)
        update_state(state, batch)
        i = j
    return rows


def low_home_scores(games: Iterable[Game], since: dt.date, share: float = LOW_HOME_SCORE) -> list[Game]:
    """The games with every home score from ``since`` on multiplied by ``share`` (rounded)."""
    return [
        g.model_copy(update={"home_score": round(g.home_score * share)})
        if g.game_date >= since and g.home_score is not None
        else g
        for g in games
    ]
