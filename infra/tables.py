"""The tables a person reads: one renderer (terminal or Markdown) and the seed's model_versions table.

``nbaml models``, ``nbaml stack up`` and the replay's report all print through it, so a version reads
the same wherever it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any


def cell(value: Any) -> str:
    """A value as a table shows it: "-" for nothing, numbers to three decimals (DynamoDB's Decimals too)."""
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float | Decimal):
        return f"{float(value):.3f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, markdown: bool = False) -> str:
    """Aligned columns: two spaces apart for a terminal, or a Markdown table for a report."""
    cells = [list(headers), *[[cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if not markdown:
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def model_versions(
    versions: Sequence[Mapping[str, Any]], *, roles: Mapping[str, list[str]] | None = None, markdown: bool = False
) -> str:
    """The seed's model_versions table: metrics, status, when and why each version was made; roles if given."""
    headers = ["version", "accuracy", "roc_auc", "log_loss", "status", "deployed_at", "trigger"]
    rows = []
    for item in versions:
        metrics = item.get("metrics") or {}
        row = [item["version"], *(_number(metrics.get(k)) for k in ("accuracy", "roc_auc", "log_loss"))]
        row += [item.get("status"), item.get("deployed_at"), item.get("trigger")]
        if roles is not None:
            row.append(", ".join(roles.get(str(item["version"]), [])))
        rows.append(row)
    return table([*headers, "role"] if roles is not None else headers, rows, markdown=markdown)


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
