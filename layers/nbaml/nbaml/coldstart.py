"""A request-path function's cold start without the cyclic garbage collector.

Why: a cold start is imports (FastAPI and its OpenAPI models, botocore, Powertools) and the model load, and they
allocate a few hundred thousand objects that live as long as the execution environment. CPython's cyclic
collector is triggered by allocation counts, so while those imports run it keeps walking the growing heap of
young module objects, looking for cycles that are not garbage: about a tenth of the predict function's import
time (bench/bench_serving.py, "cold init"). So the collector is paused at the top of the handler module
(``pause``), before the heavy imports, and ``settles_after_first_call`` resumes it once the first invocation has
built the app and loaded the model: it first moves every object alive then into the permanent generation
(``gc.freeze``), so later collections during requests never walk the import-time heap again.

What it costs: cyclic garbage made during the cold start is not reclaimed (freeze keeps it); reference counting
still frees everything else, and the collector runs normally from the second invocation on.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any, TypeVar

Handler = TypeVar("Handler", bound=Callable[..., Any])


def pause() -> None:
    """Stop cyclic collection until the first invocation ends (call before the function's heavy imports)."""
    gc.disable()


def settles_after_first_call(handler: Handler) -> Handler:
    """``handler``, which resumes the collector when its first call ends, having frozen the cold start's heap."""
    settled = False

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal settled
        if settled:
            return handler(*args, **kwargs)
        try:
            return handler(*args, **kwargs)
        finally:
            settled = True
            gc.freeze()
            gc.enable()

    return wrapper  # type: ignore[return-value]
