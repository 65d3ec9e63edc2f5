"""The weekly drift check (drift_check function): how the live model is doing on games that have ended.

Reads the prediction log joined to outcomes and reports, for the active version:
- the performance rule (DRIFT_RULE): "sequential" (the default: CUSUMs on observed minus expected log-loss
  and on the model's expected log-loss, ``rules``) or "seed" (the seed's accuracy drop over the last 50),
  with the other rule's verdict beside it for comparison, both on the games since the evidence last
  restarted (after the version's last firing, so a rejected retrain does not re-queue every week);
- calibration (ECE and reliability bins) on every resolved champion prediction of the version;
- feature drift: PSI of each feature over the last 28 days of resolved requests against the 28 days
  before them, each feature alarmed above the higher of PSI_ALARM and its normal level on the training
  seasons (``rules.feature_drift``; no verdict until both windows hold MIN_PSI_ROWS requests);
- coverage (share of the week's finished games predicted before tip-off) and latency p50/p99;
- the feed's results: the week's mean home margin against the training window's (``rules.results_drift``),
  an alarm for a person (a broken feed), never a retrain;
- champion against canary and shadow on the same resolved games;
- the canary's step (``nbaml.promotion.canary``): the sequential test on its paired games, and the advance,
  hold or abort it allows, acted on here.
Only complete days count (the league calendar's ``complete_through``): a prediction of a night collect has
not seen whole is left out, since its night's late games would be missing from every statistic, and the
report names the days it skipped and why ("completeness").
It writes its report (``layout.report_key``: dated and latest), emits metrics, and when the
performance rule fires requests one retrain per ISO week (idempotent through a registry marker).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import Metrics, MetricUnit

from nbaml.bundle import ModelBundle
from nbaml.config import DriftSettings
from nbaml.errors import NbamlError
from nbaml.events import RetrainRequest, RetrainTrigger
from nbaml.games.calendar import Completeness
from nbaml.games.history import GameHistory
from nbaml.games.records import Game
from nbaml.games.teams import league_time
from nbaml.layout import DRIFT_HTML, DRIFT_JSON, report_key
from nbaml.metrics import DIGITS, accuracy, log_loss, percentile, score
from nbaml.monitoring import rules
from nbaml.monitoring.report import render_html
from nbaml.monitoring.rules import PSI_DAYS
from nbaml.promotion.canary import judge_canary
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore
from nbaml.storage.predictions import PredictionLog
from nbaml.storage.queue import send_retrain_request
from nbaml.storage.registry import ModelRegistry

logger = Logger(child=True)
ROLLING_DAYS = 56  # the weekly-accuracy plot shows eight more weeks before that
ROLES = ("champion", "canary", "shadow")


@dataclass
class DriftReport:
    run_date: dt.date
    active: str
    drift: bool = False
    reasons: list[str] = field(default_factory=list)
    retrain_requested: bool = False
    sections: dict[str, Any] = field(default_factory=dict)
    report_keys: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rule = self.sections.get("rule", {})
        return {
            "run_date": self.run_date.isoformat(),
            "active": self.active,
            "drift": self.drift,
            "reasons": self.reasons,
            "retrain_requested": self.retrain_requested,
            "rule": rule.get("rule"),
            "n": rule.get("n"),
            "feature_drift": self.sections.get("psi", {}).get("alarm", []),
            "feed_results_alarm": self.sections.get("results", {}).get("alarm", False),
            "skipped_days": self.sections.get("completeness", {}).get("skipped_days", {}),
            "canary": _canary_summary(self.sections.get("canary", {})),
            "reports": self.report_keys,
        }

    def document(self) -> dict[str, Any]:
        return {**self.summary(), **self.sections}


def _canary_summary(canary: dict[str, Any]) -> dict[str, Any]:
    """The canary's step at this check and the evidence it was decided on (paired games, mean difference)."""
    evidence = canary.get("evidence") or {}
    return {k: canary.get(k) for k in ("version", "percent", "action")} | {
        "n": evidence.get("n"),
        "mean": evidence.get("mean"),
    }


def check_drift(settings: DriftSettings, *, run_date: dt.date, metrics: Metrics | None = None) -> DriftReport:
    store = ArtifactStore(settings.nbaml_bucket)
    log = PredictionLog(settings.predictions_table)
    active = parameters.read(settings.active_model_param)
    report = DriftReport(run_date=run_date, active=active)
    if active == parameters.NONE:
        report.reasons.append("no active model")
        return report
    bundle = ModelBundle.from_files(store.read_bundle_files(active), expected_version=active)
    meta = bundle.metadata

    # Each role's resolved predictions are read once (an index query each) and every section is computed
    # from them in memory. A role that held no version in the window is not queried at all.
    since = run_date - dt.timedelta(days=PSI_DAYS)
    window_start = since - dt.timedelta(days=ROLLING_DAYS)
    complete = Completeness(GameHistory(store).load_calendar())
    by_role, versioned = _resolved(settings, log, active, (window_start, run_date), complete)
    resolved = sorted(versioned, key=lambda i: i["resolved_key"])  # oldest first
    pairs = [(float(i["probability"]), bool(i["home_won"])) for i in resolved]
    scores = score([w for _, w in pairs], [p for p, _ in pairs]).as_dict() if pairs else None
    report.sections["performance"] = _performance(scores, meta)
    _apply_rule(settings, report, resolved, meta)

    report.sections["calibration"] = {
        "n": len(pairs),
        "ece": scores["ece"] if scores else None,
        "curve": scores["calibration"] if scores else [],
    }

    recent = [i for i in by_role["champion"] if i["game_date"] >= since.isoformat()]
    report.sections["psi"] = _feature_drift(by_role["champion"], run_date, bundle, settings.psi_alarm)
    week = _week_of_games(settings, run_date, complete)
    report.sections["coverage"] = _coverage(week, by_role["champion"])
    report.sections["results"] = _results(week, meta)
    report.sections["latency"] = _latency(recent, run_date)
    report.sections["challengers"] = _challengers(by_role, active, since)
    report.sections["completeness"] = complete.record()
    # The canary is judged (and stepped, promoted or aborted) before the report is written, so it says what was done.
    report.sections |= {"rolling": _rolling_accuracy(by_role), "canary": judge_canary(settings, run_date).as_dict()}

    if report.drift:
        report.retrain_requested = _request_retrain(settings, run_date, report.reasons)
    _publish(store, report)
    _emit(metrics, report)
    logger.info("drift check", extra=report.summary())
    return report


def _resolved(
    settings: DriftSettings,
    log: PredictionLog,
    active: str,
    window: tuple[dt.date, dt.date],
    complete: Completeness,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Each role's resolved predictions of the window's complete days, and the active version's champion ones
    (all of them, from before the window too when the version is older than it)."""
    start, run_date = window
    by_role = {
        role: complete.only(log.resolved(role=role, since=start, until=run_date), _day_of)
        if _held_since(settings, role, start)
        else []
        for role in ROLES
    }
    deployed = str(ModelRegistry(settings.model_versions_table).get(active).get("deployed_at") or "")
    if deployed[:10] >= start.isoformat():
        return by_role, [i for i in by_role["champion"] if i["version"] == active]  # all of it is in the window
    champion = [i for i in log.resolved(version=active, until=run_date) if i.get("role") == "champion"]
    return by_role, complete.only(champion, _day_of)


def _day_of(item: dict[str, Any]) -> dt.date:
    return dt.date.fromisoformat(item["game_date"])


def _apply_rule(settings: DriftSettings, report: DriftReport, resolved: list[dict[str, Any]], meta: dict) -> None:
    """The chosen performance rule and the other one, on the games since the evidence last restarted."""
    registry = ModelRegistry(settings.model_versions_table)
    start = _evidence_start(registry, report.active, report.run_date, resolved)
    seed = rules.seed_rule(
        [bool(i["correct"]) for i in resolved[start:]],
        meta.get("baseline_accuracy", meta["metrics"]["accuracy"]),
        settings.drift_threshold,
        settings.drift_window,
    )
    sequential = rules.sequential_rule([(float(i["probability"]), bool(i["home_won"])) for i in resolved], start)
    chosen, other = (sequential, seed) if settings.drift_rule == "sequential" else (seed, sequential)
    since = resolved[start]["game_date"] if start < len(resolved) else None
    report.sections["rule"] = chosen.__dict__ | {"evidence_since": since}
    report.sections["other_rule"] = other.__dict__
    if chosen.fired:
        report.drift = True
        report.reasons.append(f"{chosen.rule} rule: {chosen.detail}")
        _restart_evidence(registry, report.active, report.run_date, resolved)


def _evidence_marker(version: str) -> str:
    return f"drift-evidence#{version}"


def _evidence_start(registry: ModelRegistry, version: str, run_date: dt.date, resolved: list[dict[str, Any]]) -> int:
    """Index of the first game the rule may count: the one after the last firing's newest game.

    A re-run of a check that fired (same or earlier run date) counts from where that check counted, so a
    redelivered event gives the same verdict.
    """
    marker = registry.marker(_evidence_marker(version)) or {}
    after = marker.get("after", "")
    if marker and run_date.isoformat() <= str(marker.get("run_date")):
        after = marker.get("previous_after", "")
    return sum(1 for i in resolved if i["resolved_key"] <= after) if after else 0


def _restart_evidence(registry: ModelRegistry, version: str, run_date: dt.date, resolved: list[dict[str, Any]]) -> None:
    """After a firing the evidence restarts (rules module docstring): the next check counts newer games only."""
    marker = registry.marker(_evidence_marker(version)) or {}
    if marker and run_date.isoformat() <= str(marker.get("run_date")):
        return  # a re-run: the restart was recorded by the check that fired first
    registry.put_marker(
        _evidence_marker(version),
        {
            "after": resolved[-1]["resolved_key"],
            "run_date": run_date.isoformat(),
            "previous_after": marker.get("after", ""),
        },
    )


def _latency(recent: list[dict[str, Any]], run_date: dt.date) -> dict[str, Any]:
    """p50 and p99 of the champion's scoring time over the last seven days."""
    week = [i for i in recent if i["game_date"] >= (run_date - dt.timedelta(days=7)).isoformat()]
    latencies = [float(i["latency_ms"]) for i in week if "latency_ms" in i]
    return {
        "n": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5), 4) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 4) if latencies else None,
    }


def _held_since(settings: DriftSettings, role: str, start: dt.date) -> bool:
    """Whether a role's parameter named a version at any time since ``start`` (the champion always does)."""
    if role == "champion":
        return True
    name = settings.canary_model_param if role == "canary" else settings.shadow_model_param
    changes = parameters.history(name)  # oldest first
    before = [c for c in changes if c.modified_at.date() < start]
    in_force = before[-1:] + [c for c in changes if c.modified_at.date() >= start]
    return any(c.value != parameters.NONE for c in in_force)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def _performance(scores: dict[str, Any] | None, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": scores["n"] if scores else 0,
        "accuracy": scores["accuracy"] if scores else None,
        "log_loss": scores["log_loss"] if scores else None,
        "baseline_accuracy": meta.get("baseline_accuracy"),
        "baseline_log_loss": meta["metrics"]["log_loss"],
    }


def _feature_drift(champion: list[dict[str, Any]], run_date: dt.date, bundle: ModelBundle, alarm: float) -> dict:
    """PSI of each feature over the last PSI_DAYS of requests against the PSI_DAYS before (``rules.feature_drift``).

    Inputs do not depend on which version served them, so every champion request counts (the features are
    logged in the serving feature order, the bundle's); rows logged for another feature list (an older
    version's) cannot be binned against this reference.
    """
    width = len(bundle.feature_names)
    since = (run_date - dt.timedelta(days=PSI_DAYS)).isoformat()
    before_since = (run_date - dt.timedelta(days=2 * PSI_DAYS)).isoformat()
    usable = [i for i in champion if len(i.get("features") or ()) == width]
    recent = [i for i in usable if i["game_date"] >= since]
    before = [i for i in usable if before_since <= i["game_date"] < since]
    result = rules.feature_drift(
        [[float(v) for v in i["features"]] for i in recent],
        [[float(v) for v in i["features"]] for i in before],
        bundle.feature_names,
        bundle.metadata.get("feature_distribution", {}),
        alarm,
    )
    return result | {"days": PSI_DAYS, "threshold": alarm}


def _week_of_games(settings: DriftSettings, run_date: dt.date, complete: Completeness) -> list[Game]:
    """Last week's finished games, of its complete days: what coverage and the results check read."""
    games = GameStore(settings.games_table)
    week = _days(run_date - dt.timedelta(days=rules.RESULTS_DAYS), run_date - dt.timedelta(days=1))
    return [g for day in complete.only(week, lambda d: d) for g in games.on_date(day) if g.is_final]


def _coverage(week: list[Game], champion: list[dict[str, Any]]) -> dict[str, Any]:
    """Share of last week's finished games (of complete days) that the champion predicted before tip-off."""
    predicted_ids = {i["game_id"] for i in champion}
    ids = {g.game_id for g in week}
    finished, predicted = len(ids), len(ids & predicted_ids)
    return {"finished": finished, "predicted": predicted, "share": round(predicted / finished, 4) if finished else None}


def _results(week: list[Game], meta: dict[str, Any]) -> dict[str, Any]:
    """The week's regular-season results against the training window's (``rules.results_drift``)."""
    margins = rules.home_margins(week)
    return rules.results_drift(margins, meta.get("results_reference") or {}) | {"days": rules.RESULTS_DAYS}


def _challengers(by_role: dict[str, list[dict[str, Any]]], active: str, since: dt.date) -> list[dict[str, Any]]:
    """Champion against every other version logged since ``since``, on the games both scored."""
    floor = since.isoformat()
    others: dict[str, dict[str, dict[str, Any]]] = {}
    for role in ("canary", "shadow"):
        for item in by_role[role]:
            if item["game_date"] >= floor:
                others.setdefault(item["version"], {})[item["game_id"]] = item
    champion = {i["game_id"]: i for i in by_role["champion"] if i["version"] == active and i["game_date"] >= floor}
    result = []
    for version, items in sorted(others.items()):
        shared = sorted(set(items) & set(champion))
        if not shared:
            continue
        row: dict[str, Any] = {"version": version, "n": len(shared)}
        outcomes = [bool(champion[g]["home_won"]) for g in shared]
        for label, source in (("champion", champion), ("challenger", items)):
            p = [float(source[g]["probability"]) for g in shared]
            row[f"{label}_log_loss"] = round(log_loss(outcomes, p), DIGITS)
            row[f"{label}_accuracy"] = round(accuracy(outcomes, p), DIGITS)
        result.append(row)
    return result


def _rolling_accuracy(by_role: dict[str, list[dict[str, Any]]]) -> dict[str, list]:
    """Weekly accuracy per version and role: the report's line plot."""
    weekly: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for role, items in by_role.items():
        for item in items:
            week = dt.date.fromisoformat(item["game_date"]).isocalendar()
            cell = weekly[f"{item['version']} ({role})"][f"{week.year}-W{week.week:02d}"]
            cell[0] += int(bool(item["correct"]))
            cell[1] += 1
    return {
        series: [{"week": w, "n": c[1], "accuracy": round(c[0] / c[1], 4)} for w, c in sorted(cells.items())]
        for series, cells in weekly.items()
    }


def _request_retrain(settings: DriftSettings, run_date: dt.date, reasons: list[str]) -> bool:
    week = run_date.isocalendar()
    marker = f"drift-retrain#{week.year}-W{week.week:02d}"
    registry = ModelRegistry(settings.model_versions_table)
    if not registry.mark_once(marker, {"reasons": reasons, "run_date": run_date.isoformat()}):
        return False  # already requested this week (a redelivered or re-run event)
    request = RetrainRequest(
        trigger=RetrainTrigger.DRIFT,
        reason="; ".join(reasons)[:500],
        requested_by="drift_check",
        requested_at=league_time(run_date, dt.time(4, 30)),
        force=True,
    )
    send_retrain_request(settings.retrain_queue_url, request)
    return True


def _publish(store: ArtifactStore, report: DriftReport) -> None:
    document = report.document()
    html = render_html(document).encode()
    for run_date in (report.run_date, None):  # the dated report, then its copy under reports/latest/
        report.report_keys.append(report_key(DRIFT_JSON, run_date))
        store.put_json(report_key(DRIFT_JSON, run_date), document | {"reports": report.report_keys[:1]})
        store.put_bytes(report_key(DRIFT_HTML, run_date), html, "text/html; charset=utf-8")
        report.report_keys.append(report_key(DRIFT_HTML, run_date))


def _emit(metrics: Metrics | None, report: DriftReport) -> None:
    if metrics is None:
        return
    metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(report.drift))
    metrics.add_metric(name="FeatureDriftDetected", unit=MetricUnit.Count, value=len(report.sections["psi"]["alarm"]))
    metrics.add_metric(name="FeedResultsDrift", unit=MetricUnit.Count, value=int(report.sections["results"]["alarm"]))
    ece = report.sections["calibration"]["ece"]
    if ece is not None:
        metrics.add_metric(name="CalibrationECE", unit=MetricUnit.NoUnit, value=ece)
    performance = report.sections["performance"]
    if performance["accuracy"] is not None:
        metrics.add_metric(name="LiveAccuracy", unit=MetricUnit.Percent, value=performance["accuracy"] * 100)
    canary = report.sections["canary"]
    if canary["version"] is not None:
        metrics.add_metric(name="CanaryAborted", unit=MetricUnit.Count, value=int(canary["action"] == "aborted"))
        if canary["evidence"] and canary["evidence"]["mean"] is not None:
            metrics.add_metric(name="CanaryLogLossDifference", unit=MetricUnit.NoUnit, value=canary["evidence"]["mean"])
    coverage = report.sections["coverage"]["share"]
    if coverage is not None:
        metrics.add_metric(name="PredictionCoverage", unit=MetricUnit.Percent, value=coverage * 100)


__all__ = ["DriftReport", "NbamlError", "check_drift"]
