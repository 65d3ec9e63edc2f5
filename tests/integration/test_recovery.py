"""Disaster recovery: a stack destroyed and restored from its backup serves the same models, the same way.

The emulators here are separate ``moto.server`` processes (``stack.deployed(isolated=True)``), not the in-process
server of the other integration tests: moto's backends are global to a process, so only a process that
ends proves the state is really gone and really comes back from the folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra import backup as bk
from infra import emulator as emu
from infra import runtime
from infra import stack as stk
from infra import template as tpl
from nbaml import layout
from nbaml.storage import parameters
from tests.conftest import off_season, synthetic_history, train_versions

pytestmark = pytest.mark.integration

V2 = "v20210602_000000"
V3 = "v20210603_000000"
PASSPHRASE = "correct horse battery staple"


# ---------------------------------------------------------------- a stack in its own emulator process
@contextlib.contextmanager
def acting_as(stack: stk.LocalStack, function: str, *, role: bool = False, **extra: str) -> Iterator[None]:
    """The process environment of ``function`` on ``stack``, with nbaml's cached clients and parameters reset.

    Signed as the operator (setup and inspection), or with ``role`` as the function itself.
    """
    from nbaml.storage import parameters
    from nbaml.storage.aws import reset_clients

    env = stack.env_for(function) if role else stack.operator_env(function)
    with runtime.function_environment(env | {"POWERTOOLS_METRICS_DISABLED": "true", **extra}):
        reset_clients()
        parameters.reset_cache()
        try:
            yield
        finally:
            reset_clients()
            parameters.reset_cache()


def build_history(stack: stk.LocalStack) -> list[Any]:
    """Two synthetic seasons loaded; v1, v2 and v3 trained; roles moved around; a slate served and logged."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, RetrainSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.games.feeds.base import FeedBatch

    with acting_as(stack, "retrain"):
        games = synthetic_history(seed=11)
        load(
            load_settings(CommonSettings),
            FeedBatch(games=games),
            source="generator",
            complete_through=off_season(games),
        )
        settings = load_settings(RetrainSettings)
        train_versions(settings, (1, 2, 3), requested_by="recovery-test")
        deployment = Deployment(settings)
        deployment.promote("v1", by="operator", why="back to the first model")
        deployment.promote(V2, by="operator", why="v2 looks better")
        deployment.rollback(by="operator", why="v2 misbehaved")
        deployment.promote(V2, by="operator", why="v2 fixed, promoted again")
        deployment.set_canary(V3, 30, by="operator", why="try v3 on 30 %")
        deployment.set_shadow("v1", by="operator", why="watch v1 beside v2")
    return games


def slate(day: dt.date) -> dict[str, Any]:
    pairs = [("BOS", "LAL"), ("MIA", "NYK"), ("GSW", "DEN"), ("CHI", "DET"), ("PHX", "DAL"), ("MIL", "ATL")]
    return {"games": [{"home": h, "away": a, "date": day.isoformat()} for h, a in pairs]}


def serve(stack: stk.LocalStack, body: dict[str, Any]) -> dict[str, Any]:
    from nbaml.serving.api import create_app

    with acting_as(stack, "predict", role=True, MODEL_PARAM_MAX_AGE_SECONDS="0"):
        response = TestClient(create_app()).post("/predictions", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())


def observed(stack: stk.LocalStack) -> dict[str, Any]:
    """Everything a restore must bring back, read through nbaml's own storage modules."""
    from nbaml.config import CommonSettings, load_settings
    from nbaml.storage import parameters
    from nbaml.storage.artifacts import ArtifactStore
    from nbaml.storage.predictions import PredictionLog
    from nbaml.storage.registry import ModelRegistry

    with acting_as(stack, "predict"):
        settings = load_settings(CommonSettings)
        store = ArtifactStore(settings.nbaml_bucket)
        versions = ModelRegistry(settings.model_versions_table).versions()
        bundles = {
            v["version"]: {
                name: hashlib.sha256(body).hexdigest() for name, body in store.read_bundle_files(v["version"]).items()
            }
            for v in versions
        }
        roles = {
            role: [(c.value, c.version, c.description) for c in parameters.history(name)]
            for role, name in (
                ("active", settings.active_model_param),
                ("canary", settings.canary_model_param),
                ("shadow", settings.shadow_model_param),
            )
        }
        logged = sorted(
            PredictionLog(settings.predictions_table).all(), key=lambda i: (i["game_id"], i["prediction_key"])
        )
        state = store.get_bytes(layout.LEAGUE_STATE)
        return {"registry": versions, "bundles": bundles, "roles": roles, "predictions": logged, "state": state}


# ---------------------------------------------------------------- the restore test
def test_given_a_destroyed_stack_when_restored_into_an_empty_one_then_it_serves_identically(tmp_path: Path) -> None:
    folder = tmp_path / "backup"
    # Given: a stack with history, three versions, a canary, a shadow, and a slate served and logged
    with stk.deployed(isolated=True, iam=True) as first:
        games = build_history(first)
        day = max(g.game_date for g in games) + dt.timedelta(days=1)
        before_answers = serve(first, slate(day))
        before = observed(first)
        admin_param = first.admin_token_param
        with acting_as(first, "predict"):
            token = parameters.read_secret(admin_param or "", max_age=0)
        # When: it is backed up with its secrets (encrypted with the operator's passphrase), then destroyed
        report = bk.backup(bk.StackState.of_local(first), folder, secrets_passphrase=PASSPHRASE)
    assert report.objects > 0 and report.items["ModelVersionsTable"] >= 3 and report.secure_strings >= 1

    # Then: the backup folder is sealed, the SecureStrings are only in the 0600 file, and encrypted there
    assert_sealed_with_secrets_encrypted(folder, report, token)

    # When: a new, empty stack is deployed and the backup restored into it (the passphrase is needed)
    with stk.deployed(isolated=True, iam=True) as second:
        assert second.admin_token != token  # a fresh deploy made its own token
        with pytest.raises(bk.BackupError, match="encrypted secrets"):
            bk.restore(bk.StackState.of_local(second), folder)
        with pytest.raises(bk.BackupError, match="does not open it"):
            bk.restore(bk.StackState.of_local(second), folder, secrets_passphrase="not the passphrase at all")
        restored = bk.restore(bk.StackState.of_local(second), folder, secrets_passphrase=PASSPHRASE)
        after = observed(second)
        after_answers = serve(second, slate(day))
        with acting_as(second, "predict"):
            assert parameters.read_secret(admin_param or "", max_age=0) == token
        # Then: the same active version, the same parameter history, registry, bundles and team state
        assert_same_state(before, after)
        # and IDENTICAL predictions for the slate, canary share included
        assert after_answers == before_answers
        assert {p["role"] for p in after_answers["predictions"]} <= {"champion", "canary"}
        assert restored.parameter_versions >= 6

        # And: a second restore without --force is refused: the stack now holds data
        with pytest.raises(bk.BackupError, match="not empty"):
            bk.restore(bk.StackState.of_local(second), folder)
        # The same backup read through CloudFormation (the AWS path) finds the same resources
        from_cfn = bk.StackState.of_cloudformation(second.stack_name, lambda s: emu.client(s, second.endpoint))
        assert (from_cfn.bucket, from_cfn.tables, from_cfn.stage) == (
            bk.StackState.of_local(second).bucket,
            bk.StackState.of_local(second).tables,
            "dev",
        )

    # And: the bundles are mirrored to models/{version}/ and match the bucket's checksums
    mirrored = bk.mirror_bundles(folder, tmp_path / "models")
    assert mirrored == sorted(["v1", V2, V3])
    for version in mirrored:
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "models" / version).iterdir()}
        assert files == before["bundles"][version]


def assert_sealed_with_secrets_encrypted(folder: Path, report: bk.Report, token: str) -> None:
    manifest = json.loads((folder / bk.MANIFEST).read_text())
    assert manifest["counts"]["s3_objects"] == report.objects and manifest["secrets_included"]
    assert (folder / bk.SECRETS).stat().st_mode & 0o777 == 0o600
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert token.encode() not in everything and token[:12].encode() not in everything


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["roles"]["active"][-1][0] == V2
    assert after["roles"] == before["roles"]
    assert after["registry"] == before["registry"]
    assert after["bundles"] == before["bundles"] and set(after["bundles"]) == {"v1", V2, V3}
    assert after["state"] == before["state"]
    assert after["predictions"] == before["predictions"]


def test_given_a_tampered_or_unsealed_backup_when_restored_then_it_is_refused_before_any_write(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    with pytest.raises(bk.BackupError, match="no manifest"):
        bk.read_manifest(folder)
    (folder / "s3-objects.jsonl").write_text("")
    (folder / bk.MANIFEST).write_text(
        json.dumps({"format": 1, "files": {"s3-objects.jsonl": hashlib.sha256(b"x").hexdigest()}})
    )
    with pytest.raises(bk.BackupError, match="does not match"):
        bk.read_manifest(folder)
    (folder / bk.MANIFEST).write_text(json.dumps({"format": 1, "files": {"../outside": "0"}}))
    with pytest.raises(bk.BackupError, match="outside"):
        bk.read_manifest(folder)


# ---------------------------------------------------------------- the template's recovery settings
def _resolved(sam: dict[str, Any], stage: str) -> dict[str, dict[str, Any]]:
    translated = tpl.translate(sam, {"Stage": stage})
    intrinsics = tpl.Intrinsics(
        tpl.parameters_with_defaults(sam, {"Stage": stage}),
        emu.LOCAL_PSEUDO_PARAMETERS,
        conditions=translated.get("Conditions"),
        ref=lambda lid: lid,
        get_att=lambda lid, attribute: f"{lid}.{attribute}",
    )
    return {
        lid: {**res, "Properties": intrinsics.resolve(res.get("Properties") or {})}
        for lid, res in tpl.active_resources(translated, intrinsics).items()
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_given_the_template_then_every_store_is_recoverable_and_every_log_group_expires(stage: str) -> None:
    sam = tpl.load(tpl.DEFAULT_TEMPLATE)
    resources = _resolved(sam, stage)
    by_type: dict[str, dict[str, dict[str, Any]]] = {}
    for lid, res in resources.items():
        by_type.setdefault(res["Type"], {})[lid] = res
    # The bucket: versioned (nothing overwritten in place) and kept when the stack is deleted or replaced
    (bucket,) = by_type["AWS::S3::Bucket"].values()
    assert bucket["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket.get("DeletionPolicy") == "Retain" and bucket.get("UpdateReplacePolicy") == "Retain"
    # Every table: point-in-time recovery; deletion protection exactly in prod (the IsProd condition)
    tables = by_type["AWS::DynamoDB::Table"]
    assert set(tables) == {"GamesTable", "PredictionsTable", "ModelVersionsTable", "RetrainRequestsTable"}
    for lid, table in tables.items():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, lid
        assert props["DeletionProtectionEnabled"] is (stage == "prod"), lid
        raw = sam["Resources"][lid]["Properties"]["DeletionProtectionEnabled"]
        assert raw == {"Fn::If": ["IsProd", True, False]}, lid
    # Every log group has a retention, longer in prod; every function logs to one of them
    groups = by_type["AWS::Logs::LogGroup"]
    assert groups
    for lid, group in groups.items():
        kept = 365 if lid == "HttpApiAccessLogGroup" else 90  # the access log: who called the admin routes, a year
        assert int(group["Properties"]["RetentionInDays"]) == (kept if stage == "prod" else 14), lid
    names = {g["Properties"]["LogGroupName"] for g in groups.values()}
    for lid, function in by_type["AWS::Lambda::Function"].items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert target in groups or target in names, f"{lid} logs to a group without retention"


def test_given_stack_down_then_stack_up_then_the_state_comes_back_and_the_cli_knows_the_commands(
    tmp_path: Path,
) -> None:
    from infra import cli

    backups, state_dir = tmp_path / "models" / "backups", tmp_path / "state"
    # Given: a stack with one model active
    with stk.deployed(isolated=True, iam=True) as first:
        with acting_as(first, "retrain"):
            from nbaml.storage import parameters

            parameters.write(f"/nbaml/{first.parameters['Stage']}/model/active", "v1", why="test: a model was promoted")
            old_token = parameters.read_secret(first.admin_token_param or "", max_age=0)
        # When: `stack down` snapshots it before the emulator stops
        folder = bk.snapshot_on_down(first, backups_dir=backups, state_dir=state_dir)
    assert folder is not None and folder.parent == backups and folder.name.endswith("-stack-down")
    # Then: no secret value was written anywhere in the snapshot (it is taken without being asked)
    assert not (folder / bk.SECRETS).exists()
    written = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert old_token.encode() not in written and b"local-placeholder-not-a-real-key" not in written
    # Then: `stack up` restores it into the new, empty stack, which keeps the admin token it made itself
    with stk.deployed(isolated=True, iam=True) as second:
        report = bk.restore_on_up(second, state_dir=state_dir)
        assert report is not None and report.parameter_versions >= 1
        assert second.admin_token_param in report.withheld_parameters
        with acting_as(second, "predict"):
            from nbaml.storage import parameters

            assert parameters.read(f"/nbaml/{second.parameters['Stage']}/model/active") == "v1"
            assert parameters.read_secret(second.admin_token_param or "", max_age=0) == second.admin_token
    # With no snapshot recorded, `stack up` starts empty
    assert bk.restore_on_up(second, state_dir=tmp_path / "nothing") is None
    # The commands are registered through infra.cli's plugin list
    parser = cli.build_parser()
    assert parser.parse_args(["backup", "--to", "x"]).to == "x"
    assert parser.parse_args(["restore", "--from", "x", "--force"]).force is True
