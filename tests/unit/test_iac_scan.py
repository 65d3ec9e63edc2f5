"""make security's gate on Checkov's report: a failed check, an unparsed template, an empty scan or a skip
without a reason fails it; a scan whose every finding is fixed or justified passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import iac_scan

REASON = "Invoked only synchronously, by the HTTP API: a failure is the caller's 5xx, and no event is queued."


def _check(check_id: str, resource: str, result: str, comment: str | None = None) -> dict[str, Any]:
    check_result: dict[str, Any] = {"result": result}
    if comment is not None:
        check_result["suppress_comment"] = comment
    return {
        "check_id": check_id,
        "resource": resource,
        "check_name": f"the {check_id} check",
        "check_result": check_result,
    }


def _report(
    *,
    passed: int = 2,
    failed: list[Any] | None = None,
    skipped: list[Any] | None = None,
    parsing: list[str] | None = None,
) -> dict[str, Any]:
    failed, skipped, parsing = failed or [], skipped or [], parsing or []
    return {
        "check_type": "cloudformation",
        "results": {
            "passed_checks": [
                _check("CKV_AWS_115", f"AWS::Serverless::Function.F{i}", "PASSED") for i in range(passed)
            ],
            "failed_checks": failed,
            "skipped_checks": skipped,
            "parsing_errors": parsing,
        },
        "summary": {
            "passed": passed,
            "failed": len(failed),
            "skipped": len(skipped),
            "parsing_errors": len(parsing),
            "resource_count": 0 if parsing else 3,
            "checkov_version": "3.3.30",
        },
    }


def test_given_every_finding_fixed_or_skipped_with_a_reason_then_the_gate_passes_and_prints_the_reasons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a report with two skips of one check for one reason
    skips = [_check("CKV_AWS_116", f"AWS::Serverless::Function.{f}", "SKIPPED", REASON) for f in ("Predict", "Auth")]
    report = tmp_path / "checkov.json"
    report.write_text(json.dumps(_report(skipped=skips)))
    # When / Then: it passes and names each accepted finding once, with its resources and its reason
    assert iac_scan.main([str(report)]) == 0
    out = capsys.readouterr().out
    assert "2 passed, 0 failed, 2 skipped" in out
    assert f"accepted CKV_AWS_116 on Auth, Predict: {REASON}" in out


@pytest.mark.parametrize(
    ("report", "problem"),
    [
        (
            _report(failed=[_check("CKV_AWS_27", "AWS::SQS::Queue.Q", "FAILED")]),
            "failed: CKV_AWS_27 on AWS::SQS::Queue.Q",
        ),
        (_report(passed=0, parsing=["template.yaml"]), "could not parse"),
        (
            _report(skipped=[_check("CKV_AWS_18", "AWS::S3::Bucket.B", "SKIPPED", "No comment provided")]),
            "without a reason",
        ),
        (_report(skipped=[_check("CKV_AWS_18", "AWS::S3::Bucket.B", "SKIPPED", "not needed")]), "without a reason"),
        (_report(skipped=[_check("CKV_AWS_18", "AWS::S3::Bucket.B", "SKIPPED")]), "without a reason"),
    ],
    ids=["failed-check", "parsing-error", "no-comment", "too-short", "comment-missing"],
)
def test_given_a_finding_neither_fixed_nor_justified_then_the_gate_fails_naming_it(
    report: dict[str, Any], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checkov.json"
    path.write_text(json.dumps(report))
    assert iac_scan.main([str(path)]) == 1
    assert problem in capsys.readouterr().err


def test_given_several_frameworks_then_each_report_must_pass() -> None:
    # Checkov writes a list when more than one framework ran; one failing report fails the verdict
    failing = _report(failed=[_check("CKV_AWS_95", "AWS::Serverless::HttpApi.Api", "FAILED")])
    verdict = iac_scan.judge([_report(), failing])
    assert not verdict.ok and (verdict.passed, verdict.failed) == (4, 1)
