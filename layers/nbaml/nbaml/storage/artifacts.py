"""The artifact bucket: raw feed payloads, training snapshots, team state, model bundles, reports.

Which key holds what is ``nbaml.layout``'s to say; this module only moves bytes, and commits bundles.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nbaml.errors import NotFoundError, StorageError
from nbaml.layout import MANIFEST_FILE, bundle_key, manifest_key
from nbaml.storage.aws import client


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
        return self.put_bytes(key, json_bytes(document), "application/json")

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
        if MANIFEST_FILE not in files:
            raise StorageError(f"bundle {version} has no {MANIFEST_FILE}")
        for name in sorted(files):
            if name != MANIFEST_FILE:
                self.put_bytes(bundle_key(version, name), files[name], _content_type(name))
        self.put_bytes(manifest_key(version), files[MANIFEST_FILE], "application/json")

    def read_bundle_files(self, version: str) -> dict[str, bytes]:
        """The manifest and every file it lists (checksums are verified by ModelBundle.from_files)."""
        manifest_bytes = self.get_bytes(manifest_key(version))
        try:
            listed = json.loads(manifest_bytes)["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"bundle {version}: unreadable {MANIFEST_FILE}") from exc
        files = {MANIFEST_FILE: manifest_bytes}
        for name in listed:
            files[name] = self.get_bytes(bundle_key(version, name))
        return files

    def bundle_committed(self, version: str) -> bool:
        return self.exists(manifest_key(version))


def json_bytes(document: Any) -> bytes:
    """How every JSON document is written: sorted keys, no spaces (so equal documents have equal bytes)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def _content_type(name: str) -> str:
    if name.endswith(".json"):
        return "application/json"
    if name.endswith(".html"):
        return "text/html; charset=utf-8"
    if name.endswith(".png"):
        return "image/png"
    return "text/plain; charset=utf-8"
