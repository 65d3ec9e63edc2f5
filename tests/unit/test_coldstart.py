"""nbaml.coldstart: the collector paused for a cold start, resumed (with the heap frozen) when the first call ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from nbaml import coldstart


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_the_first_call_resumes_the_collector_and_freezes_what_the_cold_start_made() -> None:
    calls: list[str] = []
    handler = coldstart.settles_after_first_call(lambda event: calls.append(event) or len(calls))
    coldstart.pause()
    assert not gc.isenabled()
    assert handler("first") == 1
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    gc.disable()
    assert handler("second") == 2  # later calls pass through and leave the collector alone
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0
    assert calls == ["first", "second"]


def test_a_first_call_that_fails_still_resumes_the_collector() -> None:
    def failing(event: str) -> None:
        raise RuntimeError(event)

    handler = coldstart.settles_after_first_call(failing)
    coldstart.pause()
    with pytest.raises(RuntimeError, match="boom"):
        handler("boom")
    assert gc.isenabled()


@pytest.mark.parametrize("function", ["predict", "authorizer"])
def test_request_path_functions_pause_the_collector_at_import(function: str) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"nbaml_coldstart_{function}_app", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not gc.isenabled()
    # the settling wrapper is the outermost decorator, so the whole first invocation runs before it resumes
    assert module.handler.__code__ is coldstart.settles_after_first_call(len).__code__
