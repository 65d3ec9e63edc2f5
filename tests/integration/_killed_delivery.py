"""A retrain delivery killed right after it promoted: ``python -m tests.integration._killed_delivery STATE EVENT ENV``.

Run by tests/integration/test_delivery.py as its own process, so the death is real: SIGKILL, straight
after the promotion's role write returned, before the run records its decision, tracks, emits or returns
(nothing of the process runs after it: no ``finally``, no Powertools clean-up, the retrain lock stays).
The Lambda context is given a 2 s timeout instead of 900 s: its INPROGRESS record lapses 2 s after the
delivery started, as a real one lapses 900 s after, well before SQS's visibility timeout (5,400 s) lets the
message be delivered again.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from infra import runtime
from infra import stack as stk
from nbaml import deployment

LAMBDA_TIMEOUT_S = 2


def main(state_dir: str, event_file: str, env_file: str) -> None:
    stack = stk.LocalStack.load(Path(state_dir))
    retrain = stack.function_id("retrain")
    stack.function_settings[retrain]["Timeout"] = LAMBDA_TIMEOUT_S
    real_promote = deployment.Deployment.promote

    def promote_then_die(self: deployment.Deployment, *args: object, **kwargs: object) -> object:
        real_promote(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: the process was killed")

    deployment.Deployment.promote = promote_then_die  # type: ignore[method-assign]
    event = json.loads(Path(event_file).read_text())
    runtime.invoke(stack, retrain, event, extra_env=json.loads(Path(env_file).read_text()))
    raise AssertionError("the delivery returned: it was meant to die right after promoting")


if __name__ == "__main__":
    main(*sys.argv[1:4])
