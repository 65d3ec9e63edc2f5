"""The SAM tier's speeds, beside the in-process runtime's, in one run: what a container costs each function.

Measured on one stack (moto as the container ``nbaml-moto-bench``, two synthetic seasons of history, a first
model trained in-process before the clock starts):

- ``sam local invoke`` per function, cold: the wall time a developer waits (SAM builds its image with the
  function's layers, starts a container, runs one event) and the REPORT line's duration, median of
  ``--cold`` runs; beside it the in-process runtime's cold invoke (handler module imported afresh);
- ``sam local start-lambda`` warm: each function's container already running (EAGER), median of ``--warm``
  invokes through Lambda's Invoke API; beside it the in-process warm invoke;
- ``sam local start-api``: one game (POST /predictions) over HTTP to the warm predict container, p50 / p99
  of ``--requests``; beside it the same request to uvicorn serving the same app in-process (the replay's
  twin of start-api).

Target: the warm predict function's p99 REPORT duration stays under the 500 ms the PredictLatencyAlarm
watches (a miss exits 1). Everything else is a figure to read against its in-process twin.

Run: ``make bench-sam`` (needs the engine, ``make lambda-image`` and ``make build``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from infra import runtime, tables  # noqa: E402
from infra.replay import ApiServer  # noqa: E402
from infra.samcli import docker, images, process, sam  # noqa: E402
from infra.samcli import stack as samcli_stack  # noqa: E402

EVENTS = REPO_ROOT / "events"
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}
TARGET_P99_MS = 500.0
GAME = {"home": "BOS", "away": "LAL", "date": "2023-01-10"}


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _events(token: str) -> dict[str, dict[str, Any]]:
    """One representative event per function (the retrain forced, so every run trains)."""
    authorization = f"Bearer {token}"
    return {
        "CollectFunction": _event("collect-scheduled.json"),
        "DriftCheckFunction": _event("drift-check-scheduled.json"),
        "RetrainFunction": {**_event("retrain-manual.json"), "force": True},
        "PredictFunction": _event("predict-game.json"),
        "AuthorizerFunction": {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api-id/dev/POST/admin/promote",
            "identitySource": [authorization],
            "routeKey": "ANY /admin/{proxy+}",
            "rawPath": "/dev/admin/promote",
            "headers": {"authorization": authorization},
        },
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds ``call`` took; what it prints (an in-process handler's logs and EMF lines) is dropped."""
    with contextlib.redirect_stdout(io.StringIO()):
        started = time.perf_counter()
        result = call()
        return (time.perf_counter() - started) * 1000, result


def _seed_history(target: samcli_stack.SamStack) -> None:
    """Two synthetic seasons and a first model, in-process: setup, not measured."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.feeds.base import FeedBatch
    from nbaml.games.feeds.generator import SyntheticLeague

    league = SyntheticLeague(seed=7)
    history = [g for s in (league.first_season, league.first_season + 1) for g in league.games(s)]
    with runtime.function_environment(target.stack.env_for("collect") | QUIET):
        load(load_settings(CommonSettings), FeedBatch(games=history), source="generator")
    event = {"trigger": "manual", "reason": "bench_sam's model", "requested_by": "bench", "force": True}
    with runtime.function_environment(target.host_environment()):
        _timed(lambda: runtime.invoke(target.stack, "retrain", event, extra_env=QUIET))
    runtime.forget_warm_modules()


def bench_invoke(target: samcli_stack.SamStack, events: dict[str, Any], cold_runs: int) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for function, event in events.items():
        walls, durations, in_process = [], [], []
        for _ in range(cold_runs):
            wall, invocation = _timed(lambda f=function, e=event: target.local.invoke(f, e))
            if invocation.error:
                raise SystemExit(f"{function} failed in its container: {invocation.error}")
            walls.append(wall)
            if invocation.report:
                durations.append(invocation.report.duration_ms)
            runtime.forget_warm_modules()
            with runtime.function_environment(target.host_environment()):
                ms, _ = _timed(lambda f=function, e=event: runtime.invoke(target.stack, f, e, extra_env=QUIET))
            in_process.append(ms)
        rows[function] = {
            "sam_wall_ms": _median(walls),
            "sam_report_ms": _median(durations),
            "inproc_cold_ms": _median(in_process),
        }
        print(f"  sam local invoke {function}: {rows[function]['sam_wall_ms'] / 1000:.1f} s", flush=True)
    return rows


def bench_warm(
    target: samcli_stack.SamStack, events: dict[str, Any], warm_runs: int
) -> tuple[dict[str, dict[str, float]], float]:
    rows: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    with sam.LambdaServer(target.local) as lambdas:
        startup = time.perf_counter() - started
        for function, event in events.items():
            lambdas.invoke(function, event)  # the container's first call (its cold start) is not counted
            walls, durations = [], []
            for _ in range(warm_runs):
                wall, invocation = _timed(lambda f=function, e=event: lambdas.invoke(f, e))
                walls.append(wall)
                if invocation.report:
                    durations.append(invocation.report.duration_ms)
            with runtime.function_environment(target.host_environment()):
                _timed(lambda f=function, e=event: runtime.invoke(target.stack, f, e, extra_env=QUIET))
                in_process = [
                    _timed(lambda f=function, e=event: runtime.invoke(target.stack, f, e, extra_env=QUIET))[0]
                    for _ in range(warm_runs)
                ]
            rows[function] = {
                "warm_wall_ms": _median(walls),
                "warm_report_ms": _median(durations),
                "warm_report_p99_ms": _percentile(durations, 0.99) if durations else float("nan"),
                "inproc_warm_ms": _median(in_process),
            }
            print(f"  start-lambda {function}: {rows[function]['warm_wall_ms']:.0f} ms warm", flush=True)
    return rows, startup


def bench_api(target: samcli_stack.SamStack, requests: int) -> dict[str, float]:
    import httpx

    from nbaml.serving.api import create_app

    def latencies(url: str) -> list[float]:
        with httpx.Client(base_url=url, timeout=60) as client:
            client.post("/predictions", json=GAME).raise_for_status()  # warm up
            out = []
            for _ in range(requests):
                ms, response = _timed(lambda: client.post("/predictions", json=GAME))
                response.raise_for_status()
                out.append(ms)
            return out

    started = time.perf_counter()
    with sam.ApiServer(target.local) as api:
        startup = time.perf_counter() - started
        ours = latencies(api.url)
    with runtime.function_environment(target.host_environment() | target.stack.env_for("predict") | QUIET):
        app = create_app()
    with ApiServer(app) as twin:
        local = latencies(twin.url)
    return {
        "startup_s": startup,
        "sam_p50": _percentile(ours, 0.5),
        "sam_p99": _percentile(ours, 0.99),
        "inproc_p50": _percentile(local, 0.5),
        "inproc_p99": _percentile(local, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=2, help="sam local invoke runs per function (median)")
    parser.add_argument("--warm", type=int, default=10, help="warm invokes per function through start-lambda")
    parser.add_argument("--requests", type=int, default=100, help="one-game requests to start-api")
    args = parser.parse_args()
    problem = docker.engine_problem()
    if problem:
        print(f"bench_sam: {problem}")
        return 2
    plan = images.plan()
    images.require(plan.lambda_image, "lambda-image")
    sam.build(progress=lambda line: None)
    version = process.text([sam.sam_executable(), "--version"], env=sam.sam_environment())
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(f"{version}; invoke image {plan.lambda_image}; emulator {plan.emulator}")
    started = time.perf_counter()
    with samcli_stack.deployed(name="nbaml-moto-bench", extra={lid: dict(QUIET) for lid in _events("")}) as target:
        _seed_history(target)
        events = _events(target.stack.admin_token or "")
        print("sam local invoke, cold ...", flush=True)
        cold = bench_invoke(target, events, args.cold)
        print("sam local start-lambda, warm ...", flush=True)
        warm, lambda_startup = bench_warm(target, events, args.warm)
        print("sam local start-api, one game ...", flush=True)
        api = bench_api(target, args.requests)
    rows = []
    for function in events:
        c, w = cold[function], warm[function]
        rows.append(
            [
                function,
                f"{c['sam_wall_ms'] / 1000:.1f} s",
                f"{c['sam_report_ms']:.0f} ms",
                f"{c['inproc_cold_ms']:.0f} ms",
                f"{w['warm_wall_ms']:.1f} ms",
                f"{w['warm_report_ms']:.1f} ms",
                f"{w['inproc_warm_ms']:.1f} ms",
                f"{w['warm_wall_ms'] / w['inproc_warm_ms']:.1f}x",
            ]
        )
    headers = ["function", "sam invoke wall", "its REPORT", "in-process cold", "start-lambda warm", "its REPORT",
               "in-process warm", "warm ratio"]  # fmt: skip
    print(f"\nsam local invoke (cold, median of {args.cold}) and start-lambda (warm, median of {args.warm}), "
          f"start-lambda up in {lambda_startup:.0f} s")  # fmt: skip
    print(tables.table(headers, rows))
    print(
        f"\none game over HTTP ({args.requests} requests): start-api p50 {api['sam_p50']:.1f} ms / p99 "
        f"{api['sam_p99']:.1f} ms vs in-process uvicorn p50 {api['inproc_p50']:.1f} ms / "
        f"p99 {api['inproc_p99']:.1f} ms "
        f"({api['sam_p50'] / api['inproc_p50']:.1f}x at p50); start-api up in {api['startup_s']:.0f} s"
    )
    p99 = warm["PredictFunction"]["warm_report_p99_ms"]
    verdict = "OK" if p99 <= TARGET_P99_MS else "MISSED"
    print(f"target: warm predict p99 REPORT duration {p99:.1f} ms <= {TARGET_P99_MS:.0f} ms: {verdict}")
    print(f"bench_sam: {time.perf_counter() - started:.0f} s")
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    raise SystemExit(main())
