"""The season replay through the real runtime: every scheduled job and every slate in SAM's containers.

``SamSeasonReplay`` is ``infra.replay.SeasonReplay`` with two things swapped, nothing else: a function is
invoked through ``sam local start-lambda`` (Lambda's Invoke API, each function in a warm container built
from ``.aws-sam/build``) instead of in-process, and the slates are asked of ``sam local start-api`` (the
HTTP API's routes, Mangum, the predict container) instead of uvicorn. Backfill, the schedule clock, the
retrain queue's delivery (the twin of the SQS event source mapping, now handing each record to the
container), the report and its metrics are the in-process replay's own, so the two runtimes live the same
days on the same inputs and must agree (``tests/sam/test_replay_differential.py``).

At the end it prints the monthly AWS cost of a season (``infra.samcli.cost``) from the REPORT lines and the
AWS calls the containers made.

The predict container is another process, on the machine's clock, and the predictor needs the replay's
(``now``: which league day it is, and whether a game has started, after which nothing is logged). So the
replay names a simulated clock in the container's environment (``SIMULATED_CLOCK_PARAM``, through the
``--env-vars`` file only) and writes the instant into that SSM parameter of its emulator each time its clock
moves (``tick``), before each firing and each day's slate; the container reads it once a request
(``nbaml.serving.clock``, which says why template.yaml never sets it). Those reads are the seam's, not the
system's: AWS would never receive them, so the bill leaves them out.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import replay as rp
from infra import runtime
from infra import template as tpl
from infra.samcli import cost, sam
from infra.samcli import stack as sam_stack
from nbaml.serving import clock

REPLAY_EMULATOR = "nbaml-moto-replay"
# The simulated clock's parameter: outside /nbaml/{Stage}/, so no role of the template may read or write it.
CLOCK_PARAM = "/nbaml-local/replay/now"


@dataclass
class SamReplayResult:
    result: rp.ReplayResult
    estimate: cost.Estimate
    served: dict[str, dict[str, Any]]
    seconds: float


class SamSeasonReplay(rp.SeasonReplay):
    def __init__(self, target: sam_stack.SamStack, source: rp.Source, options: rp.ReplayOptions, hooks: Any = None):
        super().__init__(target.stack, source, options, hooks)
        self.target = target
        self.reports: list[sam.Report] = []
        self.logs: dict[str, io.StringIO] = {}
        self.api_requests = 0
        self.lambdas: sam.LambdaServer | None = None
        self.api: sam.ApiServer | None = None

    def function_extras(self) -> dict[str, dict[str, str]]:
        """What the replay sets beyond the template, per logical id: the in-process replay's ``env``, and the
        predict container's simulated clock."""
        return {lid: self.env(tpl.short_name(Path(path))) for lid, path in self.stack.function_dirs.items()}

    def env(self, function: str) -> dict[str, str]:
        extra = super().env(function)
        if function == "predict":
            extra[clock.SIMULATED_CLOCK_PARAM] = CLOCK_PARAM
        return extra

    def tick(self, instant: dt.datetime) -> None:
        """Move the clock, here and in the predict container (its parameter, written with this process's keys)."""
        super().tick(instant)
        with runtime.function_environment(self.stack.env_for("predict") | rp.QUIET):
            clock.write_instant(CLOCK_PARAM, instant)

    # -------------------------------------------------------- the two swaps
    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        assert self.lambdas is not None, "invoke runs inside run(), once start-lambda serves"
        logical_id = self.stack.function_id(function)
        invocation = self.lambdas.invoke(logical_id, event)
        self._record(logical_id, invocation.logs, invocation.report)
        return invocation.result

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        assert self.api is not None, "serving runs inside run(), once start-api serves"
        yield self.api.url

    # -------------------------------------------------------- measuring
    def predict_slate(self, client: Any, day: Any) -> None:
        before = self.slates
        super().predict_slate(client, day)
        if self.slates > before:
            self._collect_api_reports()

    def _collect_api_reports(self) -> None:
        """Every REPORT the API's containers printed since the last slate, each told apart by its memory
        size (the predict and authorizer functions differ in it)."""
        assert self.api is not None
        by_memory = {int(self.stack.function_settings[lid]["MemorySize"]): lid for lid in self._api_functions()}
        seen = io.StringIO()
        self.api.wait_for_report("", seen, timeout=5.0)  # the slate's REPORT reaches SAM's output after its answer
        for line in seen.getvalue().splitlines():
            if (report := sam.Report.parse("", line)) is not None:
                function = by_memory.get(report.memory_mb, "unknown")
                self.reports.append(dataclasses.replace(report, function=function))
                self.api_requests += function == self.stack.function_id("predict")
        self.logs.setdefault(self.stack.function_id("predict"), io.StringIO()).write(seen.getvalue())
        self.function_log.write(seen.getvalue())

    def _api_functions(self) -> list[str]:
        return [self.stack.function_id("predict"), self.stack.function_id("authorizer")]

    def _record(self, logical_id: str, logs: str, report: sam.Report | None) -> None:
        self.function_log.write(logs)
        self.logs.setdefault(logical_id, io.StringIO()).write(logs)
        if report is not None:
            self.reports.append(report)

    def backfill(self) -> dict[str, Any]:
        report = super().backfill()
        self.target.start_recording()  # from here on, every AWS call a function makes is kept for the bill
        return report

    # -------------------------------------------------------- the run
    def run(self) -> rp.ReplayResult:
        sam_stack.refresh(self.target, self.function_extras())
        started = time.perf_counter()
        print("starting sam local start-lambda and start-api (warm containers) ...", flush=True)
        with sam.LambdaServer(self.target.local) as lambdas, sam.ApiServer(self.target.local) as api:
            self.lambdas, self.api = lambdas, api
            self.timings["setup"] += time.perf_counter() - started
            try:
                return super().run()
            finally:
                self.lambdas = self.api = None

    def usage(self, calls: list[dict[str, Any]]) -> cost.Usage:
        billed = [e for e in calls if not _reads_the_clock(e)]
        classified = [c for e in billed if (c := cost.classify(e, sam_stack.caller_of)) is not None]
        log_bytes, metrics = {}, set()
        for function, text in self.logs.items():
            size, found = cost.log_volume(text.getvalue())
            log_bytes[function] = size
            metrics |= found
        template = tpl.load(self.stack.template_path)
        return cost.Usage(
            days=len(self.days()),
            predict_function=self.stack.function_id("predict"),
            predict_requests=self.api_requests,
            predictions=len(self.served),
            reports=list(self.reports),
            calls=classified,
            log_bytes=log_bytes,
            metrics=metrics,
            s3_bytes=_bucket_bytes(self.stack),
            alarms=len(tpl.resources_of_type(template, "AWS::CloudWatch::Alarm")),
        )


def _reads_the_clock(entry: dict[str, Any]) -> bool:
    """A recorded request for the simulated clock's parameter: the local seam's, never sent on AWS."""
    body = cost.request_body(entry)
    return isinstance(body, dict) and body.get("Name") == CLOCK_PARAM


def _bucket_bytes(stack: Any) -> int:
    from infra import emulator as emu

    s3 = emu.client("s3", stack.endpoint)
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=stack.resource("ArtifactBucket"))
    return sum(v["Size"] for page in pages for v in page.get("Versions", []))


# ---------------------------------------------------------------- entry points
def run(options: rp.ReplayOptions, hooks: Any = None, predictions_per_day: int = 10_000) -> SamReplayResult:
    """Replay a season through SAM's containers against the emulator container; print the result and the bill."""
    started = time.perf_counter()
    source = rp._source(options)
    with sam_stack.deployed({"PromotionMode": options.promotion}, name=REPLAY_EMULATOR) as target:
        replay = SamSeasonReplay(target, source, options, hooks)
        replay.timings["setup"] = time.perf_counter() - started
        result = replay.run()
        calls = target.stop_recording()
        estimate = cost.estimate(replay.usage(calls), predictions_per_day)
    text = estimate.render()
    print("\n" + text)
    out = Path(options.out_dir)
    (out / "cost.md").write_text(text + "\n")
    (out / "cost.json").write_text(
        json.dumps(
            {
                "predictions_per_day": predictions_per_day,
                "total_usd": round(estimate.total, 2),
                "total_after_free_tier_usd": round(estimate.total_after_free_tier, 2),
                "prices_read_on": cost.PRICES_READ_ON,
                "lines": [dataclasses.asdict(line) for line in estimate.lines],
                "invocations": len(estimate.usage.reports),
                "aws_calls": len(estimate.usage.calls),
            },
            indent=2,
        )
        + "\n"
    )
    return SamReplayResult(
        result=result, estimate=estimate, served=replay.served, seconds=time.perf_counter() - started
    )


def _cli(args: argparse.Namespace) -> int:
    options = rp.ReplayOptions(
        days=args.days,
        quick=args.quick,
        seed=args.seed,
        promotion=args.promotion,
        out_dir=args.out_dir,
        progress=args.progress,
    )
    outcome = run(options, predictions_per_day=args.predictions_per_day)
    print(f"\nSAM replay: {outcome.seconds:.0f} s; reports in {options.out_dir}")
    return 1 if outcome.result.failures else 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="the season replay with every function and slate in SAM's containers, and its monthly AWS cost",
        description="Backfill, train v1, then live the season day by day: the schedules fire the built functions "
        "through `sam local start-lambda`, a client asks `sam local start-api` for each slate. Prints the replay's "
        "report and the monthly AWS cost from the measured REPORT lines and AWS calls.",
    )
    parser.add_argument("--days", type=int, default=30, help="days of the season to replay (default 30)")
    parser.add_argument("--quick", action="store_true", help="one-point training grid (smoke runs)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic league")
    parser.add_argument("--promotion", choices=["active", "canary", "shadow"], default="active")
    parser.add_argument("--predictions-per-day", type=int, default=10_000, help="traffic the cost is priced at")
    parser.add_argument("--out", dest="out_dir", type=Path, default=rp.REPO_ROOT / "reports" / "sam-replay")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.set_defaults(func=_cli)
