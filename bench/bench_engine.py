"""Serving engine benchmark: the pure-Python bundle against xgboost itself, one row at a time.

Why: the predict Lambda scores one game per request and must not import xgboost (188 MB, seconds of cold
start). This measures what that choice costs per request and what it saves at cold start, so the decision
rests on numbers from the machine at hand. Baseline: ``Booster.inplace_predict`` on one row, xgboost's
fastest single-row path.

Run: ``.venv/bin/python bench/bench_engine.py`` (needs the ``ml`` extra: numpy, xgboost, scikit-learn).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import xgboost as xgb
from sklearn.preprocessing import StandardScaler

from nbaml.bundle import ModelBundle, StandardScalerParams

N_TREES = 300
MAX_DEPTH = 4
N_FEATURES = 20
N_TRAIN = 5000
N_CALLS = 3000
N_IMPORTS = 7


def _train() -> tuple[ModelBundle, xgb.XGBClassifier, StandardScaler, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(loc=100.0, scale=10.0, size=(N_TRAIN, N_FEATURES))
    x[rng.random(x.shape) < 0.02] = np.nan
    z = (np.nan_to_num(x, nan=100.0) - 100.0) / 10.0
    y = (z[:, 0] + 0.5 * z[:, 1] * z[:, 2] - 0.3 * z[:, 3] + rng.normal(size=N_TRAIN) > 0).astype(int)
    scaler = StandardScaler().fit(x)
    model = xgb.XGBClassifier(n_estimators=N_TREES, max_depth=MAX_DEPTH, learning_rate=0.05, tree_method="hist")
    model.fit(scaler.transform(x), y)
    # One thread for prediction: a single row gains nothing from OpenMP, and on a shared machine (or a 1-vCPU
    # Lambda) spinning worker threads turn xgboost's p99 into tens of milliseconds.
    model.set_params(n_jobs=1)
    bundle = ModelBundle(
        version="v1",
        model_json=bytes(model.get_booster().save_raw("json")),
        scaler=StandardScalerParams.from_sklearn(scaler),
        feature_names=[f"f{i}" for i in range(N_FEATURES)],
    )
    return ModelBundle.from_files(bundle.to_files()), model, scaler, x[-200:]


def _time_calls(fn: Callable[[int], object], n: int) -> list[float]:
    """Seconds per call; each call gets the next row, so no cache sees the same input twice in a row."""
    for i in range(200):  # warm-up
        fn(i)
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return times


def _import_seconds(module: str) -> list[float]:
    """Seconds a fresh interpreter spends in ``import module`` (the cold start share of that import)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = []
    for _ in range(N_IMPORTS):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(float(out.stdout))
    return runs


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | cpus {os.cpu_count()}")
    print(f"python {platform.python_version()} | xgboost {xgb.__version__} | numpy {np.__version__}")
    print(f"model: {N_TREES} trees, depth {MAX_DEPTH}, {N_FEATURES} features; {N_CALLS} single-row calls each\n")

    bundle, model, scaler, rows = _train()
    booster = model.get_booster()
    py_rows = rows.tolist()
    scaled = scaler.transform(rows)
    one_row = [scaled[i : i + 1] for i in range(len(rows))]
    py_scaled = scaled.tolist()
    k = len(rows)

    # The three must agree before their speeds mean anything.
    ours = np.array([bundle.predict_proba(r) for r in py_rows])
    assert np.abs(ours - model.predict_proba(scaled)[:, 1]).max() < 1e-6, "bundle disagrees with xgboost"

    engines: dict[str, Callable[[int], object]] = {
        "Booster.inplace_predict (baseline)": lambda i: booster.inplace_predict(one_row[i % k]),
        "nbaml bundle (scaler + Forest)": lambda i: bundle.predict_proba(py_rows[i % k]),
        "Forest only (pre-scaled row)": lambda i: bundle.forest().predict_proba(py_scaled[i % k]),
        "XGBClassifier.predict_proba": lambda i: model.predict_proba(one_row[i % k]),
    }
    results = {name: _time_calls(fn, N_CALLS) for name, fn in engines.items()}
    base_p50 = statistics.median(results["Booster.inplace_predict (baseline)"])

    print(f"{'single-row inference':<38} {'p50 µs':>9} {'p99 µs':>9} {'p50 / baseline':>15}")
    for name, times in results.items():
        p50, p99 = statistics.median(times), _percentile(times, 0.99)
        print(f"{name:<38} {p50 * 1e6:>9.1f} {p99 * 1e6:>9.1f} {p50 / base_p50:>14.2f}x")

    print(f"\n{'cold import (fresh interpreter)':<38} {'median ms':>9} {'min ms':>9} {'vs xgboost':>15}")
    imports = {
        "import xgboost (baseline)": _import_seconds("xgboost"),
        "import nbaml.bundle": _import_seconds("nbaml.bundle"),
    }
    base_import = statistics.median(imports["import xgboost (baseline)"])
    for name, runs in imports.items():
        median = statistics.median(runs)
        print(f"{name:<38} {median * 1e3:>9.1f} {min(runs) * 1e3:>9.1f} {median / base_import:>14.3f}x")

    start = time.perf_counter()
    ModelBundle.from_files(bundle.to_files())
    print(f"\nbundle verify + parse ({len(bundle.model_json) / 1e6:.2f} MB model.json): "
          f"{(time.perf_counter() - start) * 1e3:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
