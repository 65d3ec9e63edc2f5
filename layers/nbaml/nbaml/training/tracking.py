"""Experiment tracking: each retrain run logged to an MLflow tracking server, as a side channel.

Side channel. Tracking follows the decision and never changes it: ``log_run`` never raises. Any failure
(no server configured where one was asked for, a URI that is not a server's, a server that is down, slow
or answers an error, a store that refuses the write) is logged as a warning with its reason and returned
in the ``TrackingResult``; the pipeline counts it in the ``TrackingFailed`` metric (alarmed in the
template). A retrain that promoted stays promoted, and its invocation succeeds, whatever the tracking
server did. Every request has a timeout and the whole log a deadline, so a server that hangs costs the
run at most ``DEADLINE_S``.

MLflow's REST API, not the mlflow package. The package cannot ride in the retrain function: mlflow-skinny
3.17 with its dependencies is 117 MB unzipped, beside 223.6 MB of function and layers under Lambda's
250 MB. Its REST API (``/api/2.0/mlflow``, documented and versioned) and the artifact proxy a tracking
server runs by default (``mlflow server`` serves artifacts unless ``--no-serve-artifacts``) are all a run
needs, over the standard library. The full ``mlflow`` package (the ``tracking`` extra) runs the server
and its UI, and the tests read every run back through MLflow's own client.

One run per version. A finished run tagged with the version is looked up first and reused, so a
redelivered retrain request that recovers its earlier outcome does not log the version twice.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(child=True)

API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
PROXIED_ARTIFACTS = "mlflow-artifacts"
REQUEST_TIMEOUT_S = 10.0
DEADLINE_S = 60.0
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
BUNDLE_ARTIFACT_PATH = "bundle"
# The MLflow UI opens an experiment of this kind on its training runs (not on the GenAI overview).
EXPERIMENT_KIND = {"key": "mlflow.experimentKind", "value": "custom_model_development"}


class TrackingError(Exception):
    """A tracking server could not be reached, or refused or failed a request (the reason, for the warning)."""


@dataclass(frozen=True)
class TrackingResult:
    """What tracking did for one run: nothing (not configured), a run id, or the reason it failed."""

    configured: bool
    run_id: str | None = None
    experiment_id: str | None = None
    reused: bool = False
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.configured and self.error is not None

    def as_dict(self) -> dict[str, Any]:
        if not self.configured:
            return {"configured": False}
        return {
            "configured": True,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "reused": self.reused,
            "error": self.error,
        }


NOT_CONFIGURED = TrackingResult(configured=False)


def log_run(
    tracking_uri: str,
    experiment: str,
    version: str,
    metadata: Mapping[str, Any],
    files: Mapping[str, bytes],
    status: str,
) -> TrackingResult:
    """Log one retrain run (tags, parameters, metrics, the bundle's files); never raises.

    An empty ``tracking_uri`` means tracking is off. The run is named after the version and tagged with
    it, the outcome's status, the trigger and the request id.
    """
    if not tracking_uri:
        return NOT_CONFIGURED
    try:
        server = TrackingServer(tracking_uri)
        experiment_id = server.experiment_id(experiment)
        earlier = server.finished_run(experiment_id, version)
        if earlier is not None:
            return TrackingResult(True, run_id=earlier, experiment_id=experiment_id, reused=True)
        run_id = server.log(experiment_id, version, metadata, files, status)
    except TrackingError as exc:
        reason = str(exc)
    except Exception as exc:  # a side channel: a bug here must not fail a retrain either, but it is named
        reason = f"unexpected {type(exc).__name__}: {exc}"
    else:
        logger.info("retrain run tracked", extra={"version": version, "run_id": run_id, "server": server.where})
        return TrackingResult(True, run_id=run_id, experiment_id=experiment_id)
    logger.warning(
        "experiment tracking failed; the retrain's outcome stands",
        extra={"version": version, "tracking_uri": redacted(tracking_uri), "reason": reason},
    )
    return TrackingResult(True, error=reason)


def redacted(uri: str) -> str:
    """``uri`` without any user:password part, for logs and messages."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def run_contents(version: str, metadata: Mapping[str, Any], status: str) -> dict[str, Any]:
    """The tags, parameters and metrics of a version's run, in the shapes MLflow's log-batch takes."""
    tags = {
        "version": version,
        "status": status,
        "trigger": str(metadata.get("trigger", "")),
        "request_id": str(metadata.get("request_id", "")),
        "data_hash": str(metadata.get("data_hash", "")),
        "mlflow.source.name": "nbaml retrain",
    }
    reason = str(metadata.get("reason", ""))
    if reason:
        tags["mlflow.note.content"] = reason
    params = {str(k): str(v) for k, v in (metadata.get("hyperparameters") or {}).items()}
    window = metadata.get("training_window") or {}
    params |= {str(k): str(v) for k, v in window.items() if not isinstance(v, dict | list)}  # train_start ...
    params |= {k: str(metadata[k]) for k in ("n_train", "seed") if k in metadata}
    metrics = _numbers(metadata.get("metrics"))
    evaluation = metadata.get("evaluation") or {}
    for baseline in ("always_home", "elo"):  # the baselines on the same holdout games, beside the candidate
        metrics |= {f"{baseline}.{k}": v for k, v in _numbers(evaluation.get(baseline)).items()}
    return {"tags": tags, "params": params, "metrics": metrics}


def _numbers(scores: Any) -> dict[str, float]:
    if not isinstance(scores, Mapping):
        return {}
    return {str(k): float(v) for k, v in scores.items() if isinstance(v, int | float) and not isinstance(v, bool)}


class TrackingServer:
    """An MLflow tracking server at an http(s) URL, spoken to through its REST API within one deadline."""

    def __init__(self, uri: str, *, deadline_s: float = DEADLINE_S, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TrackingError(
                f"MLFLOW_TRACKING_URI {redacted(uri)!r} is not an MLflow tracking server's http(s) URL: the retrain "
                "function logs over MLflow's REST API (start one with `nbaml stack up --mlflow` or `mlflow server`)"
            )
        if parts.username or parts.password:
            raise TrackingError(f"MLFLOW_TRACKING_URI {redacted(uri)!r} carries credentials; nbaml sends none")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.where = redacted(uri)
        self.timeout_s = timeout_s
        self.ends = time.monotonic() + deadline_s

    # ---------------------------------------------------------------- the run
    def experiment_id(self, name: str) -> str:
        """The experiment's id, created (as a training experiment) on first use."""
        try:
            found = self.call("GET", f"{API}/experiments/get-by-name", query={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except _NotFound:
            pass
        try:
            created = self.call("POST", f"{API}/experiments/create", {"name": name, "tags": [EXPERIMENT_KIND]})
            return str(created["experiment_id"])
        except _AlreadyExists:  # another run created it meanwhile
            found = self.call("GET", f"{API}/experiments/get-by-name", query={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])

    def finished_run(self, experiment_id: str, version: str) -> str | None:
        """The id of a finished run already logged for ``version``, if any."""
        found = self.call(
            "POST",
            f"{API}/runs/search",
            {
                "experiment_ids": [experiment_id],
                "filter": f"tags.version = '{version}' and attributes.status = 'FINISHED'",
                "max_results": 1,
            },
        )
        runs = found.get("runs") or []
        return str(runs[0]["info"]["run_id"]) if runs else None

    def log(
        self, experiment_id: str, version: str, metadata: Mapping[str, Any], files: Mapping[str, bytes], status: str
    ) -> str:
        """Create the run, log its contents and the bundle's files, and finish it (FAILED if a step failed)."""
        contents = run_contents(version, metadata, status)
        created = self.call(
            "POST",
            f"{API}/runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": version,
                "start_time": _millis(),
                "tags": [{"key": k, "value": v} for k, v in contents["tags"].items()],
            },
        )
        info = created["run"]["info"]
        run_id = str(info["run_id"])
        try:
            now = _millis()
            self.call(
                "POST",
                f"{API}/runs/log-batch",
                {
                    "run_id": run_id,
                    "params": [{"key": k, "value": v} for k, v in contents["params"].items()],
                    "metrics": [
                        {"key": k, "value": v, "timestamp": now, "step": 0} for k, v in contents["metrics"].items()
                    ],
                },
            )
            artifacts = self._artifact_path(str(info.get("artifact_uri", "")))
            for name, body in sorted(files.items()):
                self.call("PUT", f"{artifacts}/{BUNDLE_ARTIFACT_PATH}/{urllib.parse.quote(name)}", raw=body, name=name)
        except TrackingError:
            self._finish(run_id, "FAILED")
            raise
        self._finish(run_id, "FINISHED")
        return run_id

    def _finish(self, run_id: str, run_status: str) -> None:
        try:
            self.call("POST", f"{API}/runs/update", {"run_id": run_id, "status": run_status, "end_time": _millis()})
        except TrackingError:
            if run_status == "FINISHED":
                raise
            # Marking a failed run FAILED is best effort: the original reason is the one reported.

    @staticmethod
    def _artifact_path(artifact_uri: str) -> str:
        """Where the server's artifact proxy takes the run's files (``mlflow-artifacts:/1/<run>/artifacts``)."""
        parts = urllib.parse.urlsplit(artifact_uri)
        if parts.scheme != PROXIED_ARTIFACTS:
            raise TrackingError(
                f"the run's artifact root {artifact_uri!r} is not served by the tracking server; start it with "
                "--serve-artifacts (MLflow's default) so the bundle can be uploaded through it"
            )
        return f"{ARTIFACTS_API}/{parts.path.lstrip('/')}"

    # ---------------------------------------------------------------- the wire
    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        name: str = "",
    ) -> dict[str, Any]:
        """One request within the deadline; the JSON answer, or a TrackingError naming what went wrong."""
        remaining = self.ends - time.monotonic()
        if remaining <= 0:
            raise TrackingError(f"tracking took longer than its {DEADLINE_S:.0f} s budget at {self.where}")
        target = self.prefix + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        if raw is not None:
            data, content_type = raw, mimetypes.guess_type(name)[0] or "application/octet-stream"
        else:
            data, content_type = json.dumps(body or {}).encode(), "application/json"
        timeout = min(self.timeout_s, remaining)
        if self.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            headers = {"Content-Type": content_type, "Accept": "application/json"}
            connection.request(method, target, body=None if method == "GET" else data, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_RESPONSE_BYTES + 1)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS failure
            raise TrackingError(f"{method} {path} at {self.where}: {type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
        if len(answer) > MAX_RESPONSE_BYTES:
            raise TrackingError(f"{method} {path} at {self.where}: the answer exceeds {MAX_RESPONSE_BYTES} bytes")
        return _answer(method, path, self.where, status, answer)


class _NotFound(TrackingError):
    pass


class _AlreadyExists(TrackingError):
    pass


def _answer(method: str, path: str, where: str, status: int, answer: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(answer) if answer.strip() else {}
    except ValueError:
        decoded = None
    if 200 <= status < 300:
        if not isinstance(decoded, dict):
            raise TrackingError(f"{method} {path} at {where}: HTTP {status} but not an MLflow answer")
        return decoded
    code = decoded.get("error_code", "") if isinstance(decoded, dict) else ""
    message = decoded.get("message", "") if isinstance(decoded, dict) else answer[:200].decode(errors="replace")
    detail = f"{method} {path} at {where}: HTTP {status} {code} {message}".rstrip()
    if code == "RESOURCE_DOES_NOT_EXIST":
        raise _NotFound(detail)
    if code == "RESOURCE_ALREADY_EXISTS":
        raise _AlreadyExists(detail)
    raise TrackingError(detail)


def _millis() -> int:
    return int(time.time() * 1000)
