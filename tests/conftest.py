"""Fixtures shared by every test: an in-memory AWS (moto's mock_aws) built from template.yaml.

The unit fixtures create the bucket, tables, parameters and queues from the template's own resource
definitions, read and resolved by the code the local stack deploys with (``infra.template``), so no test
repeats a name, key or index the template declares.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_GAMES = ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"
STAGE = "dev"  # the template allows dev and prod


@dataclass(frozen=True)
class TestStack:
    bucket: str
    tables: dict[str, str]  # logical id -> name
    parameters: dict[str, str]  # logical id -> name
    retrain_queue_url: str
    env: dict[str, str]


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "nbaml-test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "nbaml")


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    """moto's in-memory AWS, with our cached clients and parameter cache cleared around it."""
    from moto import mock_aws

    from nbaml.storage import parameters
    from nbaml.storage.aws import reset_clients

    with mock_aws():
        reset_clients()
        parameters.reset_cache()
        yield
    reset_clients()
    parameters.reset_cache()


@pytest.fixture
def stack(aws: None, monkeypatch: pytest.MonkeyPatch) -> TestStack:
    """The template's storage resources in moto, named as the template names them for the test stage, and the
    environment every function gets (Globals and its own variables) pointing at them."""
    import boto3

    from infra import emulator
    from infra import template as tpl

    sam = tpl.load()
    physical: dict[str, str] = {}
    names = tpl.Intrinsics(
        tpl.parameters_with_defaults(sam, {"Stage": STAGE}),
        emulator.LOCAL_PSEUDO_PARAMETERS,
        conditions=sam.get("Conditions"),
        ref=physical.__getitem__,
    )

    def resources(kind: str) -> dict[str, dict]:
        return {lid: names.resolve(r.get("Properties") or {}) for lid, r in tpl.resources_of_type(sam, kind).items()}

    s3 = boto3.client("s3")
    for lid, props in resources("AWS::S3::Bucket").items():
        s3.create_bucket(Bucket=props["BucketName"])
        s3.put_bucket_versioning(Bucket=props["BucketName"], VersioningConfiguration={"Status": "Enabled"})
        physical[lid] = props["BucketName"]
    keys = ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
    for lid, props in resources("AWS::DynamoDB::Table").items():
        boto3.client("dynamodb").create_table(**{key: props[key] for key in keys if key in props})
        physical[lid] = props["TableName"]
    for lid, props in resources("AWS::SSM::Parameter").items():
        boto3.client("ssm").put_parameter(Name=props["Name"], Value=props["Value"], Type=props["Type"])
        physical[lid] = props["Name"]
    for lid in tpl.resources_of_type(sam, "AWS::SQS::Queue"):
        physical[lid] = boto3.client("sqs").create_queue(QueueName=lid)["QueueUrl"]

    env: dict[str, str] = {}
    for function in tpl.resources_of_type(sam, tpl.FUNCTION):
        declared = names.resolve(tpl.function_environment(sam, function))
        env |= {key: str(value) for key, value in declared.items() if not key.startswith("POWERTOOLS")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return TestStack(
        bucket=physical["ArtifactBucket"],
        tables={lid: physical[lid] for lid in tpl.resources_of_type(sam, "AWS::DynamoDB::Table")},
        parameters={lid: physical[lid] for lid in tpl.resources_of_type(sam, "AWS::SSM::Parameter")},
        retrain_queue_url=physical["RetrainQueue"],
        env=env,
    )


@pytest.fixture
def shared_games_path() -> Path:
    if not SHARED_GAMES.exists():
        pytest.skip(f"the shared NBA results are not beside the checkout ({SHARED_GAMES})")
    return SHARED_GAMES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration, end-to-end and sam tests carry their marker by folder, so `-m "not e2e"` works everywhere.
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)
        elif f"{os.sep}sam{os.sep}" in path:
            item.add_marker(pytest.mark.sam)
    _leave_out_the_sam_tier_without_an_engine(config, items)


def _leave_out_the_sam_tier_without_an_engine(config: pytest.Config, items: list[pytest.Item]) -> None:
    """No Docker engine: the sam tier is deselected with one line saying why (CI sets NBAML_REQUIRE_SAM=1, and
    there the tier's own session fixture fails every test instead)."""
    sam = [item for item in items if item.get_closest_marker("sam")]
    if not sam or os.environ.get("NBAML_REQUIRE_SAM") == "1":
        return
    from infra.samcli import docker

    problem = docker.engine_problem()
    if problem is None:
        return
    items[:] = [item for item in items if not item.get_closest_marker("sam")]
    config.hook.pytest_deselected(items=sam)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"sam tier skipped ({len(sam)} tests deselected): {problem}")


# ---------------------------------------------------------------- shared job helpers and fixtures
def synthetic_history(seed: int, seasons: int = 2) -> list:
    """The first ``seasons`` seasons of a synthetic league: enough history to train on."""
    from nbaml.games.feeds.generator import SyntheticLeague

    league = SyntheticLeague(seed=seed)
    return [g for season in range(league.first_season, league.first_season + seasons) for g in league.games(season)]


def off_season(games: list):
    """The end of the first week after ``games`` (the off-season: no games): a backfill of ``games`` may vouch for
    it, so tests that predict the days after a history predict complete days."""
    import datetime as dt

    return max(g.game_date for g in games) + dt.timedelta(days=7)


def train_versions(settings, days, *, requested_by: str, config=None) -> list:
    """One forced manual retrain per day of June 2021 (v1, then v20210602_000000, ...), as an operator would."""
    import datetime as dt

    from nbaml.events import RetrainRequest, RetrainTrigger
    from nbaml.training import pipeline
    from nbaml.training.search import TrainConfig

    config = config or TrainConfig(**FAST_TRAIN)
    return [
        pipeline.retrain(
            settings,
            RetrainRequest(
                trigger=RetrainTrigger.MANUAL,
                reason=f"model {day}",
                requested_by=requested_by,
                force=True,
                requested_at=dt.datetime(2021, 6, day, tzinfo=dt.UTC),
            ),
            config=config,
        )
        for day in days
    ]


def scheduled_event(day, hour: int = 3, sample: str = "collect-scheduled.json") -> dict:
    """A sample scheduled event of events/ (what the template's schedule delivers), fired at ``hour`` on the
    league's (Eastern) clock of ``day``: collect's 03:00 by default."""
    import datetime as dt
    import json

    from nbaml.games.teams import league_time

    event = json.loads((ROOT / "events" / sample).read_text())
    return event | {"time": league_time(day, dt.time(hour)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def prediction_of(game, probability: float, *, version: str = "v1", role: str = "champion", **fields: object):
    """The Predictions item the predict function logs for ``game`` (fields: feature_hash, latency_ms, ...)."""
    from nbaml.storage.predictions import PredictionRecord

    return PredictionRecord(
        game_id=game.game_id,
        game_date=game.game_date.isoformat(),
        home=game.home,
        away=game.away,
        version=version,
        role=role,
        probability=probability,
        feature_hash=fields.pop("feature_hash", "h"),
        latency_ms=fields.pop("latency_ms", 0.3),
        **fields,
    )


FAST_TRAIN = {
    "grid": {"max_depth": [2], "n_estimators": [40], "learning_rate": [0.1]},
    "cv_splits": 2,
    "search": "grid",
    "n_jobs": 1,
}


@pytest.fixture
def fast_config():
    """A one-candidate search: the pipeline's logic, not the search, is under test."""
    from nbaml.training.search import TrainConfig

    return TrainConfig(**FAST_TRAIN)


V2 = "v20210602_000000"


@pytest.fixture(scope="session")
def trained_bundles() -> dict[str, dict[str, bytes]]:
    """Two model bundles (v1 and a timestamped one) trained once per session on the loaded_history games."""
    from nbaml.games.feeds.generator import SyntheticLeague
    from nbaml.training.candidate import train_candidate
    from nbaml.training.search import TrainConfig

    league = SyntheticLeague(seed=7)
    first = league.games(2019)[0].season
    games = [g for season in (first, first + 1) for g in league.games(season)]
    return {
        version: train_candidate(games, version=version, config=TrainConfig(**FAST_TRAIN)).bundle.to_files()
        for version in ("v1", V2)
    }


@pytest.fixture
def registered_versions(stack: TestStack, loaded_history, trained_bundles) -> list[str]:
    """Both bundles in S3 and the registry, v1 promoted: what two retrains leave, without training again."""
    import json

    from nbaml.config import CommonSettings, load_settings
    from nbaml.deployment import Deployment
    from nbaml.storage.artifacts import ArtifactStore
    from nbaml.storage.registry import ModelRegistry

    settings = load_settings(CommonSettings)
    store, registry = ArtifactStore(settings.nbaml_bucket), ModelRegistry(settings.model_versions_table)
    for version, files in trained_bundles.items():
        store.write_bundle_files(version, files)
        meta = json.loads(files["metadata.json"])
        record = {"metrics": meta["metrics"], "training_window": meta["training_window"], "trigger": "manual"}
        registry.register(version, record, by="test", why="fixture")
    Deployment(settings).promote("v1", by="test", why="baseline for the serving tests")
    return list(trained_bundles)


@pytest.fixture
def league():
    from nbaml.games.feeds.generator import SyntheticLeague

    return SyntheticLeague(seed=7)


# The Games table's rows after the first bulk write of a history, per worker process, table name and history:
# moto spends about 4 s writing 2,460 games and 12-14 s writing the 15,428 of the shared file (its per-attribute
# item bookkeeping), the same rows in every test or replay that loads that history into a fresh table.
_GAMES_TABLE_AFTER_LOAD: dict[tuple, dict] = {}


@contextlib.contextmanager
def bulk_writes_remembered() -> Iterator[dict[str, int]]:
    """``GameStore.put_many`` runs whole the first time this process writes a history into an empty table; a later
    write of the same games into an empty table of the same name gets those rows put into moto's memory instead.

    The rows are shared, each table its own: a Games row is only ever replaced whole (PutItem, never UpdateItem:
    nbaml.storage.games), and a replacement lands in that table alone. Everything else a backfill does (the
    training snapshot, the team state and the league calendar in S3) runs for real every time, and ``put_many``
    itself runs whole in each process's first load and in every backfill of the integration tier
    (tests/integration/test_data_pipeline.py loads the shared file with it). Yields how many bulk writes ran
    (``written``) and how many were put back (``put_back``).
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from nbaml.storage.aws import dynamodb_table
    from nbaml.storage.games import GameStore

    original = GameStore.put_many
    counts = {"written": 0, "put_back": 0}

    def put_many(store: GameStore, games, **kwargs) -> int:
        region = dynamodb_table(store.table_name).meta.client.meta.region_name
        moto_table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(store.table_name)
        if moto_table.items:  # not a fresh table: write for real, remember nothing
            counts["written"] += 1
            return original(store, games, **kwargs)
        games = list(games)
        key = (store.table_name, tuple((g.game_id, g.home_score, g.away_score, g.status) for g in games))
        rows = _GAMES_TABLE_AFTER_LOAD.get(key)
        if rows is None:
            counts["written"] += 1
            count = original(store, games, **kwargs)
            _GAMES_TABLE_AFTER_LOAD[key] = dict(moto_table.items)
            return count
        moto_table.items.update(rows)
        counts["put_back"] += 1
        return len(games)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GameStore, "put_many", put_many)
        yield counts


@pytest.fixture
def loaded_history(stack: TestStack, league):
    """Two synthetic seasons loaded into the stack, as a backfill leaves them (moto's rows put back after the
    first load of a process: ``bulk_writes_remembered``)."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.feeds.base import FeedBatch

    first = league.games(2019)[0].season
    games = [g for season in (first, first + 1) for g in league.games(season)]
    with bulk_writes_remembered():
        load(load_settings(CommonSettings), FeedBatch(games=games), source="generator")
    return games


# ---------------------------------------------------------------- local HTTPS servers (the feed's stand-in)
@dataclass(frozen=True)
class LocalTls:
    """A self-signed certificate for 127.0.0.1, made once per session: the feed client only speaks verified TLS."""

    ca_file: Path  # the certificate, trusted as its own CA (SSL_CERT_FILE for a function's environment)
    key_file: Path

    def server_context(self):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self.key_file)
        return context

    def client_context(self):
        import ssl

        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nbaml test feed")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return LocalTls(folder / "cert.pem", folder / "key.pem")


@pytest.fixture
def feed_server(local_tls: LocalTls) -> Iterator:
    """pytest-httpserver over HTTPS on 127.0.0.1 (the plugin's default host is 'localhost', and plain http)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True, ssl_context=local_tls.server_context())
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()
