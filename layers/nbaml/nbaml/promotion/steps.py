"""The canary's ladder (template CANARY_STEPS): shares of games, strictly increasing, ending at 100 (active).

Kept apart from ``nbaml.promotion.canary`` so that every function's settings can check it at cold start
without importing the deployment code.
"""

from __future__ import annotations

import itertools


def parse_steps(text: str) -> tuple[int, ...]:
    """ "10,50,100" -> (10, 50, 100); strictly increasing shares from 1 to 100, ending at 100."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError as exc:
        raise ValueError(f"canary steps {text!r} are not comma-separated integers") from exc
    if not steps or steps[-1] != 100 or steps[0] < 1 or any(a >= b for a, b in itertools.pairwise(steps)):
        raise ValueError(f"canary steps {text!r} must increase strictly from 1 or more and end at 100")
    return steps


def next_step(steps: tuple[int, ...], percent: int) -> int:
    """The share after ``percent``: the first step above it (an operator's odd share joins the ladder)."""
    return next((s for s in steps if s > percent), 100)
