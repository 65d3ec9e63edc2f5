"""The gate on Checkov's scan of the built template (``make security``): nothing failed, every skip has a reason.

Checkov exits 0 on a template it could not parse (0 passed, 0 failed, a parsing error) and accepts a skip
with no comment, so its exit code alone proves neither. This reads its JSON report (``-o json``) and fails,
exit 1, on a failed check, a parsing error, a scan that saw no resource, or a skip whose reason is missing
or shorter than a sentence; otherwise it prints the counts and each accepted finding with its reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What Checkov writes for a skip without a comment; a reason is at least a short sentence.
NO_COMMENT = "No comment provided"
MIN_REASON_CHARS = 40


@dataclass(frozen=True)
class Verdict:
    """The scan's counts, and what makes it fail (empty when it passes)."""

    passed: int
    failed: int
    skipped: int
    problems: list[str]
    skips: list[tuple[str, str, str]]  # (check id, resource, reason)

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(report: Mapping[str, Any] | list[Mapping[str, Any]]) -> Verdict:
    """The verdict on one Checkov JSON report (a list of them when several frameworks ran: all must pass)."""
    reports = report if isinstance(report, list) else [report]
    problems: list[str] = []
    skips: list[tuple[str, str, str]] = []
    passed = failed = skipped = 0
    for one in reports:
        summary, results = one.get("summary", {}), one.get("results", {})
        passed, failed, skipped = passed + summary["passed"], failed + summary["failed"], skipped + summary["skipped"]
        if summary.get("parsing_errors"):
            problems.append(f"{summary['parsing_errors']} file(s) Checkov could not parse: {results['parsing_errors']}")
        if not summary.get("resource_count"):
            problems.append("Checkov saw no resource: the scan checked nothing")
        for check in results.get("failed_checks", []):
            problems.append(f"failed: {check['check_id']} on {check['resource']} ({check['check_name']})")
        for check in results.get("skipped_checks", []):
            reason = str(check["check_result"].get("suppress_comment") or "").strip()
            skips.append((check["check_id"], check["resource"], reason))
            if reason == NO_COMMENT or len(reason) < MIN_REASON_CHARS:
                problems.append(f"skipped without a reason: {check['check_id']} on {check['resource']} ({reason!r})")
    return Verdict(passed, failed, skipped, problems, sorted(skips))


def accepted(skips: list[tuple[str, str, str]]) -> dict[tuple[str, str], list[str]]:
    """The skips grouped by check and reason: (check id, reason) -> the resources it covers."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for check_id, resource, reason in skips:
        grouped.setdefault((check_id, reason), []).append(resource)
    return grouped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="Checkov's JSON report (checkov ... -o json)")
    args = parser.parse_args(argv)
    verdict = judge(json.loads(args.report.read_text()))
    print(f"checkov: {verdict.passed} passed, {verdict.failed} failed, {verdict.skipped} skipped")
    for (check_id, reason), resources in accepted(verdict.skips).items():
        print(f"  accepted {check_id} on {', '.join(r.rsplit('.', 1)[-1] for r in resources)}: {reason}")
    for problem in verdict.problems:
        print(f"checkov: {problem}", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
