"""The Games table: one item a game, upserted idempotently by game_id."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import StorageError
from nbaml.games.records import Game
from nbaml.storage.aws import resource
from nbaml.storage.dynamo import call, from_item, is_conditional_failure, query_all, table, to_item


@dataclass
class UpsertResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"inserted": self.inserted, "updated": self.updated, "unchanged": self.unchanged}


def content_hash(game: Game) -> str:
    """What a game says, minus where it came from: the same result from a replayed event hashes the same.

    A game without a tip-off hashes as it did before records had one, so the items stored then stay
    unchanged; a feed that now gives the tip-off rewrites each such item once, adding it.
    """
    body = game.model_dump_json(exclude={"source", "source_id"} | ({"tip_off"} if game.tip_off is None else set()))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


class GameStore:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def upsert(self, games: Iterable[Game], *, collected_at: dt.datetime | None = None) -> UpsertResult:
        """Write each game unless the stored item already says the same thing.

        Idempotent: the same day collected twice, or a replayed event, changes nothing. A final game is
        never downgraded by a later non-final record of it (a feed that still lists it as scheduled);
        a corrected final score does replace the old one.
        """
        tbl = table(self.table_name)
        stamp = (collected_at or dt.datetime.now(dt.UTC)).isoformat()
        result = UpsertResult()
        games = list(games)
        stored = self._stored_hashes([g.game_id for g in games])
        for game in games:
            digest = content_hash(game)
            known = stored.get(game.game_id)
            if known is not None and (known[0] == digest or (known[1] == "final" and not game.is_final)):
                result.unchanged += 1  # read first: a repeated day costs one batch read, not a write a game
                continue
            item = to_item({**game.model_dump(mode="json"), "content_hash": digest, "collected_at": stamp})
            condition = "attribute_not_exists(game_id) OR content_hash <> :h"
            values: dict[str, str] = {":h": digest}
            if not game.is_final:
                condition = "attribute_not_exists(game_id) OR (content_hash <> :h AND #s <> :final)"
                values[":final"] = "final"
            try:
                response = tbl.put_item(
                    Item=item,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                    **({"ExpressionAttributeNames": {"#s": "status"}} if not game.is_final else {}),
                )
            except ClientError as exc:
                if is_conditional_failure(exc):
                    result.unchanged += 1
                    continue
                raise StorageError(f"upsert game {game.game_id}: {exc}") from exc
            except BotoCoreError as exc:
                raise StorageError(f"upsert game {game.game_id}: {exc}") from exc
            if response.get("Attributes"):
                result.updated += 1
            else:
                result.inserted += 1
        return result

    def _stored_hashes(self, game_ids: list[str]) -> dict[str, tuple[str, str]]:
        """game_id -> (content_hash, status) of the stored items, read in batches of 100."""
        found: dict[str, tuple[str, str]] = {}
        unique = sorted(set(game_ids))
        for start in range(0, len(unique), 100):
            request: dict = {
                self.table_name: {
                    "Keys": [{"game_id": gid} for gid in unique[start : start + 100]],
                    "ProjectionExpression": "game_id, content_hash, #s",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            while request:
                response = call(
                    "read games", lambda request=request: resource("dynamodb").batch_get_item(RequestItems=request)
                )
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[item["game_id"]] = (str(item.get("content_hash")), str(item.get("status")))
                request = response.get("UnprocessedKeys") or {}
        return found

    def put_many(self, games: Iterable[Game], *, collected_at: dt.datetime | None = None) -> int:
        """Bulk write (backfill): batch writes of 25, unconditional, so only for a history load."""
        stamp = (collected_at or dt.datetime.now(dt.UTC)).isoformat()
        count = 0
        try:
            with table(self.table_name).batch_writer(overwrite_by_pkeys=["game_id"]) as writer:
                for game in games:
                    item = {**game.model_dump(mode="json"), "content_hash": content_hash(game), "collected_at": stamp}
                    writer.put_item(Item=to_item(item))
                    count += 1
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"bulk write of games: {exc}") from exc
        return count

    def get(self, game_id: str) -> Game | None:
        response = call(f"get game {game_id}", lambda: table(self.table_name).get_item(Key={"game_id": game_id}))
        item = response.get("Item")
        return _game(from_item(item)) if item else None

    def on_date(self, day: dt.date) -> list[Game]:
        items = call(
            f"games on {day}",
            lambda: query_all(
                table(self.table_name), IndexName="by_date", KeyConditionExpression=Key("game_date").eq(day.isoformat())
            ),
        )
        return [_game(item) for item in items]


def _game(item: dict) -> Game:
    fields = set(Game.model_fields)
    return Game.model_validate({k: v for k, v in item.items() if k in fields})
