"""Defect accounting: every row a feed rejects (or keeps after repairing) is counted by kind, with examples.

Real feeds are dirty; a parser that silently drops rows would let a broken feed look like a quiet day, and
one that raises on the first bad row would stop the whole collection. So parsers skip bad rows and record
them here, and the collect function publishes the counts as metrics and the examples in its report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_MAX_EXAMPLES = 5


class DefectKind(StrEnum):
    """Why a row was rejected or repaired. The value is the stable name used in metrics and reports."""

    DUPLICATE_IDENTICAL = "duplicate_identical"
    """The same game again with the same result: one copy is kept, each extra copy is counted."""
    DUPLICATE_CONFLICTING = "duplicate_conflicting"
    """The same game id with different results: no copy can be trusted, every copy is dropped and counted."""
    MISSING_FIELD = "missing_field"
    UNKNOWN_TEAM = "unknown_team"
    TEAM_TWICE_ON_DATE = "team_twice_on_date"
    """A team in two games on one date: every such game is dropped (at most one is real, we cannot tell which)."""
    UNPLAYED_ZERO_SCORE = "unplayed_zero_score"
    """A zero score: a game recorded as played that never was (cancelled), or a placeholder."""
    SEASON_LABEL_MISMATCH = "season_label_mismatch"
    """The source's season label disagrees with the date: counted, but the game is kept with the date's season."""
    FINAL_WITHOUT_SCORE = "final_without_score"
    WINNER_LABEL_MISMATCH = "winner_label_mismatch"
    """A win/loss label that contradicts the points: one of them is wrong, so the row is dropped."""
    MALFORMED = "malformed"
    """An unparseable value or JSON item."""
    SAME_TEAM_BOTH_SIDES = "same_team_both_sides"


class RowDefect(Exception):
    """Raised inside a feed's row parser: the row is counted as ``kind`` because of ``reason``, then skipped."""

    def __init__(self, kind: DefectKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class DefectExample:
    """Where a defect was seen (row number, payload key, game id) and why, so a person can find the row."""

    where: str
    reason: str


@dataclass
class DefectReport:
    """Counts per kind plus the first few examples of each; cheap to merge and to publish.

    None of its methods raise: defect accounting runs inside error handling, and a failure there would
    hide the defect it was recording.
    """

    max_examples: int = DEFAULT_MAX_EXAMPLES
    counts: dict[DefectKind, int] = field(default_factory=dict)
    examples: dict[DefectKind, list[DefectExample]] = field(default_factory=dict)

    def add(self, kind: DefectKind | str, where: object, reason: str, count: int = 1) -> None:
        """Count ``count`` rows of ``kind`` seen at ``where``; an unrecognised kind is counted as malformed."""
        try:
            resolved = DefectKind(kind)
        except ValueError:
            resolved = DefectKind.MALFORMED
            reason = f"[unrecognised defect kind {kind!r}] {reason}"
        try:
            n = max(int(count), 0)
        except (TypeError, ValueError):
            n = 1
        if n == 0:
            return
        self.counts[resolved] = self.counts.get(resolved, 0) + n
        kept = self.examples.setdefault(resolved, [])
        if len(kept) < self.max_examples:
            kept.append(DefectExample(where=_text(where), reason=_text(reason)))

    def merge(self, other: DefectReport) -> DefectReport:
        """Add another report's counts and examples into this one (in place) and return this one."""
        for kind, n in other.counts.items():
            self.counts[kind] = self.counts.get(kind, 0) + n
        for kind, items in other.examples.items():
            kept = self.examples.setdefault(kind, [])
            kept.extend(items[: max(self.max_examples - len(kept), 0)])
        return self

    def count(self, kind: DefectKind | str) -> int:
        """Rows counted under ``kind`` (0 for a kind never seen or not a kind at all)."""
        try:
            return self.counts.get(DefectKind(kind), 0)
        except ValueError:
            return 0

    @property
    def total(self) -> int:
        """Defects of every kind. A row kept after a repair and later dropped counts under both kinds."""
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every kind's count (zeros included, a stable schema for reports) and the examples."""
        return {
            "total": self.total,
            "counts": {kind.value: self.counts.get(kind, 0) for kind in DefectKind},
            "examples": {
                kind.value: [{"where": e.where, "reason": e.reason} for e in self.examples[kind]]
                for kind in DefectKind
                if self.examples.get(kind)
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_examples: int = DEFAULT_MAX_EXAMPLES) -> DefectReport:
        """Rebuild a report written by ``as_dict`` (e.g. read back from S3); unreadable parts are ignored."""
        report = cls(max_examples=max_examples)
        counts = data.get("counts") if isinstance(data, Mapping) else None
        examples = data.get("examples") if isinstance(data, Mapping) else None
        for name, n in (counts or {}).items() if isinstance(counts, Mapping) else ():
            try:
                kind, value = DefectKind(name), int(n)
            except (TypeError, ValueError):
                continue
            if value > 0:
                report.counts[kind] = report.counts.get(kind, 0) + value
        for name, items in (examples or {}).items() if isinstance(examples, Mapping) else ():
            try:
                kind = DefectKind(name)
            except ValueError:
                continue
            for item in items if isinstance(items, list) else ():
                if isinstance(item, Mapping) and len(report.examples.get(kind, [])) < max_examples:
                    example = DefectExample(_text(item.get("where", "")), _text(item.get("reason", "")))
                    report.examples.setdefault(kind, []).append(example)
        return report

    def table(self) -> str:
        """A plain-text table of every kind and its count, for people (the CLI, a collect report)."""
        width = max(len(kind.value) for kind in DefectKind)
        lines = [f"{'defect':<{width}}  {'rows':>7}", f"{'-' * width}  {'-' * 7}"]
        lines += [f"{kind.value:<{width}}  {self.counts.get(kind, 0):>7}" for kind in DefectKind]
        lines += [f"{'-' * width}  {'-' * 7}", f"{'total':<{width}}  {self.total:>7}"]
        return "\n".join(lines)


def _text(value: object) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not break the accounting
        return f"<unprintable {type(value).__name__}>"
