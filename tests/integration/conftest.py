"""The local stack for integration tests: template.yaml deployed once per module (``infra.stack.deployed``).

The emulator evaluates IAM (moto's own evaluation, ``infra.iam``): each function runs under its own
execution role's credentials and a call its policy does not allow is refused as on AWS; the test code
itself signs as an operator role. A module whose functions were refused anything fails at teardown,
naming each call, even where the code under test caught the error.

NBAML_TEST_TEMPLATE points the session at another copy of the template (to try a change before making
it); by default the repository's template.yaml is the one under test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import emulator, stack
from infra import template as tpl


@pytest.fixture(scope="session")
def template_path() -> Path:
    return Path(os.environ.get("NBAML_TEST_TEMPLATE", str(tpl.DEFAULT_TEMPLATE)))


@pytest.fixture(scope="session")
def sam_template(template_path: Path) -> dict[str, Any]:
    return tpl.load(template_path)


@pytest.fixture(scope="module")
def local_stack(template_path: Path) -> Iterator[stack.LocalStack]:
    """The template on a fresh in-process moto server, one per test module; the environment points at it meanwhile.

    Per module, not per session: moto's in-process state is process-wide, so a module that deploys a stack
    of its own in this process (live serving) must find none running.
    """
    with stack.deployed(template_path=template_path, iam=True) as deployed:
        yield deployed
        refused = deployed.iam.refused()
    assert not refused, "calls refused by the functions' IAM policies:\n" + "\n".join(
        f"  {c.principal}: {c.action} on {c.resource}" for c in refused
    )


@pytest.fixture(scope="module")
def translated(local_stack: stack.LocalStack, sam_template: dict[str, Any]) -> dict[str, Any]:
    return tpl.translate(sam_template, local_stack.parameters)


@pytest.fixture(scope="module")
def aws(local_stack: stack.LocalStack) -> Any:
    """aws("s3") -> a boto3 client on the local stack's emulator."""
    return lambda service: emulator.client(service, local_stack.endpoint)
