"""The predictor's simulated clock (nbaml.serving.clock): a seam only the local replays set.

The template must never declare the variable (a deployed function would then read its time from a
parameter); the clock reads the instant its parameter holds, refuses one without an offset, and the
predict handler serves on it when, and only when, the variable names a parameter.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from infra import template as tpl
from nbaml.errors import StorageError
from nbaml.serving import clock

INSTANT = dt.datetime(2022, 10, 20, 15, 0, tzinfo=dt.UTC)  # 11:00 Eastern (EDT)
PARAMETER = "/nbaml-local/replay/now"


def declaring_the_clock(template: dict[str, Any]) -> list[str]:
    """Where ``template`` declares SIMULATED_CLOCK_PARAM: its Globals, or a function (Globals merged)."""
    found = []
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    if clock.SIMULATED_CLOCK_PARAM in (globals_env.get("Variables") or {}):
        found.append("Globals")
    for logical_id in tpl.resources_of_type(template, tpl.FUNCTION):
        if clock.SIMULATED_CLOCK_PARAM in tpl.function_environment(template, logical_id):
            found.append(logical_id)
    return found


def test_given_template_yaml_then_no_function_is_given_a_simulated_clock() -> None:
    template = tpl.load()
    assert declaring_the_clock(template) == []
    # and the check sees a declaration wherever one would be made (the Globals, or one function)
    predict = next(lid for lid in tpl.resources_of_type(template, tpl.FUNCTION) if lid.startswith("Predict"))
    in_globals = copy.deepcopy(template)
    globals_env = in_globals.setdefault("Globals", {}).setdefault("Function", {}).setdefault("Environment", {})
    globals_env.setdefault("Variables", {})[clock.SIMULATED_CLOCK_PARAM] = PARAMETER
    assert predict in declaring_the_clock(in_globals) and "Globals" in declaring_the_clock(in_globals)
    in_function = copy.deepcopy(template)
    properties = in_function["Resources"][predict]["Properties"]
    properties.setdefault("Environment", {}).setdefault("Variables", {})[clock.SIMULATED_CLOCK_PARAM] = PARAMETER
    assert declaring_the_clock(in_function) == [predict]


def test_given_no_variable_or_an_empty_one_then_the_clock_is_the_machines() -> None:
    assert clock.from_environment({}) is None
    # the SAM tier's local template declares every env-file name for all functions, empty where unset
    assert clock.from_environment({clock.SIMULATED_CLOCK_PARAM: ""}) is None
    assert clock.from_environment({clock.SIMULATED_CLOCK_PARAM: PARAMETER}) == clock.SimulatedClock(PARAMETER)


def test_given_a_written_instant_then_the_clock_reads_it_until_the_next_write(stack: Any) -> None:
    read = clock.SimulatedClock(PARAMETER)
    clock.write_instant(PARAMETER, INSTANT.astimezone(dt.timezone(dt.timedelta(hours=-4))))
    assert read() == INSTANT and read().tzinfo == dt.UTC
    clock.write_instant(PARAMETER, INSTANT + dt.timedelta(days=1))
    assert read() == INSTANT + dt.timedelta(days=1)


def test_given_no_parameter_or_an_instant_without_offset_then_it_refuses_naming_the_parameter(stack: Any) -> None:
    with pytest.raises(StorageError, match=f"{PARAMETER} cannot be read"):
        clock.SimulatedClock(PARAMETER)()
    with pytest.raises(ValueError, match="needs a time zone"):
        clock.write_instant(PARAMETER, INSTANT.replace(tzinfo=None))
    import boto3

    boto3.client("ssm").put_parameter(Name=PARAMETER, Value="2022-10-20T15:00:00", Type="String")
    with pytest.raises(StorageError, match="without its offset"):
        clock.SimulatedClock(PARAMETER)()
    boto3.client("ssm").put_parameter(Name=PARAMETER, Value="tomorrow", Type="String", Overwrite=True)
    with pytest.raises(StorageError, match="not an ISO 8601 instant"):
        clock.SimulatedClock(PARAMETER)()
