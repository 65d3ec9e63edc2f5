"""The predictor's clock: the machine's, or, in a local season replay only, a simulated instant held in SSM.

The predictor decides from its clock which league day it is (the dates a slate may ask for) and whether a
game has started (after its tip-off nothing is logged). A replay lives weeks in minutes, so it must serve
on its own simulated time. The in-process replay hands its clock to ``create_app(now=...)``. SAM's predict
container is another process on the machine's clock, so there the seam is an environment variable,
``SIMULATED_CLOCK_PARAM``, naming an SSM parameter that holds the simulated instant (ISO 8601 with its
offset): the SAM replay sets the variable through its ``--env-vars`` file and writes the parameter before
each simulated day's requests (``write_instant``). When the variable is set, every prediction request
reads the parameter once (``SimulatedClock``); when it is unset or empty, nothing is read and the clock is
the machine's.

Why no caller of a deployed API can move the clock:
- template.yaml never declares the variable (tests/unit/test_clock.py fails if any function, or the
  Globals, does), and a Lambda function's environment is only what its template declares, so a deployed
  predict function never reads a parameter for its time: it runs on the machine's clock.
- Nothing in a request reaches the clock: no route takes a time, and no route writes an SSM parameter of
  any name (the admin routes write the role parameters, through their own checked code).
- The predict role is granted no read of such a parameter, so even a hand-edited function environment
  would fail on AWS rather than read a clock someone else set.
Locally, only the replay process writes the parameter, into its own emulator.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import StorageError
from nbaml.storage.aws import client

SIMULATED_CLOCK_PARAM = "SIMULATED_CLOCK_PARAM"


def from_environment(environ: Mapping[str, str] | None = None) -> Callable[[], dt.datetime] | None:
    """The simulated clock the environment names, or None (the machine's clock) when it names none."""
    name = (os.environ if environ is None else environ).get(SIMULATED_CLOCK_PARAM, "")
    return SimulatedClock(name) if name else None


@dataclass(frozen=True)
class SimulatedClock:
    """Reads the simulated instant from the SSM parameter ``parameter`` on every call (once a request)."""

    parameter: str

    def __call__(self) -> dt.datetime:
        try:
            value = client("ssm").get_parameter(Name=self.parameter)["Parameter"]["Value"]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"the simulated clock {self.parameter} cannot be read: {exc}") from exc
        return decode(value, self.parameter)


def encode(instant: dt.datetime) -> str:
    """The parameter's value for ``instant`` (which must carry its time zone)."""
    if instant.tzinfo is None:
        raise ValueError(f"a simulated instant needs a time zone: {instant!r}")
    return instant.astimezone(dt.UTC).isoformat()


def decode(value: str, parameter: str = "the simulated clock") -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(value)
    except ValueError:
        raise StorageError(f"{parameter} holds {value!r}, not an ISO 8601 instant") from None
    if instant.tzinfo is None:
        raise StorageError(f"{parameter} holds {value!r}, an instant without its offset")
    return instant.astimezone(dt.UTC)


def write_instant(parameter: str, instant: dt.datetime) -> None:
    """Set the simulated clock (the replay's side of the seam; the replay's own credentials and emulator)."""
    client("ssm").put_parameter(Name=parameter, Value=encode(instant), Type="String", Overwrite=True)
