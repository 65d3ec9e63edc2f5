"""Faults injected through the real dependency, for the drills (tests/README.md lists who uses which).

Nothing here patches nbaml's own code. AWS faults act on the boto3 client nbaml's code uses
(``nbaml.storage.aws``), through botocore's own event hooks, so botocore's retry handler, its backoff and
nbaml's error translation all run as in an outage:

- ``Unreachable``: every request of the client is sent to a closed port on 127.0.0.1 (the connection is
  refused by the kernel, botocore retries it as a connection error and raises EndpointConnectionError);
- ``Throttled``: the service answers with its real throttling error (HTTP 400 and the error code
  DynamoDB sends, e.g. ProvisionedThroughputExceededException), which botocore's standard retry mode
  recognises as throttling, backs off from and retries;
- ``retries``: the production client configuration (``nbaml.storage.aws._CONFIG``: standard mode, its
  timeouts) with fewer attempts, for drills whose faults cost botocore's throttling backoff (1 s base).
  botocore's ``max_attempts`` counts retries: the production ``max_attempts=5`` sends a request 6 times;
  ``retries(total_attempts)`` sets ``total_max_attempts``, the first request included;
- ``Attempts``: every request the client sends of an operation, counted and timed, so a drill can show
  the retries happened and how long the failure path took.

moto's ``mock_aws`` answers requests in a ``before-send`` hook of its own, so these drills run against a moto
server over HTTP (the integration tier, or the replay's emulator), where requests leave on real sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.config import Config


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound once by us, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def retries(total_attempts: int) -> Iterator[Config]:
    """nbaml's clients built with the production configuration but ``total_attempts`` sends a request at most
    (the first included); clients reset around it."""
    from nbaml.storage import aws

    production = aws._CONFIG
    mode = production.retries["mode"]
    shortened = production.merge(Config(retries={"mode": mode, "total_max_attempts": total_attempts}))
    aws._CONFIG = shortened
    aws.reset_clients()
    try:
        yield shortened
    finally:
        aws._CONFIG = production
        aws.reset_clients()


def _event(client: Any, kind: str, operation: str | None) -> str:
    service = client.meta.service_model.service_id.hyphenize()
    return f"{kind}.{service}.{operation}" if operation else f"{kind}.{service}"


class Attempts:
    """Every request of ``client`` (for ``operation``, or all) as sent on the wire: its operation and the time."""

    def __init__(self, client: Any, operation: str | None = None) -> None:
        self.sent: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        client.meta.events.register(_event(client, "before-send", operation), self._record)

    def _record(self, request: Any, **kwargs: Any) -> None:
        with self._lock:
            self.sent.append((str(kwargs.get("event_name", "")).rsplit(".", 1)[-1], time.monotonic()))

    def count(self, operation: str | None = None) -> int:
        return sum(1 for name, _ in self.sent if operation is None or name == operation)


class Unreachable:
    """While ``on``, every request ``client`` sends (that ``when(request)`` picks) goes to a closed port on
    127.0.0.1 instead of its endpoint; ``refused`` counts the sends."""

    def __init__(self, client: Any, *, on: bool = True, when: Callable[[Any], bool] = lambda request: True) -> None:
        self.on = on
        self.when = when
        self.port = closed_port()
        self.refused = 0
        self.at: list[float] = []  # when each refused send left
        self.total_sends = int(client.meta.config.retries["total_max_attempts"])  # a request's sends, retries included
        client.meta.events.register(_event(client, "before-send", None), self._redirect)

    def _redirect(self, request: Any, **kwargs: Any) -> None:
        if not (self.on and self.when(request)):
            return None
        parts = urllib.parse.urlsplit(request.url)
        request.url = urllib.parse.urlunsplit(parts._replace(netloc=f"127.0.0.1:{self.port}"))
        self.refused += 1
        self.at.append(time.monotonic())
        return None  # botocore sends it: the kernel refuses the connection

    def requests(self) -> list[float]:
        """Each refused request's span, first send to last (botocore's backoff between its sends), in order."""
        assert self.refused % self.total_sends == 0, "a request was not sent the configured number of times"
        sends = self.at
        return [sends[n + self.total_sends - 1] - sends[n] for n in range(0, len(sends), self.total_sends)]

    def backoff_ceiling(self) -> float:
        """The longest botocore's standard mode waits in all between a connection error's sends (50 ms base,
        doubling, full jitter: the 1.44 botocore non-throttling schedule)."""
        return sum(min(0.05 * 2**n, 20.0) for n in range(self.total_sends - 1))


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


class Throttled:
    """While ``on``, ``operation`` requests of ``client`` (on ``table``, if given) get the service's throttling error.

    The answer is what DynamoDB sends when it throttles: HTTP 400 with ``__type`` naming the error code.
    """

    def __init__(
        self,
        client: Any,
        operation: str,
        *,
        code: str = "ProvisionedThroughputExceededException",
        table: str | None = None,
    ) -> None:
        self.on = True
        self.code = code
        self.table = table
        self.throttled = 0
        client.meta.events.register(_event(client, "before-send", operation), self._answer)

    def _answer(self, request: Any, **kwargs: Any) -> AWSResponse | None:
        if not self.on:
            return None
        if self.table is not None and json.loads(request.body or b"{}").get("TableName") != self.table:
            return None
        self.throttled += 1
        body = json.dumps(
            {
                "__type": f"com.amazonaws.dynamodb.v20120810#{self.code}",
                "message": "The level of configured provisioned throughput for the table was exceeded.",
            }
        ).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": f"drill-{self.throttled}"}
        return AWSResponse(request.url, 400, headers, _Body(body))
