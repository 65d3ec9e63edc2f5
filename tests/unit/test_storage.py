"""Storage modules against moto's in-memory AWS: idempotent upserts, the prediction log, the registry."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from nbaml import layout
from nbaml.errors import ConflictError, NotFoundError
from nbaml.games.history import data_hash
from nbaml.games.records import Game, GameStatus
from nbaml.storage import parameters
from nbaml.storage.artifacts import ArtifactStore
from nbaml.storage.games import GameStore, content_hash
from nbaml.storage.predictions import PredictionLog, PredictionRecord
from nbaml.storage.registry import ModelRegistry, VersionStatus
from tests.conftest import prediction_of

DAY = dt.date(2023, 1, 10)
TIP_OFF = dt.datetime(2023, 1, 11, 0, 30, tzinfo=dt.UTC)  # 19:30 Eastern on DAY
EXPIRES = int(dt.datetime(2023, 1, 17, tzinfo=dt.UTC).timestamp())


def final(home: str = "BOS", away: str = "LAL", home_score: int = 110, away_score: int = 100) -> Game:
    return Game.create(
        game_date=DAY,
        home=home,
        away=away,
        status=GameStatus.FINAL,
        source="test",
        home_score=home_score,
        away_score=away_score,
    )


def scheduled(home: str = "BOS", away: str = "LAL") -> Game:
    return Game.create(game_date=DAY, home=home, away=away, status=GameStatus.SCHEDULED, source="test")


def test_given_a_collected_day_when_collected_again_then_nothing_changes(stack) -> None:
    store = GameStore(stack.tables["GamesTable"])
    first = store.upsert([final(), final("MIA", "NYK")])
    again = store.upsert([final(), final("MIA", "NYK")])
    assert first.as_dict() == {"inserted": 2, "updated": 0, "unchanged": 0}
    assert again.as_dict() == {"inserted": 0, "updated": 0, "unchanged": 2}
    assert {g.game_id for g in store.on_date(DAY)} == {final().game_id, final("MIA", "NYK").game_id}


def test_given_a_final_game_when_a_feed_lists_it_as_scheduled_then_the_result_is_kept(stack) -> None:
    store = GameStore(stack.tables["GamesTable"])
    store.upsert([final()])
    result = store.upsert([scheduled()])
    assert result.unchanged == 1
    assert store.get(final().game_id).status is GameStatus.FINAL


def test_given_a_scheduled_game_when_its_result_arrives_or_is_corrected_then_it_is_updated(stack) -> None:
    store = GameStore(stack.tables["GamesTable"])
    store.upsert([scheduled()])
    assert store.upsert([final()]).updated == 1
    assert store.upsert([final(home_score=99, away_score=101)]).updated == 1
    assert store.get(final().game_id).home_won is False


# What nbaml's content hash of these two games was before records had a tip-off (computed then): a stored item
# of that time is still "the same game" for an upsert of a record without one.
HASH_BEFORE_TIP_OFFS = {"final": "1088aec5dccd93a6f0859dc91038541d", "scheduled": "3d90f56e2b4128cac6eb4ede4e76f8f9"}


def test_given_a_record_without_tip_off_then_it_hashes_as_before_records_had_one() -> None:
    game = Game.create(
        game_date=DAY, home="BOS", away="LAL", status=GameStatus.FINAL, source="file", home_score=110, away_score=101
    )
    upcoming = Game.create(game_date=DAY, home="BOS", away="LAL", status=GameStatus.SCHEDULED, source="generator")
    assert {"final": content_hash(game), "scheduled": content_hash(upcoming)} == HASH_BEFORE_TIP_OFFS
    assert content_hash(game.model_copy(update={"tip_off": TIP_OFF})) != content_hash(game)


def test_given_an_item_stored_before_tip_offs_when_a_feed_gives_the_tip_off_then_it_is_rewritten_once(stack) -> None:
    store = GameStore(stack.tables["GamesTable"])
    store.upsert([final()])  # the item as collect stored it before records had a tip-off
    with_tip_off = final().model_copy(update={"tip_off": TIP_OFF})
    assert store.upsert([with_tip_off]).as_dict() == {"inserted": 0, "updated": 1, "unchanged": 0}
    assert store.upsert([with_tip_off]).as_dict() == {"inserted": 0, "updated": 0, "unchanged": 1}
    assert store.get(final().game_id).tip_off == TIP_OFF
    # and the training fingerprint never depended on it
    assert data_hash([final()]) == data_hash([with_tip_off])


def prediction(version: str = "v1", role: str = "champion", probability: float = 0.7) -> PredictionRecord:
    return prediction_of(final(), probability, version=version, role=role)


def test_given_a_prediction_when_asked_again_then_the_last_one_replaces_it_per_version_and_role(stack) -> None:
    log = PredictionLog(stack.tables["PredictionsTable"])
    assert log.record(prediction()) is True
    assert log.record(prediction(probability=0.9)) is True  # asked again before tip-off: the newer one counts
    assert log.record(prediction(role="shadow", version="v2")) is True
    items = log.for_game(final().game_id)
    assert sorted(i["prediction_key"] for i in items) == ["v1#champion", "v2#shadow"]
    assert [i["probability"] for i in items if i["role"] == "champion"] == [0.9]


def test_given_a_resolved_prediction_then_no_later_write_replaces_it(stack) -> None:
    log = PredictionLog(stack.tables["PredictionsTable"])
    log.record(prediction(probability=0.7))
    log.resolve([final()])
    assert log.record(prediction(probability=0.2)) is False
    assert log.record(hypothetical(probability=0.2)) is False
    (item,) = log.for_game(final().game_id)
    assert item["probability"] == 0.7 and item["resolved_key"]


def hypothetical(probability: float = 0.6) -> PredictionRecord:
    return prediction_of(final(), probability, expires_at=EXPIRES)


def test_given_a_hypothetical_matchup_then_it_never_replaces_a_real_prediction_and_is_never_joined(stack) -> None:
    log = PredictionLog(stack.tables["PredictionsTable"])
    # A hypothetical item: written, replaced by a newer hypothetical one, carries its TTL
    assert log.record(hypothetical(0.6)) is True and log.record(hypothetical(0.55)) is True
    (item,) = log.for_game(final().game_id)
    assert (item["probability"], item["expires_at"]) == (0.55, EXPIRES)
    # and the game's result is never joined onto it: it stays out of the indexes monitoring reads
    assert log.resolve([final()]) == 0
    assert log.resolved(role="champion") == [] and "resolved_key" not in log.for_game(final().game_id)[0]
    # A real prediction replaces it (and drops the TTL); a hypothetical one can then never replace the real one
    assert log.record(prediction(probability=0.7)) is True
    assert log.record(hypothetical(0.1)) is False
    (real,) = log.for_game(final().game_id)
    assert real["probability"] == 0.7 and "expires_at" not in real
    assert log.resolve([final()]) == 1


def test_given_predictions_when_the_game_ends_then_outcomes_are_joined_and_indexed(stack) -> None:
    log = PredictionLog(stack.tables["PredictionsTable"])
    log.record(prediction(probability=0.7))
    log.record(prediction(version="v2", role="shadow", probability=0.3))
    assert log.resolved(role="champion") == []
    assert log.resolve([final()]) == 2
    assert log.resolve([final()]) == 0  # idempotent
    champion = log.resolved(role="champion")
    assert len(champion) == 1 and champion[0]["correct"] is True and champion[0]["home_won"] is True
    assert log.resolved(version="v2")[0]["correct"] is False
    # a late correction flips the outcome
    assert log.resolve([final(home_score=90, away_score=95)]) == 2
    assert log.resolved(role="champion")[0]["correct"] is False


def test_given_a_prediction_with_features_then_they_are_stored_as_float64_bytes_and_read_back_exactly(stack) -> None:
    import boto3

    from nbaml.serving.predictor import feature_hash

    log = PredictionLog(stack.tables["PredictionsTable"])
    row = [0.1, -1e-17, 1234.5678901234567, 0.0, 1 / 3]
    log.record(prediction_of(final(), 0.7, features=row, feature_hash=feature_hash(row)))
    raw = boto3.client("dynamodb").scan(TableName=stack.tables["PredictionsTable"])["Items"][0]
    assert set(raw["features"]) == {"B"} and len(raw["features"]["B"]) == 8 * len(row)  # one binary value
    assert hashlib.sha256(raw["features"]["B"]).hexdigest()[:16] == raw["feature_hash"]["S"]  # the hashed bytes
    log.resolve([final()])
    game_id = final().game_id
    for read in (log.for_game(game_id), log.on_date(DAY), log.resolved(role="champion"), log.all()):
        assert read[0]["features"] == row  # every float exact, whichever way it is read
    # an item written before (features as a list of numbers) reads back the same way
    boto3.resource("dynamodb").Table(stack.tables["PredictionsTable"]).update_item(
        Key={"game_id": game_id, "prediction_key": raw["prediction_key"]["S"]},
        UpdateExpression="SET features = :f",
        ExpressionAttributeValues={":f": [Decimal("0.5"), Decimal("2")]},
    )
    assert log.resolved(role="champion")[0]["features"] == [0.5, 2]


def test_given_a_registry_when_versions_change_status_then_history_records_who_when_why(stack) -> None:
    registry = ModelRegistry(stack.tables["ModelVersionsTable"])
    registry.register("v1", {"metrics": {"accuracy": 0.64, "log_loss": 0.63}}, by="test", why="first model")
    with pytest.raises(ConflictError):
        registry.register("v1", {}, by="test", why="again")
    registry.set_status("v1", VersionStatus.ACTIVE, by="ops", why="gates passed")
    item = registry.get("v1")
    assert item["status"] == "active" and item["metrics"]["accuracy"] == 0.64
    assert [(h["from"], h["to"], h["by"]) for h in item["history"]] == [
        (None, "candidate", "test"),
        ("candidate", "active", "ops"),
    ]
    assert [v["version"] for v in registry.with_status(VersionStatus.ACTIVE)] == ["v1"]
    with pytest.raises(NotFoundError):
        registry.get("v9")


def test_given_a_held_lock_when_a_second_run_asks_then_it_is_told_who_holds_it(stack) -> None:
    registry = ModelRegistry(stack.tables["ModelVersionsTable"])
    registry.acquire_lock("retrain", "run-a", ttl_seconds=600)
    with pytest.raises(ConflictError, match="run-a"):
        registry.acquire_lock("retrain", "run-b", ttl_seconds=600)
    registry.release_lock("retrain", "run-a")
    registry.acquire_lock("retrain", "run-b", ttl_seconds=600)
    assert registry.versions() == []  # locks are not versions


def test_given_an_expired_lock_when_another_run_asks_then_it_takes_over(stack) -> None:
    registry = ModelRegistry(stack.tables["ModelVersionsTable"])
    # Given: a run that crashed holding the lock, whose expiry has passed
    registry.acquire_lock("retrain", "crashed", ttl_seconds=-1)
    # When: another run asks, Then: it gets the lock (no ConflictError) ...
    registry.acquire_lock("retrain", "run-b", ttl_seconds=600)
    # ... and holds it: a third run is told run-b holds it, and the crashed run, coming back, cannot release it
    with pytest.raises(ConflictError, match="held by run run-b"):
        registry.acquire_lock("retrain", "run-c", ttl_seconds=600)
    registry.release_lock("retrain", "crashed")
    with pytest.raises(ConflictError, match="held by run run-b"):
        registry.acquire_lock("retrain", "crashed", ttl_seconds=600)


def test_given_a_marker_when_marked_twice_then_only_the_first_counts(stack) -> None:
    registry = ModelRegistry(stack.tables["ModelVersionsTable"])
    assert registry.mark_once("drift#2023-W02", {"reason": "accuracy"}) is True
    assert registry.mark_once("drift#2023-W02", {"reason": "accuracy"}) is False


def test_given_a_bundle_when_the_manifest_is_missing_then_it_cannot_be_read(stack) -> None:
    store = ArtifactStore(stack.bucket)
    store.write_bundle_files("v1", {"model.json": b"{}", "manifest.json": b'{"files": {"model.json": {}}}'})
    assert store.read_bundle_files("v1")["model.json"] == b"{}"
    store.put_bytes(layout.bundle_key("v2", layout.MODEL_FILE), b"{}")
    assert store.bundle_committed("v2") is False
    with pytest.raises(NotFoundError):
        store.read_bundle_files("v2")


def test_given_the_active_parameter_when_written_then_history_explains_each_change(stack) -> None:
    name = stack.parameters["ActiveModelParameter"]
    assert parameters.read(name) == "none"
    parameters.write(name, "v1", why="promote v1: gates passed")
    parameters.write(name, "v2", why="promote v2")
    parameters.write(name, "v1", why="rollback: v2 misbehaves")
    assert parameters.read(name) == "v1"
    changes = parameters.history(name)
    assert [c.value for c in changes] == ["none", "v1", "v2", "v1"]
    assert changes[-1].description == "rollback: v2 misbehaves"
    with pytest.raises(NotFoundError):
        parameters.read("/nbaml/test/nope")


def test_given_a_cached_read_when_the_parameter_changes_then_the_new_value_shows_after_max_age(stack) -> None:
    name = stack.parameters["ActiveModelParameter"]
    assert parameters.read(name, max_age=60) == "none"
    parameters.write(name, "v1", why="promote")
    assert parameters.read(name, max_age=60) == "none"  # still cached
    assert parameters.read(name, max_age=0) == "v1"


def test_canary_parameter_encoding() -> None:
    canary = parameters.Canary("v2", 10)
    assert parameters.Canary.decode(canary.encode()) == canary
    assert parameters.Canary.decode("none") is None
    assert parameters.Canary.decode("v2:0") is None
    assert parameters.Canary.decode("garbage") is None
