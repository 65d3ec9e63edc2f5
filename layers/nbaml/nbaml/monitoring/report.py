"""The drift report as one self-contained HTML page with inline SVG plots (no plotting library: the
drift_check function stays lean): the calibration curve, weekly accuracy per version, and PSI per feature.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT, PAD = 420, 260, 36
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _x(value: float, lo: float, hi: float) -> float:
    return PAD + (value - lo) / ((hi - lo) or 1) * (WIDTH - 2 * PAD)


def _y(value: float, lo: float, hi: float) -> float:
    return HEIGHT - PAD - (value - lo) / ((hi - lo) or 1) * (HEIGHT - 2 * PAD)


def _frame(title: str, body: str, x_label: str, y_label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}"><rect width="100%" height="100%" fill="white"/>'
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">{html.escape(x_label)}</text>'
        f'<text x="12" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 12 {HEIGHT / 2})" '
        f'text-anchor="middle">{html.escape(y_label)}</text>{body}</svg>'
    )


def calibration_svg(curve: Sequence[dict[str, float]]) -> str:
    diagonal = f'x1="{_x(0, 0, 1)}" y1="{_y(0, 0, 1)}" x2="{_x(1, 0, 1)}" y2="{_y(1, 0, 1)}"'
    body = f'<line {diagonal} stroke="#aaa" stroke-dasharray="4"/>'
    points = [(_x(b["mean_probability"], 0, 1), _y(b["win_rate"], 0, 1), b["n"]) for b in curve]
    if points:
        body += (
            '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in points)
            + '"/>'
        )
        body += "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f77b4"><title>n={n}</title></circle>'
            for x, y, n in points
        )
    return _frame("Calibration (champion)", body, "predicted home-win probability", "observed home-win rate")


def rolling_svg(series: dict[str, list[dict[str, Any]]]) -> str:
    weeks = sorted({p["week"] for points in series.values() for p in points})
    if not weeks:
        return _frame("Weekly accuracy per version", "", "week", "accuracy")
    index = {w: i for i, w in enumerate(weeks)}
    hi = max(len(weeks) - 1, 1)
    body = ""
    for k, (name, points) in enumerate(sorted(series.items())):
        color = COLORS[k % len(COLORS)]
        coords = " ".join(f"{_x(index[p['week']], 0, hi):.1f},{_y(p['accuracy'], 0.3, 0.9):.1f}" for p in points)
        body += f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'
        label = f'x="{WIDTH - PAD}" y="{PAD + 12 * k}" font-size="10" fill="{color}" text-anchor="end"'
        body += f"<text {label}>{html.escape(name)}</text>"
    return _frame("Weekly accuracy per version", body, f"weeks {weeks[0]} .. {weeks[-1]}", "accuracy (0.3-0.9)")


def psi_svg(values: dict[str, float], threshold: float) -> str:
    names = list(values)
    if not names:
        return _frame("Feature PSI", "", "feature", "PSI")
    hi = max(max(values.values()), threshold) * 1.1
    bar = (WIDTH - 2 * PAD) / len(names)
    level = _y(threshold, 0, hi)
    body = (
        f'<line x1="{PAD}" y1="{level:.1f}" x2="{WIDTH - PAD}" y2="{level:.1f}" stroke="#d62728" stroke-dasharray="4"/>'
    )
    for i, name in enumerate(names):
        top = _y(values[name], 0, hi)
        color = "#d62728" if values[name] >= threshold else "#1f77b4"
        body += (
            f'<rect x="{PAD + i * bar + 1:.1f}" y="{top:.1f}" width="{bar - 2:.1f}" height="{HEIGHT - PAD - top:.1f}" '
            f'fill="{color}"><title>{html.escape(name)}: {values[name]}</title></rect>'
        )
    return _frame(f"Feature PSI (alarm at {threshold})", body, "features in bundle order (hover for names)", "PSI")


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    heads = list(rows[0])
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(h)))}</td>" for h in heads) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(document: dict[str, Any]) -> str:
    """The whole report; ``document`` is the drift report's JSON document."""
    rule = document.get("rule", {})
    other = document.get("other_rule", {})
    perf = document.get("performance", {})
    psi = document.get("psi", {})
    status = "DRIFT" if document.get("drift") else "no drift"
    summary = [
        {"what": "active version", "value": document.get("active")},
        {"what": "verdict", "value": status + ("; retrain requested" if document.get("retrain_requested") else "")},
        {"what": f"rule ({rule.get('rule')})", "value": rule.get("detail")},
        {
            "what": f"other rule ({other.get('rule')})",
            "value": f"{'fired' if other.get('fired') else 'quiet'}: {other.get('detail')}",
        },
        {
            "what": "live accuracy / log-loss",
            "value": f"{perf.get('accuracy')} / {perf.get('log_loss')} (n={perf.get('n')})",
        },
        {
            "what": "baseline accuracy / log-loss",
            "value": f"{perf.get('baseline_accuracy')} / {perf.get('baseline_log_loss')}",
        },
        {"what": "calibration ECE", "value": document.get("calibration", {}).get("ece")},
        {"what": "features over PSI alarm", "value": ", ".join(psi.get("alarm", [])) or "none"},
        {"what": "coverage", "value": json.dumps(document.get("coverage"))},
        {"what": "latency", "value": json.dumps(document.get("latency"))},
        {
            "what": "complete through",
            "value": document.get("completeness", {}).get("complete_through") or "no league calendar",
        },
    ]
    skipped = document.get("completeness", {}).get("skipped_days", {})
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>nbaml drift report "
        f"{html.escape(str(document.get('run_date')))}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
        ".plots svg{margin:0 1em 1em 0;border:1px solid #eee}</style></head><body>"
        f"<h1>Drift report {html.escape(str(document.get('run_date')))}: {status}</h1>"
        f"{_table(summary)}<div class='plots'>{calibration_svg(document.get('calibration', {}).get('curve', []))}"
        f"{rolling_svg(document.get('rolling', {}))}{psi_svg(psi.get('values', {}), psi.get('threshold', 0.2))}</div>"
        f"<h2>Champion against challengers (same games)</h2>{_table(document.get('challengers', []))}"
        f"<h2>PSI per feature</h2>{_table([{'feature': k, 'psi': v} for k, v in psi.get('values', {}).items()])}"
        "<h2>Days skipped (not complete yet: their predictions count once every game of the day is final)</h2>"
        f"{_table([{'day': day, 'why': why} for day, why in skipped.items()])}"
        "</body></html>"
    )
