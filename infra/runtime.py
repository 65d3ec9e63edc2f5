"""``sam local invoke``, in-process: a handler of the template run with its function's deployed environment.

moto runs no Lambda code without Docker, so the handler runs here, from the repository's sources, with
the environment moto's Lambda holds for it (pointed at the emulator). Each function's module is imported
once under its own name and kept, so a second invoke finds the caches and clients of the first, as a warm
Lambda would; a new endpoint (a new stack) means a cold start. ``invoke_async`` adds what Lambda does
around an asynchronous invocation (a schedule's): the retries, and the on-failure record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from infra import emulator as emu
from infra import stack as stk

_WARM: dict[tuple[str, str, str], ModuleType] = {}


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = self.invoked_function_arn or (
            f"arn:aws:lambda:{emu.LOCAL_REGION}:{emu.LOCAL_ACCOUNT_ID}:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self.log_stream_name = self.log_stream_name or f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@contextlib.contextmanager
def function_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Apply ``env`` to os.environ for the block and restore it exactly afterwards.

    nbaml's AWS clients are cached per endpoint and identity (nbaml.storage.aws), so a block pointed at
    another emulator or signing as another role gets its own clients without anything being reset here.
    boto3's module-level default session caches the credentials it first found, so it is dropped on the
    way in and out: ``boto3.client(...)`` inside the block signs with the block's credentials.
    """
    import boto3

    saved = dict(os.environ)
    os.environ.update(env)
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        boto3.DEFAULT_SESSION = None


def _handler_module(stack: stk.LocalStack, logical_id: str) -> tuple[ModuleType, str]:
    """The function's handler module (imported once, kept warm) and the handler's attribute name."""
    settings = stack.function_settings[logical_id]
    module_name, _, attribute = str(settings["Handler"]).rpartition(".")
    source_dir = Path(stack.function_dirs[logical_id])
    key = (stack.endpoint, logical_id, str(source_dir))
    if key not in _WARM:
        path = source_dir / f"{module_name.replace('.', '/')}.py"
        if not path.exists():
            raise stk.StackError(f"{logical_id}: handler file {path} does not exist")
        unique = f"nbaml_local_{_module_safe(logical_id)}_{len(_WARM)}"
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise stk.StackError(f"{logical_id}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        # Lambda puts the code directory first on sys.path: a handler may import its sibling modules.
        sys.path.insert(0, str(source_dir))
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(unique, None)
            raise
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(source_dir))
        _WARM[key] = module
    return _WARM[key], attribute


def _module_safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def invoke(
    stack: stk.LocalStack,
    function: str,
    event: Any,
    *,
    extra_env: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> Any:
    """Run ``function``'s handler on ``event`` in this process and return what it returns.

    ``function`` is a logical id (CollectFunction) or a short name (collect). The handler's exceptions
    propagate: a scheduled handler that fails must fail here as it would fail in Lambda. ``request_id``
    is the context's (a new one by default; Lambda keeps one across an asynchronous event's retries).
    """
    logical_id = stack.function_id(function)
    env = {**stack.env_for(logical_id), **(extra_env or {})}
    settings = stack.function_settings[logical_id]
    with function_environment(env):
        module, attribute = _handler_module(stack, logical_id)
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise stk.StackError(f"{logical_id}: {module.__file__} has no handler {attribute!r}")
        context = LocalLambdaContext(
            function_name=env["AWS_LAMBDA_FUNCTION_NAME"],
            memory_limit_in_mb=int(settings["MemorySize"]),
            timeout_s=int(settings["Timeout"]),
            **({"aws_request_id": request_id} if request_id else {}),
        )
        return handler(event, context)


# Lambda's default for an asynchronous event without an EventInvokeConfig: two retries.
DEFAULT_ASYNC_RETRIES = 2


def invoke_async(
    stack: stk.LocalStack, function: str, event: Any, *, extra_env: Mapping[str, str] | None = None
) -> Any:
    """An asynchronous invocation (what a schedule makes) as Lambda runs it, in this process.

    The handler runs, and on an error runs again up to the function's ``MaximumRetryAttempts`` (its
    EventInvokeConfig, deployed; Lambda waits a minute or two between tries, this does not), under one
    request id. A run that fails every try is sent as Lambda's on-failure record (the event, the error and
    its stack) to the function's OnFailure queue, signed with the function's own execution role as Lambda
    sends it; then its last error is raised. Without a destination the event is dropped, as on AWS.
    """
    logical_id = stack.function_id(function)
    config = stack.function_settings[logical_id].get("EventInvokeConfig") or {}
    tries = 1 + int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
    request_id, error = str(uuid.uuid4()), None
    for _ in range(tries):
        try:
            return invoke(stack, logical_id, event, extra_env=extra_env, request_id=request_id)
        except Exception as exc:  # the handler's error: Lambda retries it
            error = exc
    assert error is not None  # tries >= 1, and every try raised
    if destination := config.get("OnFailure"):
        record = on_failure_record(stack, logical_id, event, error, request_id=request_id, tries=tries)
        _send_with_role(stack, logical_id, destination["QueueUrl"], record)
    raise error


def on_failure_record(
    stack: stk.LocalStack, logical_id: str, event: Any, error: BaseException, *, request_id: str, tries: int
) -> dict[str, Any]:
    """Lambda's on-failure destination record of an asynchronous event whose retries all failed."""
    function_arn = f"arn:aws:lambda:{emu.LOCAL_REGION}:{emu.LOCAL_ACCOUNT_ID}:function:{stack.resource(logical_id)}"
    return {
        "version": "1.0",
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": tries,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "requestId": request_id,
            "stackTrace": traceback.format_tb(error.__traceback__),
        },
    }


def _send_with_role(stack: stk.LocalStack, logical_id: str, queue_url: str, record: Mapping[str, Any]) -> None:
    import boto3

    with function_environment(stack.env_for(logical_id)):
        boto3.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str))


def forget_warm_modules() -> None:
    """Cold-start every function on its next invoke (tests that change a function's environment)."""
    for module in _WARM.values():
        sys.modules.pop(module.__name__, None)
    _WARM.clear()


def forget_parameters_and_modules() -> None:
    """What a new stack must not inherit from the last: warm handlers and nbaml's cached SSM parameters.

    (nbaml's AWS clients are cached per endpoint, so they need no reset.)
    """
    from nbaml.storage import parameters

    forget_warm_modules()
    parameters.reset_cache()


def deliver_queue(queue_url: str, handle: Callable[[dict[str, Any]], Any], env: Mapping[str, str]) -> list[Any]:
    """The local twin of Lambda's SQS event source mapping, which moto cannot run without Docker.

    Each queued message is handed to ``handle`` as an SQS event of one record and deleted only after
    ``handle`` returned without reporting it in ``batchItemFailures`` (the mapping's
    ReportBatchItemFailures); an exception or a reported failure leaves it in flight, to be delivered
    again once its visibility timeout passes, as SQS does. Returns the results.
    ``env`` is the receiving function's environment: the mapping polls and deletes with that function's
    execution role, as Lambda's does.
    """
    from nbaml.storage.queue import delete_retrain_request, receive_retrain_requests

    def polled(operation: Callable[[], Any]) -> Any:
        with function_environment(env):
            return operation()

    results = []
    while records := polled(lambda: receive_retrain_requests(queue_url)):
        for record in records:
            result = handle({"Records": [record]})
            results.append(result)
            failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
            if record["messageId"] not in failed:
                polled(lambda record=record: delete_retrain_request(queue_url, record["receiptHandle"]))
    return results


EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def http_api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    stage: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event for the predict function, shaped like events/predict-*.json.

    ``stage`` puts ``/{stage}`` in front of the path, as a named HTTP API stage does on AWS (the function
    strips it); ``body`` is sent as JSON unless it is already a string.
    """
    import copy
    import json
    import urllib.parse

    event = copy.deepcopy(json.loads((EVENTS_DIR / "predict-health.json").read_text()))
    raw_path = f"/{stage}{path}" if stage else path
    text = body if isinstance(body, str) or body is None else json.dumps(body, separators=(",", ":"))
    event["rawPath"] = raw_path
    event["rawQueryString"] = urllib.parse.urlencode(query or {})
    event["headers"] = {**event["headers"], **{k.lower(): v for k, v in (headers or {}).items()}}
    if text is not None:
        event["headers"] |= {"content-type": "application/json", "content-length": str(len(text.encode()))}
        event["body"] = text
    event["isBase64Encoded"] = False
    if query:
        event["queryStringParameters"] = dict(query)
    context = event["requestContext"]
    context["http"] = {**context["http"], "method": method.upper(), "path": raw_path}
    context["requestId"] = str(uuid.uuid4())
    if stage:
        context["stage"] = stage
    return event
