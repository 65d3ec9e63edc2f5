"""The training set: features of completed regular-season games, split by time, never shuffled."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from nbaml.errors import InsufficientDataError
from nbaml.features import FEATURE_NAMES, FeatureTable, build_features
from nbaml.games.records import Game

# The newest 15 % of games, at least 300 and at most a season: enough games to judge calibration.
MIN_HOLDOUT = 300
MAX_HOLDOUT = 1230
HOLDOUT_SHARE = 0.15


@dataclass(frozen=True)
class Split:
    """Rows in time order; the holdout is the newest games (the model never sees them in training)."""

    names: tuple[str, ...]
    X_train: np.ndarray
    y_train: np.ndarray
    X_holdout: np.ndarray
    y_holdout: np.ndarray
    train_dates: tuple[dt.date, dt.date]
    holdout_dates: tuple[dt.date, dt.date]
    holdout_ids: list[str]
    holdout_rows: list[list[float]]

    @property
    def window(self) -> dict[str, str]:
        return {
            "train_start": self.train_dates[0].isoformat(),
            "train_end": self.train_dates[1].isoformat(),
            "holdout_start": self.holdout_dates[0].isoformat(),
            "holdout_end": self.holdout_dates[1].isoformat(),
        }


def feature_table(games: Iterable[Game]) -> FeatureTable:
    """Features of every final regular-season game (playoffs excluded, as the seed says)."""
    return build_features(games)


def select(table: FeatureTable, names: Sequence[str]) -> np.ndarray:
    """The columns ``names`` of the table, in that order (an older bundle may use fewer features)."""
    index = [table.names.index(n) for n in names]
    return np.asarray(table.rows, dtype=np.float64)[:, index]


def holdout_size(n_games: int) -> int:
    return int(min(MAX_HOLDOUT, max(MIN_HOLDOUT, round(n_games * HOLDOUT_SHARE))))


def time_split(table: FeatureTable, names: Sequence[str] = FEATURE_NAMES, holdout: int | None = None) -> Split:
    """Oldest games train, newest ``holdout`` games test; a date is never split across the two."""
    n = len(table.rows)
    size = holdout if holdout is not None else holdout_size(n)
    if n < size + 200:
        raise InsufficientDataError(f"{n} completed regular-season games are too few to train (need {size + 200})")
    cut = n - size
    while 0 < cut < n and table.dates[cut] == table.dates[cut - 1]:
        cut += 1  # keep every game of the boundary date on the training side
    X = select(table, names)
    y = np.asarray(table.labels, dtype=np.int64)
    return Split(
        names=tuple(names),
        X_train=X[:cut],
        y_train=y[:cut],
        X_holdout=X[cut:],
        y_holdout=y[cut:],
        train_dates=(table.dates[0], table.dates[cut - 1]),
        holdout_dates=(table.dates[cut], table.dates[-1]),
        holdout_ids=table.game_ids[cut:],
        holdout_rows=[list(r) for r in table.rows[cut:]],
    )
