"""The prediction API against its own OpenAPI spec, fuzzed by schemathesis, in-process (ASGI).

The app runs on the deployed template (a moto server process with template.yaml in it) with v1 active,
v2 on a canary and the team state loaded, so generated requests reach real routing, real storage and the
real admin checks. Every operation: no 5xx, and every response matches the schema the spec declares.
Admin operations are called with the valid token, so their bodies are fuzzed past the auth check.
Bounded: 30 examples per operation, no deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from infra import runtime
from infra import stack as stk
from tests.conftest import synthetic_history, train_versions

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def served_app() -> Iterator[tuple[Any, str]]:
    """(app, admin token): the predict function's app on a fresh stack with a model active."""
    with stk.deployed(isolated=True, iam=True) as stack:
        quiet = {"MODEL_PARAM_MAX_AGE_SECONDS": "0", "POWERTOOLS_METRICS_DISABLED": "true"}
        with runtime.function_environment(stack.operator_env("retrain") | quiet):
            _train_two_versions()
        with runtime.function_environment(stack.env_for("predict") | quiet):  # the app runs as the function
            from nbaml.serving.api import create_app

            yield create_app(), str(stack.admin_token)


def _train_two_versions() -> None:
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, RetrainSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.games.feeds.base import FeedBatch

    load(load_settings(CommonSettings), FeedBatch(games=synthetic_history(seed=5)), source="generator")
    # The retrain function's settings are the template's; the environment here is predict's plus these
    settings = RetrainSettings(**load_settings(CommonSettings).model_dump())
    train_versions(settings, (1, 2), requested_by="schemathesis")
    deployment = Deployment(settings)
    deployment.promote("v1", by="schemathesis", why="v1 is the champion under test")
    deployment.set_canary("v20210602_000000", 10, by="schemathesis", why="a canary, so routing is exercised")


@pytest.fixture(scope="module")
def api_schema(served_app: tuple[Any, str]) -> Any:
    app, _ = served_app
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _exercise(operation: Any, mode: GenerationMode, headers: dict[str, str] | None) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def exercise(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    exercise()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_given_any_request_the_spec_allows_or_not_then_no_5xx_and_no_schema_violation(
    api_schema: Any, served_app: tuple[Any, str], mode: GenerationMode
) -> None:
    # (schemathesis' own pytest plugin, from_fixture + parametrize, fails on pytest 9: the loop is written out)
    _, token = served_app
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12, [op.label for op in operations]
    failures: dict[str, str] = {}
    unsatisfiable: list[str] = []
    for operation in operations:
        headers = {"Authorization": f"Bearer {token}"} if operation.path.startswith("/admin") else None
        try:
            _exercise(operation, mode, headers)
        except Unsatisfiable:
            # No input to make invalid (no parameters, or one free-form string): nothing to negate
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
        except Exception as exc:  # every operation is run; the failures are reported together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert len(unsatisfiable) <= 5, unsatisfiable  # the others were fuzzed with invalid input
    assert not failures, "\n\n".join(f"{label}\n{detail}" for label, detail in failures.items())
