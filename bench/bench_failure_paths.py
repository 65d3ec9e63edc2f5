"""What an AWS outage costs one call of nbaml's production client, beside the same call when AWS answers.

Why: the drills (tests/README.md) shorten nothing but the throttling retries, and assert bounds derived from the
client's configuration; the figures themselves belong here. Each call goes through ``nbaml.storage.aws`` with its
production configuration (standard retry mode, ``max_attempts=5``, which botocore counts as retries: 6 sends;
``connect_timeout=5``), against a moto server on 127.0.0.1:

- **baseline**: ``get_object`` on the emulator, and ``put_item`` on a table;
- **S3 refused**: the endpoint a closed port (the kernel refuses at once: only botocore's backoff, 50 ms base);
- **S3 blackholed**: the endpoint a port that never completes a handshake (a listening socket whose backlog is
  full): every send waits out ``connect_timeout``, the case the issue describes as 5 attempts x the timeout;
- **DynamoDB throttled**: ``put_item`` answered with ``ProvisionedThroughputExceededException`` (the drills'
  ``Throttled`` hook): botocore's throttling backoff, 1 s base, doubling, full jitter.

A call beyond the bound its configuration implies (+1 s) exits 1.
Run: ``.venv/bin/python bench/bench_failure_paths.py`` (about 80 s: the blackholed call alone is ~30 s). One run
(load 7 on 2 cores), median of the calls: baseline get_object 0.007 s; S3 refused 0.93 s (130x, ceiling 1.55 s);
S3 blackholed 31.5 s (4,400x, bound 6 x 5 s + 1.55 s); DynamoDB throttled 8.5 s, max 20.7 s (ceiling 31 s) against
0.020 s answered. A predict request that reads S3 while it is blackholed waits half a minute a read.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import faults

BUCKET, TABLE = "bench-failure-paths", "bench-failure-paths"


@contextlib.contextmanager
def endpoint(url: str) -> Iterator[None]:
    """nbaml's clients pointed at ``url`` for the block (fresh clients, the production configuration)."""
    from nbaml.storage import aws

    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = url
    aws.reset_clients()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = saved
        aws.reset_clients()


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 whose listen backlog is full: further connects get no SYN-ACK and time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        yield port
    finally:
        filler.close()
        server.close()


def timed(call: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(Exception):
            call()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    from moto.server import ThreadedMotoServer

    from nbaml.storage import aws

    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    print(f"machine: {platform.platform()} | cpus {os.cpu_count()} | load {os.getloadavg()[0]:.1f}")
    config = aws._CONFIG
    sends = int(config.retries["max_attempts"]) + 1
    print(f"client: retries {config.retries}, connect_timeout {config.connect_timeout} s -> {sends} sends a call\n")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    rows: list[tuple[str, list[float], str, float | None]] = []  # name, seconds, note, the bound from the config
    try:
        with endpoint(f"http://{host}:{port}"):
            aws.client("s3").create_bucket(Bucket=BUCKET)
            aws.client("s3").put_object(Bucket=BUCKET, Key="k", Body=b"x")
            aws.client("dynamodb").create_table(
                TableName=TABLE,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            get = lambda: aws.client("s3").get_object(Bucket=BUCKET, Key="k")["Body"].read()  # noqa: E731
            put = lambda: aws.client("dynamodb").put_item(TableName=TABLE, Item={"id": {"S": "1"}})  # noqa: E731
            rows.append(("S3 get_object, emulator answers (baseline)", timed(get, 20), "", None))
            rows.append(("DynamoDB put_item, emulator answers (baseline)", timed(put, 20), "", None))
            throttle = faults.Throttled(aws.client("dynamodb"), "PutItem")
            throttled = float(sum(min(2**n, 20) for n in range(sends - 1)))
            rows.append(("DynamoDB put_item, throttled", timed(put, 3), f"ceiling {throttled:.0f} s", throttled))
            throttle.on = False
        with endpoint(f"http://127.0.0.1:{faults.closed_port()}"):
            ceiling = sum(min(0.05 * 2**n, 20) for n in range(sends - 1))
            rows.append(("S3 get_object, closed port (refused)", timed(get, 5), f"ceiling {ceiling:.2f} s", ceiling))
        with blackhole() as hole, endpoint(f"http://127.0.0.1:{hole}"):
            bound = sends * float(config.connect_timeout) + ceiling
            rows.append(("S3 get_object, blackholed (connect timeout)", timed(get, 1), f"bound {bound:.1f} s", bound))
    finally:
        server.stop()

    return report(rows)


def report(rows: list[tuple[str, list[float], str, float | None]]) -> int:
    """The table, each call against the S3 baseline (the first row); 1 if a call went beyond its bound + 1 s."""
    base = statistics.median(rows[0][1])
    print(f"{'call':<48} {'median s':>9} {'max s':>8} {'vs S3 baseline':>15}  note")
    missed = []
    for name, times, note, limit in rows:
        median = statistics.median(times)
        print(f"{name:<48} {median:>9.3f} {max(times):>8.3f} {median / base:>14.0f}x  {note}")
        if limit is not None and max(times) > limit + 1.0:  # a second for a loaded machine
            missed.append(name)
    if missed:
        print("beyond the client's own bound: " + "; ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
