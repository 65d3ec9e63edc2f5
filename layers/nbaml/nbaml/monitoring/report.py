"""The drift report as one self-contained HTML page (``charts``' inline SVG, no plotting library: the
drift_check function stays lean): a summary table (verdict, both rules, live against baseline,
calibration, coverage, latency), the calibration curve, weekly accuracy per version and role, the PSI
of every feature by name against its own alarm level, and the canary's evidence at each check (its steps,
and the confidence sequence against the margin).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from nbaml.metrics import ece_noise
from nbaml.monitoring.charts import Axis, Series, bar_chart, line_chart
from nbaml.monitoring.rules import MIN_PSI_ROWS

STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}"
    ".plots svg{margin:0 1em 1em 0;border:1px solid #eee}.drift{color:#b00}.ok{color:#070}"
)


def calibration_svg(curve: Sequence[dict[str, float]]) -> str:
    points = [(b["mean_probability"], b["win_rate"]) for b in curve]
    counts = [f"n={b['n']}" for b in curve]
    return line_chart(
        "Calibration of the champion (all its resolved games)",
        [
            Series("perfectly calibrated", [(0.0, 0.0), (1.0, 1.0)], color="#999", dashed=True, markers=False),
            Series("champion (one point per probability bin, labelled with its games)", points, labels=counts),
        ],
        Axis("predicted home-win probability", 0.0, 1.0, "{:.1f}"),
        Axis("observed home-win rate", 0.0, 1.0, "{:.1f}"),
        height=360,
    )


def rolling_svg(series: dict[str, list[dict[str, Any]]]) -> str:
    weeks = sorted({p["week"] for points in series.values() for p in points})
    index = {w: i for i, w in enumerate(weeks)}
    lines = [
        Series(f"{name}", [(float(index[p["week"]]), 100.0 * p["accuracy"]) for p in points])
        for name, points in sorted(series.items())
    ]
    return line_chart(
        "Weekly accuracy per version (role)",
        lines,
        Axis("ISO week of the games", categories=[w[2:] for w in weeks]),
        Axis("accuracy (% of games picked right)", 0.0, 100.0, "{:.0f}"),
        references=[(50.0, "coin flip (50 %)")],
    )


def psi_svg(psi: dict[str, Any]) -> str:
    n, days = psi.get("n"), psi.get("days")
    window = f" over {n} requests of the last {days} days" if n and days else ""
    return bar_chart(
        f"Feature drift: PSI per feature{window}",
        list(psi.get("values", {}).items()),
        Axis("PSI against the four weeks before (unitless; 0 = the same distribution)", fmt="{:.2f}"),
        threshold=psi.get("threshold", 0.2),
        limits=psi.get("limits"),
    )


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    heads = list(rows[0])
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(h)))}</td>" for h in heads) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _ece(calibration: dict[str, Any]) -> str:
    """ECE beside what sampling alone gives on as many games: 0.29 over 15 games is noise, not a verdict."""
    ece, curve = calibration.get("ece"), calibration.get("curve") or []
    if ece is None:
        return "n/a"
    return (
        f"{ece:.4f} over {calibration.get('n')} resolved games "
        f"(a perfectly calibrated model shows about {ece_noise(curve):.4f} on as many, by chance alone)"
    )


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} ms"


def _rule_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, rule in (("rule (decides)", document.get("rule", {})), ("other rule", document.get("other_rule", {}))):
        verdict = "fired" if rule.get("fired") else "quiet"
        rows.append({"what": f"{label}: {rule.get('rule')}", "value": f"{verdict}: {rule.get('detail')}"})
    since = document.get("rule", {}).get("evidence_since")
    rows.append({"what": "evidence counted since", "value": since or "the version's first game"})
    return rows


def _psi_verdict(psi: dict[str, Any]) -> str:
    if not psi.get("judged", bool(psi.get("values"))):
        return (
            f"no verdict: {psi.get('n')} requests in the last {psi.get('days')} days and {psi.get('n_before')} in "
            f"the four weeks before (each window needs {MIN_PSI_ROWS})"
        )
    over = ", ".join(
        f"{name} {psi['values'][name]} > {psi.get('limits', {}).get(name)}" for name in psi.get("alarm", [])
    )
    return (over or "none") + f" (against the {psi.get('n_before')} requests of the four weeks before)"


def _results_verdict(results: dict[str, Any]) -> str:
    """The feed's results check in words: the week's home margin against the training window's."""
    if not results.get("judged"):
        why = "no reference in this bundle" if results.get("expected") is None else f"only {results.get('n')} games"
        return f"no verdict: {why}"
    verdict = "ALARM: check the feed" if results.get("alarm") else "normal"
    return (
        f"{verdict}: mean home margin {results.get('home_margin')} points over {results.get('n')} games, "
        f"training {results.get('expected')} (z {results.get('z')}, alarm beyond ±{results.get('limit')})"
    )


def summary_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    perf = document.get("performance", {})
    psi = document.get("psi", {})
    coverage = document.get("coverage") or {}
    latency = document.get("latency") or {}
    status = "DRIFT" if document.get("drift") else "no drift"
    return [
        {"what": "active version", "value": document.get("active")},
        {"what": "verdict", "value": status + ("; retrain requested" if document.get("retrain_requested") else "")},
        *_rule_rows(document),
        {
            "what": "live accuracy / log-loss",
            "value": f"{_pct(perf.get('accuracy'))} / {_num(perf.get('log_loss'))} over {perf.get('n')} resolved games",
        },
        {
            "what": "baseline (holdout) accuracy / log-loss",
            "value": f"{_pct(perf.get('baseline_accuracy'))} / {_num(perf.get('baseline_log_loss'))}",
        },
        {"what": "calibration ECE", "value": _ece(document.get("calibration") or {})},
        {"what": "features over their PSI alarm level", "value": _psi_verdict(psi)},
        {
            "what": "coverage (last 7 days)",
            "value": f"{_pct(coverage.get('share'))}: {coverage.get('predicted')} of {coverage.get('finished')} "
            "finished games predicted before tip-off",
        },
        {"what": "the feed's results (last 7 days)", "value": _results_verdict(document.get("results") or {})},
        {
            "what": "latency (last 7 days)",
            "value": f"p50 {_ms(latency.get('p50_ms'))}, p99 {_ms(latency.get('p99_ms'))} over {latency.get('n')} "
            "requests (model scoring time)",
        },
        {
            "what": "complete through",
            "value": document.get("completeness", {}).get("complete_through") or "no league calendar",
        },
    ]


def render_html(document: dict[str, Any]) -> str:
    """The whole report; ``document`` is the drift report's JSON document."""
    psi = document.get("psi", {})
    drift = bool(document.get("drift"))
    status = "DRIFT" if drift else "no drift"
    run_date = html.escape(str(document.get("run_date")))
    skipped = document.get("completeness", {}).get("skipped_days", {})
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>nbaml drift report {run_date}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>Drift report {run_date}: <span class='{'drift' if drift else 'ok'}'>{status}</span></h1>"
        f"{_table(summary_rows(document))}<div class='plots'>"
        f"{calibration_svg(document.get('calibration', {}).get('curve', []))}"
        f"{rolling_svg(document.get('rolling', {}))}"
        f"{psi_svg(psi)}</div>"
        f"<h2>Champion against challengers (same games)</h2>{_table(document.get('challengers', []))}"
        f"{canary_html(document.get('canary') or {})}"
        "<h2>Days skipped (not complete yet: their predictions count once every game of the day is final)</h2>"
        f"{_table([{'day': day, 'why': why} for day, why in skipped.items()])}"
        "</body></html>"
    )


CANARY_COLUMNS = ("run_date", "percent", "n", "mean", "lower", "upper", "margin", "decision", "action")


def canary_svg(checks: Sequence[dict[str, Any]], margin: float) -> str:
    """Mean paired difference (canary - champion log-loss) at each check, with both bounds, 0 and the margin."""
    shown = [c for c in checks if c.get("mean") is not None]
    categories = [f"{str(c.get('run_date'))[5:]} {c.get('percent')}%" for c in shown]

    def line(name: str, key: str, dashed: bool) -> Series:
        return Series(name, [(i, float(c[key])) for i, c in enumerate(shown)], dashed=dashed)

    return line_chart(
        "Canary: canary minus champion log-loss per game",
        [line("mean", "mean", False), line("upper bound", "upper", True), line("lower bound", "lower", True)],
        Axis("drift check (date, share served)", categories=categories),
        Axis("difference (log-loss per game)", fmt="{:.3f}"),
        references=[(0.0, "0: as good as the champion"), (margin, f"margin {margin}")],
    )


def canary_html(canary: dict[str, Any]) -> str:
    """The canary section: what this check did, and every check of the canary with its evidence."""
    if not canary.get("version"):
        return "<h2>Canary</h2><p>no canary in flight</p>"
    checks = canary.get("checks", [])
    margin = (canary.get("evidence") or {}).get("margin", 0.0)
    rows = [{k: c.get(k) for k in CANARY_COLUMNS} for c in checks]
    return (
        f"<h2>Canary {html.escape(str(canary['version']))} at {canary.get('percent')} %: "
        f"{html.escape(str(canary.get('action')))}</h2><p>{html.escape(str(canary.get('detail', '')))}</p>"
        f"<div class='plots'>{canary_svg(checks, margin)}</div>{_table(rows)}"
    )
