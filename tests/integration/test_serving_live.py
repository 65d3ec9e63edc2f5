"""Serving on a live local stack: the app over real HTTP (uvicorn on 127.0.0.1), switched by its SSM parameters.

The issue's "done when": ``infra/rollback.sh v1`` moves a running server within max_age with zero failed
requests while clients hammer it; the checked CLI (``nbaml rollback previous``, ``nbaml promote``) works and
refuses a missing version in one line; the canary serves exactly the games whose stable hash falls under its
percent; the shadow is logged and never returned; and every role's prediction is logged once per game,
version and role however often it is asked.

The module deploys its own stack on its own in-process moto server, so the roles it flips never meet another
module's expectations. MODEL_PARAM_MAX_AGE_SECONDS is 1 here (30 on AWS): the same code path, a shorter wait.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra import runtime
from infra import stack as stk
from infra.replay import ApiServer
from tests.conftest import off_season, synthetic_history, train_versions

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLLBACK_SH = REPO_ROOT / "infra" / "rollback.sh"
MAX_AGE_S = 1.0
V1 = "v1"
V2 = "v20210602_000000"
V3 = "v20210603_000000"
QUIET = {"POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
TEAMS = ("ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND", "LAC", "LAL", "MEM")


@dataclass
class Live:
    stack: stk.LocalStack
    api: ApiServer
    client: httpx.Client
    state_dir: Path
    first_day: dt.date
    settings: Any
    games: list[tuple[str, str]] = field(default_factory=list)

    def day(self, offset: int) -> str:
        return (self.first_day + dt.timedelta(days=offset)).isoformat()


def _deployment(live: Live) -> Any:
    from nbaml.deployment import Deployment

    return Deployment(live.settings)


def _wait_for(live: Live, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 10.0) -> None:
    """Poll /health until the server shows ``check``; the roles follow their parameters within max_age."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = live.client.get("/health").json()
        if check(body):
            return
        time.sleep(0.1)
    raise AssertionError(f"the server never showed {what}; last /health: {body}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Own stack; two synthetic seasons; three trained versions (v1, V2, V3); v1 active; the API on uvicorn."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, PredictSettings, RetrainSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.games.feeds.base import FeedBatch
    from nbaml.serving.api import create_app
    from nbaml.storage import aws, parameters
    from nbaml.storage.registry import VersionStatus

    state_dir = tmp_path_factory.mktemp("nbaml-state")  # stack.json lands here, as `nbaml stack up` leaves it
    with stk.deployed(state_dir=state_dir, iam=True) as deployed:
        with runtime.function_environment(deployed.operator_env("retrain") | QUIET):
            history = synthetic_history(seed=7)
            # the days the tests ask about are complete ones (their matchups off any schedule: hypothetical)
            load(
                load_settings(CommonSettings),
                FeedBatch(games=history),
                source="generator",
                complete_through=off_season(history),
            )
            train_versions(load_settings(RetrainSettings), (1, 2, 3), requested_by="test")
        serving = {"MODEL_PARAM_MAX_AGE_SECONDS": str(int(MAX_AGE_S))}
        with runtime.function_environment(deployed.env_for("predict") | QUIET | serving):
            parameters.reset_cache()
            app, identity = create_app(), aws.current_identity()  # the app signs as the predict function
        # The test itself acts as the operator: it reads tables, runs the command line, drains the queue.
        with runtime.function_environment(deployed.operator_env("predict") | QUIET | serving):
            settings = load_settings(PredictSettings)
            deployment = Deployment(settings)
            for version in (V1, V2, V3):
                status = deployment.registry.get(version)["status"]
                assert status != VersionStatus.REJECTED.value, f"{version} was rejected: the test needs three"
            deployment.promote(V1, by="test", why="the live serving tests start from v1")
            first_day = max(g.game_date for g in history) + dt.timedelta(days=1)
            with ApiServer(app, identity) as api, httpx.Client(base_url=api.url, timeout=10) as client:
                games = [(h, a) for h in TEAMS for a in TEAMS if h != a]
                yield Live(deployed, api, client, state_dir, first_day, settings, games)


@pytest.fixture
def roles(live: Live) -> Live:
    """Each test starts from v1 active, no canary, no shadow, and a server that already follows that."""
    deployment = _deployment(live)
    deployment.clear_canary(by="test", why="reset between tests")
    deployment.clear_shadow(by="test", why="reset between tests")
    deployment.promote(V1, by="test", why="reset between tests")
    _wait_for(
        live,
        lambda h: h["active"]["version"] == V1 and h["canary"] is None and h["shadow"] is None,
        "v1 alone",
    )
    return live


def _cli(live: Live, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args, "--state-dir", str(live.state_dir)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def _slate(live: Live, day: str, games: list[tuple[str, str]]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for i in range(0, len(games), 20):
        body = {"games": [{"home": h, "away": a, "date": day} for h, a in games[i : i + 20]]}
        response = live.client.post("/predictions", json=body)
        assert response.status_code == 200, response.text
        answers += response.json()["predictions"]
    return answers


# ---------------------------------------------------------------- (a) the emergency script under load
@dataclass
class Hammer:
    """Threads asking /predictions until stopped; every answer kept with when it was asked."""

    live: Live
    threads: int = 4
    results: list[tuple[float, float, int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, worker: int) -> None:
        day = self.live.day(0)
        with httpx.Client(base_url=self.live.api.url, timeout=10) as http:
            n = worker
            while not self._stop.is_set():
                home, away = self.live.games[n % len(self.live.games)]
                n += self.threads
                started = time.monotonic()
                try:
                    response = http.post("/predictions", json={"home": home, "away": away, "date": day})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                ended = time.monotonic()
                with self._lock:
                    if response.status_code != 200:
                        self.failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                    else:
                        self.results.append((started, ended, n, response.json()["predictions"][0]["version"]))

    def wait_for(self, condition: Any, timeout: float = 30.0) -> None:
        """Keep hammering until ``condition(results)`` holds (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if condition(list(self.results)):
                    return
            time.sleep(0.05)

    def __enter__(self) -> Hammer:
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)


def _rollback_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROLLBACK_SH), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def test_given_v2_under_load_when_rollback_sh_writes_v1_then_it_switches_within_max_age_and_no_request_fails(
    roles: Live,
) -> None:
    live = roles
    # Given: V2 is the champion and the server already serves it
    _deployment(live).promote(V2, by="test", why="start the rollback drill from v2")
    _wait_for(live, lambda h: h["active"]["version"] == V2, "V2 active")

    # When: four clients hammer /predictions while infra/rollback.sh writes v1, and keep going 3 s after it
    with Hammer(live) as hammer:
        hammer.wait_for(lambda results: len(results) > 5)  # a loaded machine may take a while for the first
        write_started = time.monotonic()
        result = _rollback_sh(dict(os.environ), V1, "dev")
        switched_at = time.monotonic()  # the write is done by the time the script returns
        time.sleep(3.0)
        hammer.wait_for(lambda results: sum(r[0] >= switched_at + MAX_AGE_S for r in results) > 10)

    # Then: the script said what it wrote and how, and the parameter holds v1
    assert result.returncode == 0, result.stderr
    assert "rollback.sh: path " in result.stdout
    assert f"wrote /nbaml/dev/model/active = {V1}" in result.stdout and "parameter version" in result.stdout
    assert _deployment(live).active() == V1
    # ... no request failed, and the server answered before and after the switch
    assert hammer.failures == []
    before_write = [r for r in hammer.results if r[1] < write_started]
    after_max_age = [r for r in hammer.results if r[0] >= switched_at + MAX_AGE_S]
    assert len(before_write) > 5 and len(after_max_age) > 10, (len(before_write), len(after_max_age))
    # ... v2 served every request answered before the write, v1 every one asked a max_age after it
    assert {version for *_, version in before_write} == {V2}
    assert {version for *_, version in after_max_age} == {V1}


def test_given_no_aws_cli_when_rollback_sh_runs_then_the_python_fallback_writes_the_same_parameter(roles: Live) -> None:
    live = roles
    # Given: V2 active, and a PATH with no aws CLI on it
    _deployment(live).promote(V2, by="test", why="start from v2")
    env = dict(os.environ) | {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}

    # When: the emergency script runs
    result = _rollback_sh(env, V1, "dev")

    # Then: it says it took the python path, and the one-parameter write landed, recorded in the history
    assert result.returncode == 0, result.stderr
    assert "path python" in result.stdout and f"wrote /nbaml/dev/model/active = {V1}" in result.stdout
    from nbaml.storage import parameters

    changes = parameters.history(live.settings.active_model_param)
    assert changes[-1].value == V1 and "unchecked" in changes[-1].description


@pytest.mark.parametrize("path", ["aws-cli", "python"])
@pytest.mark.parametrize(
    ("version", "code", "says"),
    [
        ("v1 ", 65, "is not a model version"),
        ("v2024-01-01", 65, "is not a model version"),
        ("../v1", 65, "is not a model version"),
        ("v20990101_000000", 66, "has no committed bundle"),  # a valid name, never trained
    ],
)
def test_given_a_typo_or_a_missing_bundle_when_rollback_sh_runs_then_it_refuses_and_writes_nothing(
    roles: Live, path: str, version: str, code: int, says: str
) -> None:
    # Given: v1 active (a cold instance would have no last good model to fall back on)
    live = roles
    env = dict(os.environ)
    if path == "python":
        env |= {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}
    history_before = len(parameters_history(live))

    result = _rollback_sh(env, version, "dev")

    assert result.returncode != 0 and says in result.stderr, (result.returncode, result.stdout, result.stderr)
    if path == "aws-cli":
        assert result.returncode == code
    assert f"path {path}" in result.stdout or result.returncode == 65  # the pattern is checked before either path
    assert _deployment(live).active() == V1
    assert len(parameters_history(live)) == history_before, "nothing was written"


def parameters_history(live: Live) -> list[Any]:
    from nbaml.storage import parameters

    return parameters.history(live.settings.active_model_param)


def test_given_rollback_sh_then_it_names_the_manifest_as_the_layout_does_and_uses_nothing_newer_than_bash_3_2() -> None:
    from nbaml.layout import manifest_key

    script = ROLLBACK_SH.read_text()
    assert 'MANIFEST_KEY="' + manifest_key("${VERSION}") + '"' in script
    # bash 3.2 (macOS's /bin/bash) aborts on an empty array under `set -u` and lacks bash 4's expansions:
    # no machine here has a bash that old, so the script is held to the subset both understand.
    code = "\n".join(line.split("#", 1)[0] for line in script.splitlines())
    for bash4 in ("[@]", "[*]", "=(", "declare -A", "mapfile", "readarray", ",,}", "^^}", "|&", ";;&", "&>>"):
        assert bash4 not in code, f"rollback.sh uses {bash4!r}, which bash 3.2 does not have"


def test_given_a_bad_call_when_rollback_sh_runs_then_it_prints_usage_and_writes_nothing(roles: Live) -> None:
    live = roles
    before = _deployment(live).active()
    result = _rollback_sh(dict(os.environ))
    assert result.returncode == 64 and "usage:" in result.stderr
    assert _deployment(live).active() == before


# ---------------------------------------------------------------- (b) the checked CLI
def test_given_v1_active_when_promote_then_rollback_previous_via_the_cli_then_both_switch_and_are_recorded(
    roles: Live,
) -> None:
    live = roles
    # When: an operator promotes V2, then rolls back to the previous version
    promoted = _cli(live, "promote", V2, "--reason", "better on the holdout", "--by", "alice")
    # Then
    assert promoted.returncode == 0, promoted.stderr
    assert f"active: {V1} -> {V2} by alice" in promoted.stdout
    _wait_for(live, lambda h: h["active"]["version"] == V2, "V2 after the CLI promote")

    rolled = _cli(live, "rollback", "previous", "--reason", "live accuracy dropped", "--by", "bob")
    assert rolled.returncode == 0, rolled.stderr
    assert f"active: {V2} -> {V1} by bob" in rolled.stdout
    _wait_for(live, lambda h: h["active"]["version"] == V1, "v1 after the CLI rollback")

    registry = _deployment(live).registry
    v1, v2 = registry.get(V1), registry.get(V2)
    assert v1["status"] == "active" and v2["status"] == "inactive"
    assert v1["history"][-1]["by"] == "bob" and "live accuracy dropped" in v1["history"][-1]["why"]
    assert any(h["by"] == "alice" and h["why"] == "better on the holdout" for h in v2["history"])

    # ... and `nbaml models` shows the table, the roles and the parameter's history
    shown = _cli(live, "models")
    assert shown.returncode == 0, shown.stderr
    assert "accuracy" in shown.stdout and "roc_auc" in shown.stdout and "deployed_at" in shown.stdout
    assert all(version in shown.stdout for version in (V1, V2, V3))
    assert "bob: rollback: live accuracy dropped" in shown.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("promote", "v9", "--reason", "no such version"),
        ("rollback", "v9", "--reason", "no such version"),
        ("canary", "v9", "--percent", "10", "--reason", "no such version"),
        ("shadow", "v9", "--reason", "no such version"),
    ],
)
def test_given_a_missing_version_when_the_cli_is_asked_to_serve_it_then_exit_2_one_line_and_nothing_changes(
    roles: Live, args: tuple[str, ...]
) -> None:
    live = roles
    history_before = len(_deployment(live).overview()["active_history"])
    result = _cli(live, *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbaml: error:") and "v9" in lines[0], result.stderr
    overview = _deployment(live).overview()
    assert overview["active"] == V1 and overview["canary"] is None and overview["shadow"] is None
    assert len(overview["active_history"]) == history_before


def test_given_the_cloudformation_stack_when_models_runs_with_aws_then_names_come_from_its_outputs(
    roles: Live,
) -> None:
    import json

    # Given: the stack deployed into the emulator's CloudFormation; When: the AWS path is forced at it
    result = subprocess.run(
        [sys.executable, "-m", "infra", "models", "--aws", "--stack-name", roles.stack.stack_name, "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )
    # Then: it reads the same registry and roles as the local path
    assert result.returncode == 0, result.stderr
    overview = json.loads(result.stdout)
    assert overview["active"] == V1 and {v["version"] for v in overview["versions"]} >= {V1, V2, V3}


# ---------------------------------------------------------------- (c) canary and shadow, (d) logged once
def test_given_a_50_percent_canary_then_exactly_the_games_hashed_under_50_get_it_and_always_the_same_version(
    roles: Live,
) -> None:
    from nbaml.serving.routing import bucket_of
    from nbaml.storage.predictions import PredictionLog

    live = roles
    # Given: V2 as a 50 % canary (through the CLI), followed by the server
    result = _cli(live, "canary", V2, "--percent", "50", "--reason", "try v2 on half the games")
    assert result.returncode == 0, result.stderr
    _wait_for(live, lambda h: (h["canary"] or {}).get("version") == V2, "the canary")

    # When: the same 210 games are asked twice
    day = live.day(1)
    first = _slate(live, day, live.games)
    second = _slate(live, day, list(reversed(live.games)))

    # Then: a game is the canary's exactly when its stable hash is under 50, and keeps its version
    for answer in first:
        expected = (V2, "canary") if bucket_of(answer["game_id"]) < 50 else (V1, "champion")
        assert (answer["version"], answer["role"]) == expected, answer
    assert {a["game_id"]: a["version"] for a in first} == {a["game_id"]: a["version"] for a in second}
    roles_seen = {a["role"] for a in first}
    assert roles_seen == {"champion", "canary"}, "a 50 % canary over 210 games serves both"
    # ... and both versions were scored and logged for each game, the served one marked
    log = PredictionLog(live.settings.predictions_table)
    for answer in first[:40]:
        items = {(i["version"], i["role"]): i["served"] for i in log.for_game(answer["game_id"])}
        assert items == {(V1, "champion"): answer["role"] == "champion", (V2, "canary"): answer["role"] == "canary"}


def test_given_a_shadow_then_it_is_logged_as_not_served_and_never_returned(roles: Live) -> None:
    from nbaml.storage.predictions import PredictionLog

    live = roles
    # Given: V3 shadows v1 (through the CLI)
    result = _cli(live, "shadow", V3, "--reason", "score v3 silently")
    assert result.returncode == 0, result.stderr
    _wait_for(live, lambda h: h["shadow"] == V3, "the shadow")

    # When: a slate is asked
    answers = _slate(live, live.day(2), live.games[:30])

    # Then: only v1 answers; v3's prediction of each game is logged with served=False
    assert {(a["version"], a["role"]) for a in answers} == {(V1, "champion")}
    log = PredictionLog(live.settings.predictions_table)
    for answer in answers:
        items = {(i["version"], i["role"]): i["served"] for i in log.for_game(answer["game_id"])}
        assert items == {(V1, "champion"): True, (V3, "shadow"): False}, items


def test_given_every_role_when_games_are_asked_many_times_concurrently_then_each_is_logged_once_per_version_and_role(
    roles: Live,
) -> None:
    from nbaml.storage.predictions import PredictionLog

    live = roles
    # Given: v1 champion, V2 canary at 50 %, V3 shadow
    deployment = _deployment(live)
    deployment.set_canary(V2, 50, by="test", why="every role at once")
    deployment.set_shadow(V3, by="test", why="every role at once")
    _wait_for(live, lambda h: (h["canary"] or {}).get("version") == V2 and h["shadow"] == V3, "every role")
    day = live.day(3)
    games = live.games[:24]

    # When: the same slate is asked three times in a row and three more times at once
    answers = [_slate(live, day, games) for _ in range(3)]
    threads = [threading.Thread(target=_slate, args=(live, day, games)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then: every game has exactly one item per version x role, the shadow's never served, and one role served
    log = PredictionLog(live.settings.predictions_table)
    assert all(a == answers[0] for a in answers[1:]), "a game's answer changed between asks"
    for answer in answers[0]:
        items = log.for_game(answer["game_id"])
        keys = sorted((i["version"], i["role"]) for i in items)
        assert keys == sorted([(V1, "champion"), (V2, "canary"), (V3, "shadow")]), keys
        served = {(i["version"], i["role"]) for i in items if i["served"]}
        assert served == {(answer["version"], answer["role"])}
        assert answer["role"] != "shadow" and answer["version"] != V3


# ---------------------------------------------------------------- retrain on demand
def test_given_the_cli_when_a_retrain_is_asked_then_it_is_queued_and_delivered_to_the_retrain_handler(
    roles: Live,
) -> None:
    from nbaml.storage.queue import receive_retrain_requests

    live = roles
    versions_before = {v["version"] for v in _deployment(live).registry.versions()}

    # When: a request is only queued
    queued = _cli(live, "retrain", "--reason", "queue only", "--no-run")
    # Then: it sits on the RetrainQueue with its reason
    assert queued.returncode == 0, queued.stderr
    assert "queued retrain request" in queued.stdout and "not run" in queued.stdout

    # When: the next one runs (quick profile): the queue is drained into the handler, both requests delivered
    ran = _cli(live, "retrain", "--reason", "operator asked", "--quick", "--by", "carol")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    outcomes = [line for line in ran.stdout.splitlines() if line.startswith("retrain ")]
    assert len(outcomes) == 2, ran.stdout
    # Then: the queue is empty and a new version was registered with the operator's reason
    assert receive_retrain_requests(live.settings.retrain_queue_url) == []
    registered = {v["version"]: v for v in _deployment(live).registry.versions()}
    new = set(registered) - versions_before
    assert new, ran.stdout
    assert any("operator asked" in str(registered[v]) for v in new), {v: registered[v] for v in new}
