"""predict - the HTTP API (API Gateway HTTP API -> Mangum -> FastAPI).

Routes, auth and the hot swap of the active model live in nbaml.serving.api; this module only wraps the
app for Lambda. The app is built on the first request, not at import, so configuration errors surface
as a clear cold-start failure and tests can set the environment first. Its clock is the machine's, except
under a local replay that names a simulated one (nbaml.serving.clock: template.yaml never does).
"""

from __future__ import annotations

import os
from typing import Any

from nbaml import coldstart

coldstart.pause()  # until the first invocation has built the app (nbaml.coldstart says why)

from aws_lambda_powertools import Logger  # noqa: E402
from aws_lambda_powertools.utilities.typing import LambdaContext  # noqa: E402
from mangum import Mangum  # noqa: E402

from nbaml.serving import clock  # noqa: E402
from nbaml.serving.api import create_app  # noqa: E402

logger = Logger()
_asgi: Mangum | None = None


@coldstart.settles_after_first_call
@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _asgi
    # The HTTP API's request id: read directly rather than through correlation_id_path, whose JMESPath search
    # builds its function table on every call (a tenth of the decorator's cost per request).
    logger.set_correlation_id((event.get("requestContext") or {}).get("requestId"))
    if _asgi is None:
        # A named HTTP API stage puts "/{stage}" in front of every path; the routes are declared without it.
        app = create_app(now=clock.from_environment())
        _asgi = Mangum(app, lifespan="off", api_gateway_base_path=f"/{os.environ.get('STAGE', '')}")
    return _asgi(event, context)
