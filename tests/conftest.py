"""Fixtures shared by every test: an in-memory AWS (moto's mock_aws) built from template.yaml.

The unit fixtures create the bucket, tables, parameters and queue from the template's own resource
definitions (keys, GSIs, parameter names), so no test repeats a name the template declares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
SHARED_GAMES = ROOT.parent / "shared" / "data" / "nba_games_2009_2023.csv"
STAGE = "test"


def load_template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: res for lid, res in template["Resources"].items() if res["Type"] == kind}


def sub_stage(value: Any) -> str:
    """Resolve the template's ``!Sub ".../${Stage}/..."`` names for the test stage."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return str(text).replace("${Stage}", STAGE)


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
    """The template's storage resources in moto, and the Globals environment pointing at them."""
    import boto3

    template = load_template()
    bucket = f"nbaml-{STAGE}-artifacts"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    ddb = boto3.client("dynamodb")
    tables: dict[str, str] = {}
    for lid, res in resources_of(template, "AWS::DynamoDB::Table").items():
        props = res["Properties"]
        name = sub_stage(props["TableName"])
        ddb.create_table(
            TableName=name,
            BillingMode=props["BillingMode"],
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            GlobalSecondaryIndexes=props.get("GlobalSecondaryIndexes", []),
        )
        tables[lid] = name

    ssm = boto3.client("ssm")
    params: dict[str, str] = {}
    for lid, res in resources_of(template, "AWS::SSM::Parameter").items():
        props = res["Properties"]
        name = sub_stage(props["Name"])
        ssm.put_parameter(Name=name, Value=props["Value"], Type=props["Type"])
        params[lid] = name

    queue_url = boto3.client("sqs").create_queue(QueueName="retrain")["QueueUrl"]

    defaults = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    physical = {**defaults, "Stage": STAGE, "ArtifactBucket": bucket, "RetrainQueue": queue_url, **tables, **params}

    def resolve(value: Any) -> str:
        if isinstance(value, dict) and "Ref" in value:
            return physical[value["Ref"]]
        return sub_stage(value)

    # Globals first, then every function's own variables: the environment the template gives them.
    env: dict[str, str] = {}
    declared = [template["Globals"]["Function"]["Environment"]["Variables"]]
    for res in resources_of(template, "AWS::Serverless::Function").values():
        declared.append(res["Properties"].get("Environment", {}).get("Variables", {}))
    for variables in declared:
        env.update({key: resolve(value) for key, value in variables.items() if not key.startswith("POWERTOOLS")})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return TestStack(bucket=bucket, tables=tables, parameters=params, retrain_queue_url=queue_url, env=env)


@pytest.fixture
def shared_games_path() -> Path:
    if not SHARED_GAMES.exists():
        pytest.skip(f"the shared NBA results are not beside the checkout ({SHARED_GAMES})")
    return SHARED_GAMES


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration and end-to-end tests carry their marker by folder, so `-m "not e2e"` works everywhere.
    for item in items:
        path = str(item.fspath)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        elif f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)


# ---------------------------------------------------------------- shared job helpers and fixtures
def synthetic_history(seed: int, seasons: int = 2) -> list:
    """The first ``seasons`` seasons of a synthetic league: enough history to train on."""
    from nbaml.games.feeds.generator import SyntheticLeague

    league = SyntheticLeague(seed=seed)
    return [g for season in range(league.first_season, league.first_season + seasons) for g in league.games(season)]


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


@pytest.fixture
def loaded_history(stack: TestStack, league):
    """Two synthetic seasons loaded into the stack, as a backfill leaves them."""
    from nbaml.backfill import load
    from nbaml.config import CommonSettings, load_settings
    from nbaml.games.feeds.base import FeedBatch

    first = league.games(2019)[0].season
    games = [g for season in (first, first + 1) for g in league.games(season)]
    load(load_settings(CommonSettings), FeedBatch(games=games), source="generator")
    return games
