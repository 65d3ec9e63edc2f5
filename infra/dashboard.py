"""The season dashboard the replay writes (``reports/replay/dashboard.html``): one self-contained page with

- live log-loss by ISO week of the served predictions against always-home and Elo on the same games;
- the version that served each week (the champion's, by games served);
- drift events (red), retrains (green: promoted, grey: not promoted) and the canary's moves (purple: a step,
  a promotion or an abort) marked on both;
- the drift events, the retrains and every drift check that judged a canary (its share, what it did, and the
  paired games and mean log-loss difference it decided on) as tables.

Charts come from ``nbaml.monitoring.charts`` (axes, ticks, units, legends), as the drift report's do.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from nbaml.metrics import log_loss
from nbaml.monitoring.charts import Axis, Marker, Series, line_chart, timeline_chart
from nbaml.monitoring.report import STYLE

PROMOTED = {"promoted", "canary", "shadow"}


def week_of(day: dt.date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


def weekly_log_loss(
    items: Sequence[Mapping[str, Any]], elo: Mapping[str, float], home_rate: float
) -> list[dict[str, Any]]:
    """Per ISO week of the games: n, and the log-loss of the served model, always-home and Elo."""
    weeks: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        weeks[week_of(dt.date.fromisoformat(item["game_date"]))].append(item)
    rows = []
    for week, group in sorted(weeks.items()):
        y = [bool(i["home_won"]) for i in group]
        rows.append(
            {
                "week": week,
                "n": len(group),
                "model": log_loss(y, [float(i["probability"]) for i in group]),
                "always_home": log_loss(y, [home_rate] * len(group)),
                "elo": log_loss(y, [elo[i["game_id"]] for i in group]),
                "version": Counter(i["version"] for i in group if i["role"] == "champion").most_common(1)[0][0]
                if any(i["role"] == "champion" for i in group)
                else None,
            }
        )
    return rows


def _spans(weeks: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    for k, row in enumerate(weeks):
        version = row["version"] or "none"
        if spans and spans[-1][2] == version:
            spans[-1] = (spans[-1][0], k, version)
        else:
            spans.append((k, k, version))
    return spans


CANARY_MOVES = {"advanced", "promoted", "aborted"}
CANARY_HEADERS = ["check", "canary", "share", "action", "paired games", "mean difference (canary - champion log-loss)"]


def _checked_week(run_date: str) -> str:
    """A Monday's drift check judges the games up to the Sunday before."""
    return week_of(dt.date.fromisoformat(run_date) - dt.timedelta(days=1))


def _markers(
    index: dict[str, int],
    drift_events: Sequence[Mapping[str, Any]],
    retrains: Sequence[Mapping[str, Any]],
    canary_checks: Sequence[Mapping[str, Any]] = (),
) -> list[Marker]:
    """Drift events and canary moves at the week their check judged; retrains at their request day."""
    markers = []
    for event in drift_events:
        week = _checked_week(event["run_date"])
        if week in index:
            markers.append(Marker(index[week] + 0.5, "drift", "#d62728"))
    for check in canary_checks:
        week = _checked_week(check["run_date"])
        if check.get("action") in CANARY_MOVES and week in index:
            markers.append(Marker(index[week] + 0.5, f"canary {check['action']}", "#9467bd"))
    for run in retrains:
        day = str(run.get("requested_at") or "")[:10]
        if day and week_of(dt.date.fromisoformat(day)) in index:
            promoted = run.get("status") in PROMOTED
            label = f"retrain: {run.get('status')}"  # the version is on the timeline below
            markers.append(Marker(index[week_of(dt.date.fromisoformat(day))], label, "#2ca02c" if promoted else "#777"))
    return markers


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_dashboard(
    season: int,
    weeks: list[dict[str, Any]],
    drift_events: Sequence[Mapping[str, Any]],
    retrains: Sequence[Mapping[str, Any]],
    overall: Mapping[str, Any] | None = None,
    canary_checks: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The page; ``weeks`` from ``weekly_log_loss``, the events, runs and canary checks as the replay recorded them."""
    categories = [w["week"][2:] for w in weeks]
    index = {w["week"]: k for k, w in enumerate(weeks)}
    markers = _markers(index, drift_events, retrains, canary_checks)
    x = Axis(
        "ISO week of the games (drift: red, retrain promoted: green, not promoted: grey, canary move: purple)",
        categories=categories,
    )
    series = [
        Series(name, [(float(k), w[key]) for k, w in enumerate(weeks)], color, dashed)
        for name, key, color, dashed in (
            ("served model", "model", "#1f77b4", False),
            ("Elo", "elo", "#ff7f0e", True),
            ("always home", "always_home", "#7f7f7f", True),
        )
    ]
    chart = line_chart(
        f"Season {season}: live log-loss by week (lower is better)",
        series,
        x,
        Axis("log-loss (nats per game)", fmt="{:.2f}"),
        markers=markers,
        width=900,
        height=380,
    )
    timeline = timeline_chart(
        "Version serving each week (champion, by games served)", x, _spans(weeks), markers=markers, width=900
    )
    summary = ""
    if overall and overall.get("n"):
        m, h, e = (overall[k]["log_loss"] for k in ("model", "always_home", "elo"))
        summary = (
            f"<p>{overall['n']} served predictions: live log-loss <b>{m:.4f}</b> against always-home {h:.4f} and "
            f"Elo {e:.4f} on the same games.</p>"
        )
    drift_rows = [
        [d["run_date"], d.get("rule"), "; ".join(d.get("reasons", [])), d.get("retrain_requested")]
        for d in drift_events
    ]
    retrain_rows = [
        [
            str(r.get("requested_at") or "")[:10],
            r.get("trigger"),
            r.get("version"),
            r.get("status"),
            "; ".join(r.get("reasons", []))[:160],
        ]
        for r in retrains
    ]
    canary_rows = [
        [
            c["run_date"],
            c.get("version"),
            f"{c.get('percent')} %",
            c.get("action"),
            c.get("n") if c.get("n") is not None else "-",
            f"{c['mean']:+.4f}" if c.get("mean") is not None else "-",
        ]
        for c in canary_checks
    ]
    week_rows = [
        [w["week"], w["n"], w["version"], f"{w['model']:.4f}", f"{w['elo']:.4f}", f"{w['always_home']:.4f}"]
        for w in weeks
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>nbaml season {season} dashboard</title>"
        f"<style>{STYLE}</style></head><body><h1>Season {season}: the loop as it ran</h1>{summary}"
        f"<div class='plots'>{chart}<br>{timeline}</div>"
        f"<h2>Drift events</h2>{_table(['run', 'rule', 'reasons', 'retrain requested'], drift_rows)}"
        f"<h2>Retrains</h2>{_table(['requested', 'trigger', 'version', 'status', 'reasons'], retrain_rows)}"
        f"<h2>Canary checks</h2>{_table(CANARY_HEADERS, canary_rows)}"
        f"<h2>By week</h2>{_table(['week', 'games', 'version', 'model', 'Elo', 'always home'], week_rows)}"
        "</body></html>"
    )
