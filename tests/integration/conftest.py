"""The local stack for integration tests: an in-process moto server with template.yaml deployed once.

NBAML_TEST_TEMPLATE points the session at another copy of the template (to try a change before making
it); by default the repository's template.yaml is the one under test.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra import emulator, runtime, stack
from infra import template as tpl


@pytest.fixture(scope="session")
def template_path() -> Path:
    return Path(os.environ.get("NBAML_TEST_TEMPLATE", str(tpl.DEFAULT_TEMPLATE)))


@pytest.fixture(scope="session")
def sam_template(template_path: Path) -> dict[str, Any]:
    return tpl.load(template_path)


@pytest.fixture(scope="module")
def local_stack(template_path: Path) -> Iterator[stack.LocalStack]:
    """The template deployed on a fresh moto server, one per test module; the environment points at it meanwhile.

    Per module, not per session: moto's state is process-wide, so a module that starts emulators of its
    own (recovery, live serving) must find none running.
    """
    saved = dict(os.environ)
    with emulator.in_process() as endpoint:
        os.environ.update(emulator.local_aws_env(endpoint))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # moto: "not supported by CloudFormation"
                deployed = stack.deploy(endpoint, template_path, {"Stage": "dev"}, state_dir=None)
            yield deployed
        finally:
            runtime.forget_warm_modules()  # handlers warmed on this stack must not serve the next one
            os.environ.clear()
            os.environ.update(saved)


@pytest.fixture(scope="module")
def translated(local_stack: stack.LocalStack, sam_template: dict[str, Any]) -> dict[str, Any]:
    return tpl.translate(sam_template, local_stack.parameters)


@pytest.fixture(scope="module")
def aws(local_stack: stack.LocalStack) -> Any:
    """aws("s3") -> a boto3 client on the local stack's emulator."""
    return lambda service: emulator.client(service, local_stack.endpoint)


@contextlib.contextmanager
def emulated_stack(state_dir: Path) -> Iterator[stack.LocalStack]:
    """template.yaml deployed into a fresh moto server *process*; the process is stopped (state lost) after.

    A separate process, unlike ``local_stack``: tests that destroy and rebuild a stack need emulators
    whose state is really their own.
    """
    info = emulator.start(port=emulator.free_port(), state_dir=state_dir)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield stack.deploy(info.endpoint, tpl.DEFAULT_TEMPLATE, {"Stage": "dev"}, state_dir=None, linted=True)
    finally:
        emulator.stop(state_dir)
        runtime.forget_warm_modules()
