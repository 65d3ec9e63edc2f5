"""The artifact bucket: raw feed payloads, training snapshots, team state, model bundles, reports.

Key layout (the bucket is versioned, so a rewrite keeps the old version):
    raw/{run_date}/{source}/{name}      feed payloads exactly as received, archived before parsing
    training/games/{season}.jsonl       completed games, one clean record per line
    state/league.json                   the incremental team state the features read
    models/{version}/...                model bundles; manifest.json is written last (the commit)
    reports/{run_date}/drift.{json,html} drift reports
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import NotFoundError, StorageError
from nbaml.storage.aws import client

MANIFEST = "manifest.json"


def model_prefix(version: str) -> str:
    return f"models/{version}/"


class ArtifactStore:
    """Typed access to the artifact bucket; wraps every S3 error into our own."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    # ---------------------------------------------------------------- bytes and JSON
    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> str:
        """Write one object; returns its S3 version id (empty where versioning is off)."""
        try:
            response = client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot write s3://{self.bucket}/{key}: {exc}") from exc
        return str(response.get("VersionId") or "")

    def get_bytes(self, key: str) -> bytes:
        try:
            response = client("s3").get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404", "NotFound"}:
                raise NotFoundError(f"s3://{self.bucket}/{key} does not exist") from exc
            raise StorageError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read s3://{self.bucket}/{key}: {exc}") from exc

    def put_json(self, key: str, document: Any) -> str:
        body = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
        return self.put_bytes(key, body, "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        try:
            client("s3").head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise StorageError(f"cannot check s3://{self.bucket}/{key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot check s3://{self.bucket}/{key}: {exc}") from exc

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, in S3's (lexicographic) order."""
        try:
            for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot list s3://{self.bucket}/{prefix}: {exc}") from exc

    # ---------------------------------------------------------------- model bundles
    def write_bundle_files(self, version: str, files: Mapping[str, bytes]) -> None:
        """Upload a bundle, the manifest last: until the manifest lands, no reader accepts the bundle.

        A crash between uploads leaves files without a manifest, which ``read_bundle_files`` refuses,
        so nothing can ever serve half a bundle.
        """
        if MANIFEST not in files:
            raise StorageError(f"bundle {version} has no {MANIFEST}")
        prefix = model_prefix(version)
        for name in sorted(files):
            if name != MANIFEST:
                self.put_bytes(prefix + name, files[name], _content_type(name))
        self.put_bytes(prefix + MANIFEST, files[MANIFEST], "application/json")

    def read_bundle_files(self, version: str) -> dict[str, bytes]:
        """The manifest and every file it lists (checksums are verified by ModelBundle.from_files)."""
        prefix = model_prefix(version)
        manifest_bytes = self.get_bytes(prefix + MANIFEST)
        try:
            listed = json.loads(manifest_bytes)["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"bundle {version}: unreadable {MANIFEST}") from exc
        files = {MANIFEST: manifest_bytes}
        for name in listed:
            files[name] = self.get_bytes(prefix + name)
        return files

    def bundle_committed(self, version: str) -> bool:
        return self.exists(model_prefix(version) + MANIFEST)


def _content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    if name.endswith(".png"):
        return "image/png"
    return "text/plain; charset=utf-8"
