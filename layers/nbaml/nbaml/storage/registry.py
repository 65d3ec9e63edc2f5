"""The ModelVersions table: the model registry (the seed's ``model_versions``), the retrain lock, markers.

Every status change appends who, when and why to the version's ``history``; the SSM parameter's own
history records the same promotions from the parameter's side.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import ConflictError, NotFoundError, StorageError
from nbaml.storage.dynamo import call, from_item, is_conditional_failure, query_all, scan_all, table, to_item

# Items that are not versions share the table under these key prefixes (they carry no status, so the
# by_status index never sees them).
LOCK_PREFIX = "LOCK#"
MARKER_PREFIX = "MARK#"


class VersionStatus(StrEnum):
    CANDIDATE = "candidate"
    CANARY = "canary"  # serving a share of games (nbaml.promotion.canary)
    ACTIVE = "active"
    INACTIVE = "inactive"
    REJECTED = "rejected"
    ARCHIVED = "archived"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ModelRegistry:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    # ---------------------------------------------------------------- versions
    def register(self, version: str, record: dict[str, Any], *, by: str, why: str) -> None:
        """Create a version's item as a candidate; a version is registered once."""
        now = _now()
        item = to_item(
            {
                **record,
                "version": version,
                "status": VersionStatus.CANDIDATE.value,
                "created_at": record.get("created_at", now),
                "history": [{"at": now, "from": None, "to": "candidate", "by": by, "why": why}],
            }
        )
        call(
            f"register {version}",
            lambda: table(self.table_name).put_item(Item=item, ConditionExpression="attribute_not_exists(version)"),
        )

    def get(self, version: str) -> dict[str, Any]:
        response = call(f"get {version}", lambda: table(self.table_name).get_item(Key={"version": version}))
        item = response.get("Item")
        if not item or version.startswith((LOCK_PREFIX, MARKER_PREFIX)):
            raise NotFoundError(f"model version {version} is not registered")
        return from_item(item)

    def versions(self) -> list[dict[str, Any]]:
        """Every registered version, newest first (the seed's ``ORDER BY deployed_at DESC``)."""
        items = call("list versions", lambda: scan_all(table(self.table_name)))
        versions = [i for i in items if not str(i["version"]).startswith((LOCK_PREFIX, MARKER_PREFIX))]
        return sorted(versions, key=lambda i: (i.get("deployed_at") or "", i.get("created_at") or ""), reverse=True)

    def made_by_request(self, request_id: str) -> dict[str, Any] | None:
        """The version a retrain request registered, if it got that far (a request registers at most one)."""
        made = [v for v in self.versions() if v.get("request_id") == request_id]
        return from_item(min(made, key=lambda v: str(v["version"]))) if made else None

    def annotate(self, version: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` on a registered version's item without a status change (no history entry): what a retrain
        decided about it, a canary's checks."""
        names = {f"#f{i}": key for i, key in enumerate(fields)}
        values = {f":f{i}": to_item({"v": value})["v"] for i, value in enumerate(fields.values())}
        call(
            f"annotate {version}",
            lambda: table(self.table_name).update_item(
                Key={"version": version},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(version)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            ),
        )

    def with_status(self, status: VersionStatus) -> list[dict[str, Any]]:
        return call(
            f"versions {status}",
            lambda: query_all(
                table(self.table_name),
                IndexName="by_status",
                KeyConditionExpression=Key("status").eq(status.value),
                ScanIndexForward=False,
            ),
        )

    def set_status(
        self, version: str, status: VersionStatus, *, by: str, why: str, extra: dict[str, Any] | None = None
    ) -> None:
        """Move a version to ``status``, appending the change to its history."""
        current = self.get(version)
        now = _now()
        entry = to_item({"at": now, "from": current.get("status"), "to": status.value, "by": by, "why": why})
        names = {"#s": "status"}
        values: dict[str, Any] = {":s": status.value, ":h": [entry], ":empty": []}
        update = "SET #s = :s, history = list_append(if_not_exists(history, :empty), :h)"
        if status is VersionStatus.ACTIVE:
            update += ", deployed_at = :t"
            values[":t"] = now
        for i, (key, value) in enumerate((extra or {}).items()):
            names[f"#x{i}"] = key
            values[f":x{i}"] = to_item({"v": value})["v"]
            update += f", #x{i} = :x{i}"
        call(
            f"set {version} {status}",
            lambda: table(self.table_name).update_item(
                Key={"version": version},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(version)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            ),
        )

    def acquire_lock(self, name: str, owner: str, ttl_seconds: int) -> None:
        """Take the named lock, or raise ConflictError naming the run that holds it.

        A conditional write with an expiry: a crashed holder's lock lapses after ``ttl_seconds``.
        """
        now = dt.datetime.now(dt.UTC)
        key = LOCK_PREFIX + name
        item = {
            "version": key,
            "owner": owner,
            "acquired_at": now.isoformat(),
            "expires_at": int(now.timestamp()) + ttl_seconds,
        }
        try:
            table(self.table_name).put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(version) OR expires_at < :now OR #o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":now": int(now.timestamp()), ":me": owner},
            )
        except ClientError as exc:
            if is_conditional_failure(exc):
                holder = self._item(key)
                raise ConflictError(
                    f"lock {name} is held by run {holder.get('owner')} since {holder.get('acquired_at')}"
                ) from exc
            raise StorageError(f"acquire lock {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"acquire lock {name}: {exc}") from exc

    def release_lock(self, name: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it (a lapsed lock taken by another run stays theirs)."""
        try:
            table(self.table_name).delete_item(
                Key={"version": LOCK_PREFIX + name},
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": owner},
            )
        except ClientError as exc:
            if not is_conditional_failure(exc):
                raise StorageError(f"release lock {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"release lock {name}: {exc}") from exc

    def mark_once(self, name: str, detail: dict[str, Any]) -> bool:
        """Record a one-time marker (e.g. this week's drift retrain); False if it was recorded before."""
        item = to_item({**detail, "version": MARKER_PREFIX + name, "marked_at": _now()})
        try:
            table(self.table_name).put_item(Item=item, ConditionExpression="attribute_not_exists(version)")
        except ClientError as exc:
            if is_conditional_failure(exc):
                return False
            raise StorageError(f"mark {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"mark {name}: {exc}") from exc
        return True

    def put_marker(self, name: str, detail: dict[str, Any]) -> None:
        """Record (or overwrite) a named marker, e.g. where a version's drift evidence restarts."""
        item = to_item({**detail, "version": MARKER_PREFIX + name, "marked_at": _now()})
        call(f"mark {name}", lambda: table(self.table_name).put_item(Item=item))

    def marker(self, name: str) -> dict[str, Any] | None:
        """A marker's detail, or None if it was never recorded."""
        return self._item(MARKER_PREFIX + name) or None

    def _item(self, key: str) -> dict[str, Any]:
        response = call(f"get {key}", lambda: table(self.table_name).get_item(Key={"version": key}))
        return from_item(response.get("Item") or {})


__all__ = ["ConflictError", "ModelRegistry", "VersionStatus"]
