"""The ``sam`` tier: the functions ``sam build`` wrote, run by the real SAM CLI in Lambda-shaped containers.

Needs a Docker engine (``make engine-up`` as root). Without one the tier is deselected with one line saying
why (tests/conftest.py), unless ``NBAML_REQUIRE_SAM=1`` (CI), where a missing engine fails every test here.
The session builds what is missing first (``make lambda-image``'s images, cached by their inputs; ``sam
build``, cached), so the tier always runs today's code.

One stack serves the function and API tests (``sam_stack``): moto as the container ``nbaml-moto-tier`` on
``nbaml-local``, template.yaml deployed into it, two real seasons of history (2019-20, 2020-21 from
../shared/data) backfilled, and the first model trained by the retrain function in its container
(``trained``). MODEL_PARAM_MAX_AGE_SECONDS is 2 here (30 on AWS): the same hot swap, a shorter wait.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from infra import runtime
from infra.samcli import docker, images, sam
from infra.samcli import stack as samcli_stack
from tests.conftest import SHARED_GAMES

REQUIRED = os.environ.get("NBAML_REQUIRE_SAM") == "1"
HISTORY_SEASONS = (2019, 2020)
PREDICTED_DAY = dt.date(2023, 1, 10)  # the day the tier's predictions ask about (tests/sam/test_api.py, events/)
MAX_AGE_S = 2
QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING"}


@pytest.fixture(scope="session", autouse=True)
def sam_tier() -> images.ImagePlan:
    """The engine answers, the images exist and .aws-sam/build is current; else one skip line (or a CI failure)."""
    problem = docker.engine_problem()
    if problem is not None:
        if REQUIRED:
            pytest.fail(f"the sam tier is mandatory here (NBAML_REQUIRE_SAM=1): {problem}", pytrace=False)
        pytest.skip(f"sam tier: {problem}")
    plan = images.plan()
    images.build_emulator_image(plan, progress=lambda line: None)
    sam.build(progress=lambda line: None)
    return plan


@dataclass
class Trained:
    """The retrain container's first run, and the registry status and active parameter right after it (later
    tests flip roles: the API's admin routes and infra/rollback.sh)."""

    invocation: sam.Invocation
    version: str
    status: str
    active: str


@pytest.fixture(scope="session")
def sam_stack(sam_tier: images.ImagePlan) -> Iterator[samcli_stack.SamStack]:
    """The tier's stack, its history backfilled from the real results; the emulator container is removed after."""
    if not SHARED_GAMES.exists():
        pytest.skip(f"the shared NBA results are not beside the checkout ({SHARED_GAMES})")
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, FeedSettings, load_settings
    from nbaml.games.feeds import open_feed
    from nbaml.games.feeds.base import FeedBatch

    extra = {"PredictFunction": {"MODEL_PARAM_MAX_AGE_SECONDS": str(MAX_AGE_S), **QUIET}}
    with samcli_stack.deployed(name="nbaml-moto-tier", extra=extra) as target:
        feed: Any = open_feed(FeedSettings(feed_source="file", feed_file=str(SHARED_GAMES)))
        history = [g for g in feed.load().games if g.season in HISTORY_SEASONS]
        with runtime.function_environment(target.stack.env_for("collect") | QUIET):
            # The tier predicts 2023-01-10 (events/predict-game.json) from the state of 2020-21: the backfill vouches
            # for the days between, so the predict function's completeness check lets it through (issue 17)
            load(
                load_settings(CommonSettings),
                FeedBatch(games=history),
                source="file",
                complete_through=PREDICTED_DAY - dt.timedelta(days=1),
            )
        yield target


@pytest.fixture(scope="session")
def trained(sam_stack: samcli_stack.SamStack) -> Trained:
    """The first model, trained and promoted by the retrain function in its container (sam local invoke)."""
    event = {"trigger": "manual", "reason": "the sam tier's first model", "requested_by": "tests/sam"}
    invocation = sam_stack.local.invoke("RetrainFunction", event)
    assert invocation.error is None, invocation.logs[-2000:]
    run = invocation.result["runs"][0]
    assert run["status"] == "promoted", run
    from nbaml.config import CommonSettings, load_settings
    from nbaml.storage import parameters
    from nbaml.storage.registry import ModelRegistry

    with runtime.function_environment(sam_stack.stack.env_for("retrain") | QUIET):
        settings = load_settings(CommonSettings)
        status = ModelRegistry(settings.model_versions_table).get(run["version"])["status"]
        active = parameters.read(settings.active_model_param)
    return Trained(invocation=invocation, version=run["version"], status=status, active=active)


@pytest.fixture(scope="session")
def admin_token(sam_stack: samcli_stack.SamStack) -> str:
    """The SecureString the deploy created (a fresh stack always creates it, and says it once)."""
    assert sam_stack.stack.admin_token, "the deploy created no admin token"
    return sam_stack.stack.admin_token
