"""The Predictions table: every prediction served or shadowed, joined to its game's outcome.

Key: game_id + prediction_key ("{version}#{role}"): one item per game x model version x role however often
it is asked. Two kinds of item (the predict function decides which, nbaml.serving.predictor):

- a game on the schedule, asked before its tip-off: the write replaces the item (the last prediction before
  tip-off is the one a game is judged by) unless the item is already joined to its outcome;
- a hypothetical matchup (not on the schedule): the item carries ``expires_at`` (epoch seconds, the table's
  TimeToLiveSpecification, so DynamoDB deletes it), and is written only where no real item exists.

The features a prediction was made from are stored as one binary attribute, the row's float64 values
little-endian (the bytes its ``feature_hash`` is taken of), and read back as a list of floats: exact, about
half the bytes of a list of numbers, and one value to read instead of one per feature (a season's drift check
reads thousands of rows). Items written before, with a list of numbers, read back the same way.

When a game ends, collect writes the outcome and ``resolved_key`` ("{game_date}#{game_id}") onto the real
items of that game, which puts them into the sparse resolved_by_role / resolved_by_version indexes that
drift_check reads; a hypothetical item is never joined, so it never reaches monitoring.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import Binary
from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import ConflictError, StorageError
from nbaml.games.records import Game
from nbaml.metrics import picks_home
from nbaml.storage.dynamo import call, is_conditional_failure, query_all, scan_all, table, to_item


@dataclass(frozen=True)
class PredictionRecord:
    game_id: str
    game_date: str
    home: str
    away: str
    version: str
    role: str  # champion, canary, shadow
    probability: float  # home-win probability
    feature_hash: str
    latency_ms: float
    served_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    features: list[float] | None = None
    served: bool = True  # False for the shadow, and for the champion on a game its canary answered
    expires_at: int | None = None  # a hypothetical matchup's TTL (epoch seconds); None for a game on the schedule

    @property
    def prediction_key(self) -> str:
        return f"{self.version}#{self.role}"

    @property
    def pick(self) -> str:
        return self.home if picks_home(self.probability) else self.away


# What ``resolve`` reads of each prediction (the feature row and the rest stay in the table).
RESOLVE_READS = "game_id, prediction_key, probability, expires_at, home_won, resolved_key"


class PredictionLog:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def record(self, prediction: PredictionRecord) -> bool:
        """Log a prediction; True if written. A real one replaces the item unless its game is resolved; a
        hypothetical one (``expires_at``) is written only where the item is missing or hypothetical too."""
        document = {**asdict(prediction), "features": None, "prediction_key": prediction.prediction_key}
        item = to_item(document | {"pick": prediction.pick})  # the features are packed below, not sent through JSON
        if prediction.features is not None:
            item["features"] = Binary(pack_features(prediction.features))
        condition = (
            "attribute_not_exists(resolved_key)"
            if prediction.expires_at is None
            else "attribute_not_exists(game_id) OR attribute_exists(expires_at)"
        )
        try:
            table(self.table_name).put_item(Item=item, ConditionExpression=condition)
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise StorageError(f"log prediction {prediction.game_id}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"log prediction {prediction.game_id}: {exc}") from exc
        return True

    def for_game(self, game_id: str, *, attributes: str | None = None) -> list[dict[str, Any]]:
        """A game's predictions; ``attributes`` (a ProjectionExpression) reads only those of each item."""
        projection = {"ProjectionExpression": attributes} if attributes else {}
        return call(
            f"predictions of {game_id}",
            lambda: _readable(
                query_all(table(self.table_name), KeyConditionExpression=Key("game_id").eq(game_id), **projection)
            ),
        )

    def on_date(self, day: dt.date) -> list[dict[str, Any]]:
        return call(
            f"predictions on {day}",
            lambda: _readable(
                query_all(
                    table(self.table_name),
                    IndexName="by_date",
                    KeyConditionExpression=Key("game_date").eq(day.isoformat()),
                )
            ),
        )

    def resolve(self, games: Iterable[Game]) -> int:
        """Join final games' outcomes onto their real predictions (ground truth). Returns items updated.

        Idempotent, and a late correction of a score simply rewrites the outcome. Hypothetical items (with
        ``expires_at``) are left alone, so they never reach the resolved indexes.
        """
        tbl = table(self.table_name)
        updated = 0
        now = dt.datetime.now(dt.UTC).isoformat()
        for game in games:
            if not game.is_final:
                continue
            home_won = bool(game.home_won)
            values = {":w": home_won, ":k": f"{game.game_date.isoformat()}#{game.game_id}", ":t": now}
            for item in self.for_game(game.game_id, attributes=RESOLVE_READS):
                if "expires_at" in item or (item.get("home_won") == home_won and item.get("resolved_key")):
                    continue
                key = {"game_id": item["game_id"], "prediction_key": item["prediction_key"]}
                item_values = {**values, ":c": picks_home(float(item["probability"])) == home_won}
                try:
                    call(
                        f"resolve prediction {game.game_id}",
                        lambda key=key, item_values=item_values: tbl.update_item(
                            Key=key,
                            UpdateExpression="SET home_won = :w, correct = :c, resolved_key = :k, resolved_at = :t",
                            ConditionExpression="attribute_exists(game_id) AND attribute_not_exists(expires_at)",
                            ExpressionAttributeValues=item_values,
                        ),
                    )
                except ConflictError:
                    continue  # gone meanwhile (deleted, or expired): nothing to join
                updated += 1
        return updated

    def resolved(
        self,
        *,
        role: str | None = None,
        version: str | None = None,
        limit: int | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
    ) -> list[dict[str, Any]]:
        """Resolved predictions of a role or a version, newest first, optionally within dates."""
        if (role is None) == (version is None):
            raise ValueError("give exactly one of role or version")
        index, key = (
            ("resolved_by_role", Key("role").eq(role)) if role else ("resolved_by_version", Key("version").eq(version))
        )
        low = since.isoformat() if since else "0000"
        high = (until.isoformat() + "~") if until else "9999"
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": key & Key("resolved_key").between(low, high),
            "ScanIndexForward": False,
        }
        if limit:
            kwargs["Limit"] = limit
        return call("resolved predictions", lambda: _readable(query_all(table(self.table_name), **kwargs)))

    def all(self) -> list[dict[str, Any]]:
        return call("scan predictions", lambda: _readable(scan_all(table(self.table_name))))


def pack_features(row: list[float]) -> bytes:
    """A feature row as stored: its float64 values, little-endian (``serving.predictor``'s feature hash bytes)."""
    return struct.pack(f"<{len(row)}d", *row)


def _readable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items with their stored features (binary, or a list of numbers from before) as a list of floats."""
    for item in items:
        stored = item.get("features")
        if isinstance(stored, Binary | bytes | bytearray):
            raw = bytes(stored.value if isinstance(stored, Binary) else stored)
            item["features"] = list(struct.unpack(f"<{len(raw) // 8}d", raw))
    return items
