"""Serving benchmark: the predict function's handler against the seed's way of serving, in one run.

Why: the issues ask for one game through the Mangum handler at p99 <= 1.0 ms and >= 2.5x faster than the seed's
way, a 15-game slate at p50 >= 3x faster than the seed's way, a cold init <= 0.40 s and a predict function
<= 60 MB unzipped. Those claims only mean something next to the baseline measured on the same machine, in the
same run, on the same model and the same features:

- **baseline** (the seed's way): a pickled ``XGBClassifier`` and a pickled ``StandardScaler`` loaded from local
  files, a pandas DataFrame per request, served by a minimal FastAPI + Mangum app of the same shape (same request
  and response schemas, the same team state for the features, the same Powertools handler decorator);
- **ours**: ``functions/predict/app.py``'s handler (Mangum -> ``nbaml.serving.api.create_app``) on the bundle
  written to the local stack's bucket, with the prediction log swapped for an in-memory sink for the latency
  figures (``create_app(sink=...)``), so a DynamoDB write on the emulator is not what gets timed.

Both are asked the same games through HTTP API v2 events built from ``events/predict-game.json``. The stack is the
template deployed on an in-process moto server (``infra.stack``), so the SSM parameters and S3 reads of ours are
the template's, cached with the template's MODEL_PARAM_MAX_AGE_SECONDS as on AWS. Also measured: a 15-game slate;
cold init (imports + model load in a fresh interpreter, median of 5); the first request of each block apart
from the rest (``BLOCK``: it is what sits at the p99); the built function size (from
``.aws-sam/build``; the baseline's as the installed size of the packages it needs); and two bounded load tests of
ours served by uvicorn on 127.0.0.1, one with the in-memory sink (the serving tier) and one with its real
prediction log (DynamoDB on the emulator).

The model is the largest the retrain's default grid can pick (400 trees of depth 3), trained on three synthetic
seasons. A missed target exits 1; a missed one-game target also prints a cProfile of ours (``--profile`` always).

Run: ``.venv/bin/python bench/bench_serving.py`` (needs the ``ml`` and ``local`` extras).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import cProfile
import datetime as dt
import importlib.util
import io
import itertools
import json
import logging
import os
import pickle
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run as a script: infra/ is importable from the checkout

from infra import runtime  # noqa: E402
from infra import stack as stk  # noqa: E402
from infra.replay import ApiServer  # noqa: E402
from nbaml.serving import schemas  # noqa: E402 - module level: FastAPI resolves the route's annotations here

EVENT_TEMPLATE = REPO_ROOT / "events" / "predict-game.json"
PREDICT_APP = REPO_ROOT / "functions" / "predict" / "app.py"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
VERSION = "v1"
N_ONE = 3000
N_SLATE = 400
# Requests of one side before the other's turn. The first of each block runs on a CPU the other side's block (or,
# in a Lambda, whatever ran between invocations) has just used: measured at 2-3x the p50. It is 1 % of the
# samples, so it is what sits at the p99; the report prints it apart, and the p99 of the others.
BLOCK = 100
SLATE = 15
N_COLD = 5
LOAD_REQUESTS = 1000
LOAD_CLIENTS = 4
LOAD_SECONDS = 20.0
# The retrain's default grid tops out at 400 trees of depth 3 (nbaml.training.search.DEFAULT_GRID).
MODEL_PARAMS = {
    "n_estimators": 400,
    "max_depth": 3,
    "learning_rate": 0.03,
    "min_child_weight": 10,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
}

TARGET_P99_MS = 1.0
TARGET_SPEEDUP = 2.5
TARGET_SLATE_SPEEDUP = 3.0  # slate p50, baseline over ours
TARGET_INIT_S = 0.40
TARGET_SIZE_MB = 60.0

# What the seed's function would have to ship (--no-compile sizes of the installed distributions).
BASELINE_DISTRIBUTIONS = (
    "xgboost-cpu",
    "scikit-learn",
    "scipy",
    "numpy",
    "pandas",
    "joblib",
    "threadpoolctl",
    "python-dateutil",
    "pytz",
    "tzdata",
    "six",
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "typing-inspection",
    "annotated-types",
    "typing-extensions",
    "mangum",
    "anyio",
    "sniffio",
    "idna",
)
HEAVY_MODULES = ("numpy", "pandas", "sklearn", "xgboost", "scipy")


# ---------------------------------------------------------------- results
@dataclass
class Side:
    one_p50: float = 0.0
    one_p99: float = 0.0
    slate_p50: float = 0.0
    slate_p99: float = 0.0
    one_first_p50: float = 0.0  # the first request of each block, after the other side's BLOCK requests
    one_rest_p99: float = 0.0  # p99 of the others
    init_s: float = 0.0
    built_init_s: float | None = None  # python3.12 on .aws-sam/build, as Lambda starts it
    size_mb: float | None = None
    size_note: str = ""
    heavy_imports: list[str] = field(default_factory=list)


@dataclass
class Load:
    planned: int
    label: str
    done: int = 0
    errors: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    logged: int = 0
    samples: list[float] = field(default_factory=list, repr=False)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds of samples in seconds."""
    ms = [s * 1000 for s in samples]
    return statistics.median(ms), statistics.quantiles(ms, n=100)[98]


# ---------------------------------------------------------------- the stack, the data, the model
@dataclass
class Fixture:
    workdir: Path
    feature_names: list[str]
    state_as_of: dt.date
    games: list[tuple[str, str]]
    pipeline: Any


def prepare(workdir: Path) -> Fixture:
    """History backfilled into the stack, the model trained, its bundle in S3 and active, the pickles on disk."""
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    from nbaml.backfill import load
    from nbaml.bundle import ModelBundle, StandardScalerParams
    from nbaml.config import PredictSettings, load_settings
    from nbaml.features import FEATURE_NAMES, FEATURES_VERSION, build_features
    from nbaml.games.feeds.base import FeedBatch
    from nbaml.games.feeds.generator import SyntheticLeague
    from nbaml.games.teams import TEAMS
    from nbaml.storage import parameters
    from nbaml.storage.artifacts import ArtifactStore

    settings = load_settings(PredictSettings)
    league = SyntheticLeague(seed=2024)
    history = [g for s in range(league.first_season, league.first_season + 3) for g in league.games(s)]
    # The off-season's first week after the history has no games: the backfill vouches for it, so the load
    # test's days (1 to 3 after the state's last day) are complete ones
    last = max(g.game_date for g in history)
    load(settings, FeedBatch(games=history), source="generator", complete_through=last + dt.timedelta(days=7))
    table = build_features(history)
    assert table.state is not None and table.state.as_of is not None
    names = list(FEATURE_NAMES)
    X = pd.DataFrame(np.array(table.rows, dtype=float), columns=names)
    y = np.array(table.labels)
    pipeline = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("model", XGBClassifier(tree_method="hist", n_jobs=1, random_state=42, **MODEL_PARAMS)),
        ]
    ).fit(X, y)
    scaler, model = pipeline.named_steps["scaler"], pipeline.named_steps["model"]

    bundle = ModelBundle(
        version=VERSION,
        model_json=bytes(model.get_booster().save_raw(raw_format="json")),
        scaler=StandardScalerParams.from_sklearn(scaler),
        feature_names=names,
        metadata={"features_version": FEATURES_VERSION},  # serving refuses a bundle of other features
    )
    files = bundle.to_files()
    ArtifactStore(settings.nbaml_bucket).write_bundle_files(VERSION, files)
    parameters.write(settings.active_model_param, VERSION, why="bench_serving")
    (workdir / "bundle").mkdir()
    for name, data in files.items():
        (workdir / "bundle" / name).write_bytes(data)
    (workdir / "model.pkl").write_bytes(pickle.dumps(model))
    (workdir / "scaler.pkl").write_bytes(pickle.dumps(scaler))
    (workdir / "state.json").write_text(json.dumps(table.state.to_dict()))
    games = [(h, a) for h, a in itertools.permutations(TEAMS, 2)]
    return Fixture(workdir, names, table.state.as_of, games, pipeline)


# ---------------------------------------------------------------- the two handlers
def baseline_handler(workdir: Path, feature_names: list[str]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The seed's way: pickles loaded from files, a DataFrame per request, FastAPI behind Mangum."""
    import pandas as pd
    from aws_lambda_powertools import Logger
    from fastapi import FastAPI
    from mangum import Mangum

    from nbaml.features import LeagueState
    from nbaml.games.records import game_id_for

    model = pickle.loads((workdir / "model.pkl").read_bytes())  # the baseline is the seed's pickle
    scaler = pickle.loads((workdir / "scaler.pkl").read_bytes())
    state = LeagueState.from_dict(json.loads((workdir / "state.json").read_text()))
    app = FastAPI(title="seed baseline")

    @app.post("/predictions", response_model=schemas.PredictionResponse)
    def predict(request: schemas.PredictionRequest) -> schemas.PredictionResponse:
        rows = [state.features(g.home, g.away, g.date) for g in request.games]
        frame = pd.DataFrame(rows, columns=feature_names)
        probabilities = model.predict_proba(scaler.transform(frame))[:, 1]
        return schemas.PredictionResponse(
            predictions=[
                schemas.PredictionOut(
                    game_id=game_id_for(g.date, g.home, g.away),
                    home=g.home,
                    away=g.away,
                    date=g.date,
                    home_win_probability=float(p),
                    pick=g.home if p >= 0.5 else g.away,
                    version=VERSION,
                    role="champion",
                    on_schedule=True,  # the seed knew no schedule: the same answer shape, filled as ours is here
                    logged=True,
                )
                for g, p in zip(request.games, probabilities, strict=True)
            ]
        )

    asgi = Mangum(app, lifespan="off", api_gateway_base_path=f"/{os.environ.get('STAGE', '')}")
    logger = Logger(service="baseline")

    @logger.inject_lambda_context(correlation_id_path="requestContext.requestId", log_event=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return asgi(event, context)

    return handler


class MemorySink:
    """The prediction log in memory: the latency figures time serving, not a write to the emulator's DynamoDB."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def record(self, prediction: Any) -> bool:
        self.records.append(prediction)
        return True


def our_handler(sink: MemorySink | None) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """functions/predict/app.py's own handler; its create_app is given the sink (None: the real log)."""
    import functools

    from nbaml.serving import api

    spec = importlib.util.spec_from_file_location("bench_predict_app", PREDICT_APP)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if sink is not None:
        module.create_app = functools.partial(api.create_app, sink=sink)
    return module.handler


def lambda_context() -> Any:
    return runtime.LocalLambdaContext(function_name="nbaml-dev-predict", memory_limit_in_mb=512, timeout_s=10)


def event_for(games: list[dict[str, str]], n: int) -> dict[str, Any]:
    event = copy.deepcopy(json.loads(EVENT_TEMPLATE.read_text()))
    body = json.dumps({"games": games} if len(games) > 1 else games[0], separators=(",", ":"))
    event["body"] = body
    event["headers"]["content-length"] = str(len(body))
    event["requestContext"]["requestId"] = f"bench-{n:08d}"
    return event


def slates(fixture: Fixture, size: int, count: int) -> list[dict[str, Any]]:
    day = (fixture.state_as_of + dt.timedelta(days=1)).isoformat()
    pairs = itertools.cycle(fixture.games)
    return [
        event_for([{"home": h, "away": a, "date": day} for h, a in itertools.islice(pairs, size)], n)
        for n in range(count)
    ]


def warm_up(handler: Callable[..., dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """The first request builds the app, loads the bundle and fills the caches: not part of the warm figures."""
    context = lambda_context()
    for event in events[:50]:
        response = handler(event, context)
        if response["statusCode"] != 200:
            raise SystemExit(f"bench: warm-up answered {response['statusCode']}: {response['body'][:300]}")


def time_pair(
    baseline: Callable[..., dict[str, Any]], ours: Callable[..., dict[str, Any]], events: list[dict[str, Any]], n: int
) -> tuple[list[float], list[float]]:
    """Seconds per call of each, in alternating blocks of BLOCK so both sides see the same machine load."""
    context = lambda_context()
    samples: tuple[list[float], list[float]] = ([], [])
    for handler in (baseline, ours):
        warm_up(handler, events)
    for block in range(0, n, BLOCK):
        for side, handler in enumerate((baseline, ours)):
            for i in range(block, min(block + BLOCK, n)):
                event = events[i % len(events)]
                started = time.perf_counter()
                response = handler(event, context)
                samples[side].append(time.perf_counter() - started)
                if response["statusCode"] != 200:
                    raise SystemExit(f"bench: answered {response['statusCode']}: {response['body'][:300]}")
    return samples


def same_answers(ours: Callable[..., Any], baseline: Callable[..., Any], event: dict[str, Any]) -> float:
    """Largest probability difference between the two on a slate: a benchmark of different answers is void."""
    a = json.loads(ours(event, lambda_context())["body"])["predictions"]
    b = json.loads(baseline(event, lambda_context())["body"])["predictions"]
    return max(abs(x["home_win_probability"] - y["home_win_probability"]) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- cold init, in a fresh interpreter
OURS_INIT = """
import time
started = time.perf_counter()
import importlib.util, pathlib, sys
spec = importlib.util.spec_from_file_location("predict_app", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from nbaml.bundle import ModelBundle
folder = pathlib.Path(sys.argv[1]) / "bundle"
bundle = ModelBundle.from_files({p.name: p.read_bytes() for p in folder.iterdir()}, expected_version="v1")
bundle.forest()
elapsed = time.perf_counter() - started
heavy = [m for m in sys.argv[3].split(",") if m in sys.modules]
print(elapsed, ",".join(heavy))
"""

BASELINE_INIT = """
import time
started = time.perf_counter()
import pathlib, pickle, sys
import fastapi, mangum, pandas, sklearn.preprocessing, xgboost
folder = pathlib.Path(sys.argv[1])
model = pickle.loads((folder / "model.pkl").read_bytes())
scaler = pickle.loads((folder / "scaler.pkl").read_bytes())
elapsed = time.perf_counter() - started
heavy = [m for m in sys.argv[3].split(",") if m in sys.modules]
print(elapsed, ",".join(heavy))
"""


def _cold_env(**extra: str) -> dict[str, str]:
    """This environment without AWS settings, and with bytecode written: both sides load theirs as shipped."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONDONTWRITEBYTECODE"}
    return keep | {"POWERTOOLS_TRACE_DISABLED": "1"} | extra


def cold_init(
    code: str,
    workdir: Path,
    python: str = sys.executable,
    app: Path = PREDICT_APP,
    env: dict[str, str] | None = None,
    *,
    isolated: bool = False,
) -> tuple[float, list[str]]:
    """Median seconds of N_COLD fresh interpreters, after one untimed run that leaves any missing bytecode (pip
    compiled the installed packages; this checkout's own modules are compiled on first import, as make build
    compiles them for Lambda). ``isolated`` leaves out the interpreter's own site-packages (``-S``)."""
    runs = []
    heavy: list[str] = []
    for attempt in range(N_COLD + 1):
        out = subprocess.run(
            [python, *(["-S"] if isolated else []), "-c", code, str(workdir), str(app), ",".join(HEAVY_MODULES)],
            capture_output=True,
            text=True,
            check=True,
            env=env or _cold_env(),
            cwd=REPO_ROOT,
        ).stdout.split()
        if attempt:
            runs.append(float(out[0]))
        heavy = out[1].split(",") if len(out) > 1 and out[1] else []
    return statistics.median(runs), heavy


def _copy_runtime(runtime_dir: Path) -> None:
    """What Lambda's python3.12 runtime provides beside the layers (requirements/lambda-runtime.txt), copied from
    this environment; the runtime interface client is not installed here and the app does not import it."""
    from infra.samcli.images import RUNTIME_LOCK

    names = re.findall(r"^([A-Za-z0-9_.-]+)==", RUNTIME_LOCK.read_text(), flags=re.MULTILINE)
    for name in names:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            if file.suffix == ".pyc" or file.parts[0].endswith(".dist-info") or file.parts[0] in ("..", "bin"):
                continue
            target = runtime_dir / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(str(file.locate())), target)


def built_cold_init(workdir: Path) -> float | None:
    """Ours as Lambda starts it: python3.12 on the built predict function and its layers (the bytecode make build
    wrote), beside the runtime's packages compiled here; None without a build."""
    if not (BUILD_DIR / "template.yaml").exists():
        return None
    from infra import template as tpl
    from infra.samcli import images

    built = tpl.load(BUILD_DIR / "template.yaml")
    (function,) = tpl.http_api_functions(built)
    code = tpl.code_dirs(built, BUILD_DIR)
    python = str(images.find_python312().executable)
    runtime_dir = workdir / "runtime"
    _copy_runtime(runtime_dir)
    subprocess.run([python, "-m", "compileall", "-q", "-j", "0", str(runtime_dir)], check=True, env=_cold_env())
    # Lambda puts the function's code first, then each layer's python/ folder, then the runtime's packages
    path = [code[function], *(code[layer] / "python" for layer in tpl.function_layers(built, function)), runtime_dir]
    env = _cold_env(PYTHONPATH=os.pathsep.join(map(str, path)))
    return cold_init(OURS_INIT, workdir, python, code[function] / "app.py", env, isolated=True)[0]


# ---------------------------------------------------------------- sizes
def built_size() -> tuple[float | None, str]:
    if not (BUILD_DIR / "template.yaml").exists():
        return None, "run make build first"
    from infra.size import function_sizes

    row = function_sizes(BUILD_DIR).get("PredictFunction")
    if row is None:
        return None, "no PredictFunction in the build"
    layers = ", ".join(f"{k} {v:.1f}" for k, v in row.items() if k not in ("PredictFunction", "total"))
    return row["total"], f"sam build: {layers}"


def installed_size(distributions: tuple[str, ...]) -> tuple[float, str]:
    total = 0
    missing = []
    for name in distributions:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        for file in files:
            if file.suffix == ".pyc":
                continue
            path = Path(str(file.locate()))
            if path.is_file():
                total += path.stat().st_size
    note = "installed packages, no compile"
    return total / 1024 / 1024, note + (f" (not installed: {', '.join(missing)})" if missing else "")


# ---------------------------------------------------------------- load test
def load_test(fixture: Fixture, sink: MemorySink | None) -> Load:
    """uvicorn on 127.0.0.1 serving ours; a fixed count of requests, bounded in time.

    ``sink`` None is the real prediction log (DynamoDB on the emulator, which shares this process and its GIL with
    the server and the clients), so that run measures the emulator as much as the app.
    """
    import httpx

    from nbaml.config import PredictSettings, load_settings
    from nbaml.serving.api import create_app
    from nbaml.storage.predictions import PredictionLog

    result = Load(planned=LOAD_REQUESTS, label="memory sink" if sink is not None else "real log (emulator DynamoDB)")
    days = [(fixture.state_as_of + dt.timedelta(days=d)).isoformat() for d in (1, 2, 3)]
    bodies = [{"home": h, "away": a, "date": d} for d in days for h, a in fixture.games[:200]]
    lock = threading.Lock()
    counter = itertools.count()

    with ApiServer(create_app(sink=sink)) as api:
        deadline = time.monotonic() + LOAD_SECONDS

        def client() -> None:
            with httpx.Client(base_url=api.url, timeout=10) as http:
                while time.monotonic() < deadline:
                    n = next(counter)
                    if n >= LOAD_REQUESTS:
                        return
                    started = time.perf_counter()
                    try:
                        ok = http.post("/predictions", json=bodies[n % len(bodies)]).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    elapsed = time.perf_counter() - started
                    with lock:
                        result.done += 1
                        result.errors += 0 if ok else 1
                        result.samples.append(elapsed)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, name=f"load-{i}") for i in range(LOAD_CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        result.seconds = time.perf_counter() - started
    result.p50_ms, result.p99_ms = percentiles(result.samples)
    table = PredictionLog(load_settings(PredictSettings).predictions_table)
    result.logged = len(sink.records) if sink is not None else len(table.all())
    return result


# ---------------------------------------------------------------- report
def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load}"


def profile(handler: Callable[..., Any], events: list[dict[str, Any]], n: int = 1000) -> str:
    context = lambda_context()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        handler(events[i % len(events)], context)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(28)
    return out.getvalue()


def _missed(ours: Side, base: Side, loads: list[Load], diff: float) -> list[str]:
    """Each target this run missed, in words."""
    missed = []
    if ours.one_p99 > TARGET_P99_MS:
        missed.append(f"one game p99 {ours.one_p99:.3f} ms > {TARGET_P99_MS} ms")
    if base.one_p99 / ours.one_p99 < TARGET_SPEEDUP:
        missed.append(f"one game p99 only {base.one_p99 / ours.one_p99:.2f}x faster than the baseline")
    if base.slate_p50 / ours.slate_p50 < TARGET_SLATE_SPEEDUP:
        missed.append(f"{SLATE}-game slate p50 only {base.slate_p50 / ours.slate_p50:.2f}x faster than the baseline")
    if ours.init_s > TARGET_INIT_S:
        missed.append(f"cold init {ours.init_s:.3f} s > {TARGET_INIT_S} s")
    if ours.size_mb is not None and ours.size_mb > TARGET_SIZE_MB:
        missed.append(f"function size {ours.size_mb:.1f} MB > {TARGET_SIZE_MB} MB")
    if ours.heavy_imports:
        missed.append(f"the predict function imports {', '.join(ours.heavy_imports)}")
    for load in loads:
        if load.errors:
            missed.append(f"load test ({load.label}): {load.errors} errors")
    if diff > 1e-6:
        missed.append(f"the two answer differently (max difference {diff:.2e})")
    return missed


def report(ours: Side, base: Side, loads: list[Load], diff: float) -> tuple[str, list[str]]:
    def ratio(b: float | None, o: float | None) -> str:
        return f"{b / o:.1f}x" if b and o else "-"

    def mb(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    rows = [
        ("one game p50 (ms)", f"{base.one_p50:.3f}", f"{ours.one_p50:.3f}", ratio(base.one_p50, ours.one_p50), ""),
        (
            "one game p99 (ms)",
            f"{base.one_p99:.3f}",
            f"{ours.one_p99:.3f}",
            ratio(base.one_p99, ours.one_p99),
            f"<= {TARGET_P99_MS} ms and >= {TARGET_SPEEDUP}x",
        ),
        (
            f"{SLATE}-game slate p50 (ms)",
            f"{base.slate_p50:.3f}",
            f"{ours.slate_p50:.3f}",
            ratio(base.slate_p50, ours.slate_p50),
            f">= {TARGET_SLATE_SPEEDUP}x",
        ),
        (
            f"{SLATE}-game slate p99 (ms)",
            f"{base.slate_p99:.3f}",
            f"{ours.slate_p99:.3f}",
            ratio(base.slate_p99, ours.slate_p99),
            "",
        ),
        (
            f"cold init, median of {N_COLD} (s)",
            f"{base.init_s:.3f}",
            f"{ours.init_s:.3f}",
            ratio(base.init_s, ours.init_s),
            f"<= {TARGET_INIT_S} s",
        ),
        (
            f"cold init as built (python3.12, .aws-sam/build), median of {N_COLD} (s)",
            "-",
            "run make build first" if ours.built_init_s is None else f"{ours.built_init_s:.3f}",
            "",
            "",
        ),
        (
            "function size, unzipped (MB)",
            mb(base.size_mb),
            mb(ours.size_mb),
            ratio(base.size_mb, ours.size_mb),
            f"<= {TARGET_SIZE_MB:.0f} MB",
        ),
        (
            "imports numpy/pandas/sklearn/xgboost/scipy",
            ",".join(base.heavy_imports) or "none",
            ",".join(ours.heavy_imports) or "none",
            "",
            "none",
        ),
    ]
    headers = ("measure", "baseline (seed)", "ours", "baseline/ours", "target")
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(5)]
    lines = [
        "serving benchmark: functions/predict handler (Mangum -> create_app) vs the seed's pickles + pandas",
        f"machine: {machine()}",
        f"model: XGBoost {MODEL_PARAMS['n_estimators']} trees, depth {MODEL_PARAMS['max_depth']}; "
        f"{N_ONE} one-game and {N_SLATE} slate requests per side; max probability difference {diff:.2e}",
        "",
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [
        "",
        f"one game, the first request of each block of {BLOCK} (after the other side's; {N_ONE // BLOCK} of {N_ONE}): "
        f"p50 {base.one_first_p50:.3f} ms (seed), {ours.one_first_p50:.3f} ms (ours); p99 of the others "
        f"{base.one_rest_p99:.3f} ms (seed), {ours.one_rest_p99:.3f} ms (ours)",
        "",
        f"size, baseline: {base.size_note}",
        f"size, ours:     {ours.size_note}",
        "",
        f"load test, ours on uvicorn at 127.0.0.1, {LOAD_CLIENTS} httpx clients in this process, one game a request:",
    ]
    lines += [
        f"  {load.label:<30} {load.done}/{load.planned} requests in {load.seconds:.2f} s = "
        f"{load.done / load.seconds if load.seconds else 0:.0f} requests/s, errors {load.errors}, "
        f"latency p50 {load.p50_ms:.2f} ms p99 {load.p99_ms:.2f} ms, {load.logged} predictions logged"
        for load in loads
    ]
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        lines.append(
            f"note: the machine is busy (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs): p99s and "
            "cold starts include waits for a CPU; the ratios compare both sides under the same load"
        )
    return "\n".join(lines), _missed(ours, base, loads, diff)


def time_both(
    ours: Side, base: Side, handlers: tuple[Callable[..., Any], Callable[..., Any]], one: list[Any], slate: list[Any]
) -> None:
    """One-game then slate percentiles of both sides, timed in alternating blocks."""
    our, baseline = handlers
    base_one, ours_one = time_pair(baseline, our, one, N_ONE)
    for side, samples in ((base, base_one), (ours, ours_one)):
        side.one_p50, side.one_p99 = percentiles(samples)
        side.one_first_p50 = percentiles(samples[::BLOCK])[0]
        side.one_rest_p99 = percentiles([s for i, s in enumerate(samples) if i % BLOCK])[1]
    base_slate, ours_slate = time_pair(baseline, our, slate, N_SLATE)
    base.slate_p50, base.slate_p99 = percentiles(base_slate)
    ours.slate_p50, ours.slate_p99 = percentiles(ours_slate)


def measure_cold_inits(ours: Side, base: Side, workdir: Path) -> None:
    print(f"cold init: {N_COLD} fresh interpreters each, and ours as built ...", flush=True)
    ours.init_s, ours.heavy_imports = cold_init(OURS_INIT, workdir)
    base.init_s, base.heavy_imports = cold_init(BASELINE_INIT, workdir)
    ours.built_init_s = built_cold_init(workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print a cProfile of ours even when on target")
    args = parser.parse_args()
    ours, base = Side(), Side()
    quiet = {"POWERTOOLS_METRICS_DISABLED": "true"}
    logging.getLogger("botocore").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp, stk.deployed() as stack:
        workdir = Path(tmp)
        with runtime.function_environment(stack.env_for("predict") | quiet):
            print("backfilling three synthetic seasons and training the model ...", flush=True)
            fixture = prepare(workdir)
            one = slates(fixture, 1, 300)
            slate = slates(fixture, SLATE, 60)
            sink = MemorySink()
            our = our_handler(sink)
            baseline = baseline_handler(workdir, fixture.feature_names)
            diff = same_answers(our, baseline, slate[0])
            print("timing one game and a slate, baseline then ours ...", flush=True)
            time_both(ours, base, (our, baseline), one, slate)
            print(f"load tests: {LOAD_REQUESTS} requests each, {LOAD_CLIENTS} clients, at most {LOAD_SECONDS:.0f} s")
            loads = [load_test(fixture, MemorySink()), load_test(fixture, None)]
            profiled = profile(our, one) if args.profile or ours.one_p99 > TARGET_P99_MS else ""
            slate_missed = base.slate_p50 < TARGET_SLATE_SPEEDUP * ours.slate_p50
            profiled_slate = profile(our, slate, 200) if args.profile or slate_missed else ""
        measure_cold_inits(ours, base, workdir)
    ours.size_mb, ours.size_note = built_size()
    base.size_mb, base.size_note = installed_size(BASELINE_DISTRIBUTIONS)
    text, missed = report(ours, base, loads, diff)
    print("\n" + text)
    if profiled:
        print("\nwhere ours spends its time (cProfile, 1000 one-game requests, by own time):\n" + profiled)
    if profiled_slate:
        print(f"\nwhere ours spends its time (cProfile, 200 {SLATE}-game slates, by own time):\n" + profiled_slate)
    if missed:
        print("\nMISSED: " + "; ".join(missed))
        return 1
    print("\nall targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
