"""Which model serves a game: the canary's share is chosen by a stable hash of the game id.

A stable hash (not a random draw) means a game always gets the same model however often it is asked,
so its logged prediction and its served answer agree, and a canary's games are a fixed sample.
"""

from __future__ import annotations

import hashlib


def bucket_of(game_id: str) -> int:
    """A number in [0, 100) fixed for a game id."""
    return int.from_bytes(hashlib.sha256(game_id.encode()).digest()[:8], "big") % 100


def served_by_canary(game_id: str, percent: int) -> bool:
    return bucket_of(game_id) < percent
