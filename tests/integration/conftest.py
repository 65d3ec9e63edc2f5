"""The local stack for integration tests: template.yaml deployed once per module (``infra.stack.deployed``).

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
    with stack.deployed(template_path=template_path) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def translated(local_stack: stack.LocalStack, sam_template: dict[str, Any]) -> dict[str, Any]:
    return tpl.translate(sam_template, local_stack.parameters)


@pytest.fixture(scope="module")
def aws(local_stack: stack.LocalStack) -> Any:
    """aws("s3") -> a boto3 client on the local stack's emulator."""
    return lambda service: emulator.client(service, local_stack.endpoint)
