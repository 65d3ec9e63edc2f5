"""The prediction API against its own OpenAPI document: ``st run URL/openapi.json --checks all``.

The app is the predict function's, served over HTTP by uvicorn on 127.0.0.1 (the twin of ``sam local
start-api``), on the deployed template (a moto server process with template.yaml in it) with v1 active, v2
on a canary, the team state loaded and a drift report written, so generated requests reach real routing,
real storage and the real admin checks; moto evaluates IAM, and the app signs as the predict function's
role. The admin routes are called with the stack's token (``schemathesis.toml``,
``[auth.openapi.AdminToken]``); schemathesis' ignored_auth check also calls them without it and with a
wrong one. Every check runs (server errors, status codes, content types, headers,
response bodies, negative and positive data, methods and Allow headers, auth) and none may fail.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import runtime
from infra import stack as stk
from infra.replay import ApiServer
from tests.conftest import ROOT, off_season, synthetic_history, train_versions

pytestmark = pytest.mark.integration

ST = Path(sys.executable).with_name("st")
CONFIG = ROOT / "schemathesis.toml"
QUIET = {"POWERTOOLS_LOG_LEVEL": "CRITICAL", "POWERTOOLS_METRICS_DISABLED": "true"}


@pytest.fixture(scope="module")
def served_api() -> Iterator[tuple[str, str]]:
    """(base URL, admin token): the predict function's app over HTTP on a fresh stack with a model active."""
    with stk.deployed(isolated=True, iam=True) as stack:
        quiet = QUIET | {"MODEL_PARAM_MAX_AGE_SECONDS": "0"}
        with runtime.function_environment(stack.operator_env("retrain") | quiet):  # an operator trains
            _two_versions()
        with runtime.function_environment(stack.env_for("drift_check") | quiet):  # the drift job writes its report
            _drift_report()
        with runtime.function_environment(stack.env_for("predict") | quiet):  # the app runs as the function
            from nbaml.serving.api import create_app

            with ApiServer(create_app()) as api:
                yield api.url, str(stack.admin_token)


def _two_versions() -> None:
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, RetrainSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.games.feeds.base import FeedBatch

    common = load_settings(CommonSettings)
    history = synthetic_history(seed=5)
    # the backfill vouches for the off-season's first week, so generated slates of those days reach a 200
    load(common, FeedBatch(games=history), source="generator", complete_through=off_season(history))
    # The retrain function's settings are the template's; the environment here is its own
    train_versions(load_settings(RetrainSettings), (1, 2), requested_by="schemathesis")
    deployment = Deployment(common)
    deployment.promote("v1", by="schemathesis", why="v1 is the champion under test")
    deployment.set_canary("v20210602_000000", 10, by="schemathesis", why="a canary, so routing is exercised")


def _drift_report() -> None:
    from nbaml.config import DriftSettings, load_settings
    from nbaml.monitoring.drift import check_drift

    last_day = max(g.game_date for g in synthetic_history(seed=5))
    check_drift(load_settings(DriftSettings), run_date=last_day + dt.timedelta(days=1))


def test_given_the_served_api_when_schemathesis_runs_every_check_then_nothing_fails(
    served_api: tuple[str, str], tmp_path: Path
) -> None:
    url, token = served_api
    # When: the CLI CI would run, with every check, its reports kept out of the checkout
    options = ["--checks", "all", "--max-examples", "40", "--workers", "1", "--no-color"]
    options += ["--generation-database", "none"]
    result = subprocess.run(
        [str(ST), "--config-file", str(CONFIG), "run", f"{url}/openapi.json", *options],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ) | {"NBAML_ADMIN_TOKEN": token},
        timeout=900,
        check=False,
    )
    # Then: every operation was tested, and every case generated passed every check
    assert "18 selected / 18 total" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-2000:]
    assert re.search(r"(\d+) generated, \1 passed", result.stdout), result.stdout[-3000:]
