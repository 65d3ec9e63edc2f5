"""The monthly AWS bill of a season, from what the SAM replay measured.

What is measured, and where:
- Lambda: every REPORT line (billed duration, memory size) of every invocation in SAM's containers;
- DynamoDB, S3, SQS: every request a function sent to the emulator (moto's recorder; each function calls
  with its own access key, so each request has its caller), DynamoDB write units from each item's size;
- CloudWatch Logs: the bytes each function logged (SAM prints what Lambda would ship to CloudWatch);
  custom metrics: the distinct EMF metrics in those logs; alarms: template.yaml's;
- S3 storage: the bucket's bytes (every object version) when the replay ends.

How it is scaled to a month of a season at ``predictions_per_day``: the scheduled functions by calendar
(their count over the replay's days, times 30.4 days), predict by predictions: every prediction is priced
as one HTTP request billed at the replay's mean billed duration per request, which was a slate of games:
an upper bound for a single game. Prices are us-east-1 list prices, read on ``PRICES_READ_ON`` from the
pages in ``SOURCES``; a second total subtracts the always-free allowances (12-month free tiers excluded).
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.samcli.sam import Report

PRICES_READ_ON = "2026-12-01"
REGION = "us-east-1"
DAYS_PER_MONTH = 365 / 12
SOURCES = {
    "lambda": "https://aws.amazon.com/lambda/pricing/ (archived 2026-06-18)",
    "api": "https://aws.amazon.com/api-gateway/pricing/",
    "dynamodb": "https://aws.amazon.com/dynamodb/pricing/on-demand/ (after the 2024-11-01 on-demand price cut)",
    "s3": "https://aws.amazon.com/s3/pricing/",
    "cloudwatch": "https://aws.amazon.com/cloudwatch/pricing/",
    "xray": "https://aws.amazon.com/xray/pricing/",
    "sqs": "https://aws.amazon.com/sqs/pricing/",
}


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    free_per_month: float = 0.0  # the always-free allowance, in units


PRICES = {
    "lambda_gb_s": Price(0.0000166667, "GB-s", "lambda", free_per_month=400_000),
    "lambda_requests": Price(0.20 / 1e6, "request", "lambda", free_per_month=1_000_000),
    "http_api_requests": Price(1.00 / 1e6, "request", "api"),
    "dynamodb_wru": Price(0.625 / 1e6, "write request unit", "dynamodb"),
    "dynamodb_rru": Price(0.125 / 1e6, "read request unit", "dynamodb"),
    "s3_put": Price(0.005 / 1000, "PUT/COPY/POST/LIST", "s3"),
    "s3_get": Price(0.0004 / 1000, "GET/HEAD", "s3"),
    "s3_storage": Price(0.023, "GB-month", "s3"),
    "logs_ingest": Price(0.50, "GB ingested", "cloudwatch", free_per_month=5),
    "logs_storage": Price(0.03, "GB-month stored", "cloudwatch"),
    "custom_metrics": Price(0.30, "metric-month", "cloudwatch", free_per_month=10),
    "alarms": Price(0.10, "alarm metric-month", "cloudwatch", free_per_month=10),
    "xray_traces": Price(5.00 / 1e6, "trace recorded", "xray", free_per_month=100_000),
    "sqs_requests": Price(0.40 / 1e6, "request", "sqs", free_per_month=1_000_000),
}
# Lambda's SQS event source mapping long-polls a standard queue with five pollers, 20-second polls.
ESM_POLLS_PER_MONTH = 5 * 3 * 60 * 24 * DAYS_PER_MONTH
LOG_RETENTION_DAYS = 90  # template.yaml's prod retention


# ---------------------------------------------------------------- the emulator's recording, classified
@dataclass(frozen=True)
class Call:
    caller: str  # the function's logical id
    service: str
    operation: str
    units: float  # request units it is billed by (DynamoDB), or 1


_CREDENTIAL = re.compile(r"Credential=([^/]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
_DYNAMO_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}


def classify(entry: Mapping[str, Any], caller_of: Any) -> Call | None:
    """One recorded request as the call AWS would bill, or None if no function of ours made it."""
    headers = {k.lower(): v for k, v in (entry.get("headers") or {}).items()}
    match = _CREDENTIAL.search(headers.get("authorization", ""))
    if match is None:
        return None
    caller = caller_of(match[1])
    if caller is None:
        return None
    service = match[2]
    target = headers.get("x-amz-target", "")
    operation = target.rpartition(".")[2] if target else _rest_operation(service, entry)
    return Call(caller, service, operation, _units(service, operation, request_body(entry)))


def request_body(entry: Mapping[str, Any]) -> Any:
    """A recorded request's JSON body (decoded when the recorder kept it base64), or {}."""
    raw = entry.get("body") or ""
    if entry.get("body_encoded"):
        raw = base64.b64decode(raw).decode(errors="replace")
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def _rest_operation(service: str, entry: Mapping[str, Any]) -> str:
    method, url = entry.get("method", ""), entry.get("url", "")
    if service == "s3":
        if method == "GET" and ("list-type=" in url or (url.rstrip("/").count("/") <= 3 and "?" in url)):
            return "ListObjects"
        return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject", "DELETE": "DeleteObject"}.get(
            method, f"{method}Object"
        )
    return method


def _item_kb(item: Any) -> float:
    return len(json.dumps(item, separators=(",", ":"))) / 1024


def _units(service: str, operation: str, body: Any) -> float:
    """DynamoDB request units (a write unit per KB of item, rounded up; half a read unit per eventually
    consistent 4 KB read; a Query priced at its minimum, one page of 4 KB); 1 for every other request."""
    if service != "dynamodb" or not isinstance(body, dict):
        return 1.0
    if operation == "PutItem":
        return float(max(1, math.ceil(_item_kb(body.get("Item", {})))))
    if operation in _DYNAMO_WRITES:
        return 1.0
    if operation == "BatchWriteItem":
        requests = [r for table in (body.get("RequestItems") or {}).values() for r in table]
        return float(sum(max(1, math.ceil(_item_kb((r.get("PutRequest") or {}).get("Item", {})))) for r in requests))
    if operation == "TransactWriteItems":
        return 2.0 * len(body.get("TransactItems") or [])
    if operation in ("GetItem", "Query", "Scan"):
        return 1.0 if body.get("ConsistentRead") else 0.5
    if operation == "BatchGetItem":
        return 0.5 * sum(len(t.get("Keys") or []) for t in (body.get("RequestItems") or {}).values())
    return 0.0  # DescribeTable and the like are not billed


def is_write(call: Call) -> bool:
    return call.operation in {*_DYNAMO_WRITES, "BatchWriteItem", "TransactWriteItems"}


# ---------------------------------------------------------------- logs
_EMF_KEY = "_aws"


_SAM_CHATTER = (
    "Invoking ",
    "Lambda function ",
    "Mounting ",
    "Building image",
    "Requested to skip",
    "No current session",
)


def log_volume(text: str) -> tuple[int, set[tuple[str, str, tuple[str, ...]]]]:
    """Bytes of function output (what Lambda ships to CloudWatch Logs: the functions' JSON lines and the
    START/END/REPORT lines) and the distinct EMF metrics in it; SAM's own lines are left out."""
    size, metrics = 0, set()
    for line in text.splitlines():
        if line.startswith(("START RequestId:", "END RequestId:", "REPORT RequestId:")) or line.startswith("{"):
            size += len(line.encode()) + 1
            if _EMF_KEY in line:
                metrics |= _emf_metrics(line)
    return size, metrics


def _emf_metrics(line: str) -> set[tuple[str, str, tuple[str, ...]]]:
    try:
        blob = json.loads(line)
    except ValueError:
        return set()
    found = set()
    for directive in (blob.get(_EMF_KEY) or {}).get("CloudWatchMetrics") or []:
        for dimensions in directive.get("Dimensions") or [[]]:
            values = tuple(f"{d}={blob.get(d)}" for d in dimensions)
            for metric in directive.get("Metrics") or []:
                found.add((directive.get("Namespace", ""), metric.get("Name", ""), values))
    return found


# ---------------------------------------------------------------- usage and the bill
@dataclass
class Usage:
    """What one SAM replay measured."""

    days: int
    predict_function: str
    predict_requests: int
    predictions: int
    reports: list[Report]
    calls: list[Call]
    log_bytes: dict[str, int]
    metrics: set[tuple[str, str, tuple[str, ...]]]
    s3_bytes: int
    alarms: int


@dataclass
class Line:
    item: str
    quantity: float
    price: str
    usd: float
    free_usd: float = 0.0


@dataclass
class Estimate:
    predictions_per_day: int
    usage: Usage
    lines: list[Line] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    @property
    def total_after_free_tier(self) -> float:
        return sum(max(0.0, line.usd - line.free_usd) for line in self.lines)

    def render(self) -> str:
        from infra import tables

        rows = [[li.item, _quantity(li.quantity), li.price, f"{li.usd:.2f}"] for li in self.lines]
        rows.append(["total (list prices)", "", "", f"{self.total:.2f}"])
        rows.append(["total after the always-free allowances", "", "", f"{self.total_after_free_tier:.2f}"])
        u = self.usage
        head = (
            f"Monthly AWS cost ({REGION}) of a season at {self.predictions_per_day:,} predictions a day, from "
            f"{len(u.reports)} REPORT lines and {len(u.calls)} AWS calls measured over {u.days} replay days; "
            f"list prices read {PRICES_READ_ON} from:\n"
            + "\n".join(f"  {name}: {url}" for name, url in SOURCES.items())
        )
        return head + "\n" + tables.table(["item", "per month", "unit price (USD)", "USD/month"], rows)


def _quantity(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def estimate(usage: Usage, predictions_per_day: int = 10_000) -> Estimate:
    """The monthly bill (see the module docstring for what is measured and how it is scaled)."""
    month_predictions = predictions_per_day * DAYS_PER_MONTH
    per_prediction = month_predictions / max(usage.predictions, 1)
    per_request = month_predictions / max(usage.predict_requests, 1)
    calendar = DAYS_PER_MONTH / usage.days

    def scale(function: str, *, by_request: bool = False) -> float:
        if function == usage.predict_function:
            return per_request if by_request else per_prediction
        return calendar

    gb_s = requests = 0.0
    for function, reports in _by_function(usage.reports).items():
        gb_s += _lambda_gb_s(
            reports, predicted=function == usage.predict_function, per_request=per_request, calendar=calendar
        )
        requests += len(reports) * scale(function, by_request=True)
    dynamo: Counter[str] = Counter()
    s3: Counter[str] = Counter()
    sqs = 0.0
    for call in usage.calls:
        # DynamoDB follows predictions (one logged item each); S3 and SQS follow requests (the upper bound).
        factor = scale(call.caller, by_request=call.service != "dynamodb")
        if call.service == "dynamodb":
            dynamo["wru" if is_write(call) else "rru"] += call.units * factor
        elif call.service == "s3":
            s3["get" if call.operation in ("GetObject", "HeadObject") else "put"] += factor
        elif call.service == "sqs":
            sqs += factor
    logs_gb = sum(b * scale(f, by_request=True) for f, b in usage.log_bytes.items()) / 1e9
    lines = [
        _line("Lambda duration (billed ms x memory)", gb_s, "lambda_gb_s"),
        _line("Lambda requests", requests, "lambda_requests"),
        _line("HTTP API requests (one a prediction)", month_predictions, "http_api_requests"),
        _line("DynamoDB on-demand writes", dynamo["wru"], "dynamodb_wru"),
        _line("DynamoDB on-demand reads", dynamo["rru"], "dynamodb_rru"),
        _line("S3 PUT/LIST requests", s3["put"], "s3_put"),
        _line("S3 GET requests", s3["get"], "s3_get"),
        _line("S3 storage (every version)", usage.s3_bytes / 1e9, "s3_storage"),
        _line("SQS requests (sent, and the event source mapping's polls)", sqs + ESM_POLLS_PER_MONTH, "sqs_requests"),
        _line("CloudWatch Logs ingestion (GB)", logs_gb, "logs_ingest"),
        _line(
            f"CloudWatch Logs storage ({LOG_RETENTION_DAYS} days kept, GB)",
            logs_gb * LOG_RETENTION_DAYS / DAYS_PER_MONTH,
            "logs_storage",
        ),
        _line("CloudWatch custom metrics (EMF)", len(usage.metrics), "custom_metrics"),
        _line("CloudWatch alarms", usage.alarms, "alarms"),
        _line("X-Ray traces (Tracing: Active, every invocation)", requests, "xray_traces"),
    ]
    return Estimate(predictions_per_day=predictions_per_day, usage=usage, lines=lines)


# An environment of the predict function is recycled about once an hour under steady traffic (an assumption:
# AWS publishes no lifetime); each recycling is one cold start.
PREDICT_COLD_STARTS_PER_DAY = 24


def _lambda_gb_s(reports: list[Report], *, predicted: bool, per_request: float, calendar: float) -> float:
    """GB-seconds a month. A REPORT with an Init Duration is a cold start (init is billed since 2025-08-01).

    predict: every request at the mean warm duration, plus PREDICT_COLD_STARTS_PER_DAY cold starts at the
    measured extra; a scheduled function: each run at its measured duration plus the measured cold-start
    extra, because hours pass between two runs and every run starts cold on AWS.
    """
    warm = [r for r in reports if r.init_ms is None] or reports
    cold = [r for r in reports if r.init_ms is not None]
    memory_gb = reports[0].memory_mb / 1024
    warm_s = sum(r.billed_ms for r in warm) / len(warm) / 1000
    extra_s = max(0.0, sum(r.billed_ms for r in cold) / len(cold) / 1000 - warm_s) if cold else 0.0
    if predicted:
        requests = len(reports) * per_request
        return memory_gb * (requests * warm_s + PREDICT_COLD_STARTS_PER_DAY * DAYS_PER_MONTH * extra_s)
    measured = sum(r.billed_ms for r in reports) / 1000 + extra_s * (len(reports) - len(cold))
    return memory_gb * measured * calendar


def _line(item: str, quantity: float, price_key: str) -> Line:
    price = PRICES[price_key]
    usd = quantity * price.usd
    return Line(
        item, quantity, f"{price.usd:.10g} / {price.unit}", usd, free_usd=min(usd, price.free_per_month * price.usd)
    )


def _by_function(reports: Iterable[Report]) -> dict[str, list[Report]]:
    grouped: dict[str, list[Report]] = defaultdict(list)
    for report in reports:
        grouped[report.function].append(report)
    return grouped
