"""Backup and restore of a stack's whole state to a folder and back: the seed's daily snapshot of ``models/``.

What a stack holds that a redeploy of template.yaml cannot recreate is data: the artifact bucket (bundles,
team state, training snapshots, raw payloads, reports), the DynamoDB tables (games, the prediction log,
the registry, the retrain requests' outcomes) and the SSM parameters under ``/nbaml/{stage}/`` with their
history (the audit trail of every promotion and rollback). This module copies exactly that, through the
same boto3 calls on AWS and on the emulator, so the one runbook covers a lost AWS stack and a local
``stack down``.

A backup folder::

    manifest.json                         format, source, counts, SHA-256 of every other file
    s3-objects.jsonl                      one line per current object: key, file, size, sha256, content type
    s3/<key>                              each object's bytes under its own key (s3-other/<sha256> if the key
                                          cannot be a path)
    dynamodb/<LogicalId>.jsonl            one item per line in DynamoDB JSON (type-preserving; binary base64)
    ssm-parameters.json                   every parameter's history, oldest first; SecureString values left out
    ssm-securestrings.SECRET.enc          only when asked (``--with-secrets``): the SecureString values,
                                          encrypted with a key derived from the operator's passphrase
                                          (scrypt, then Fernet: AES-128-CBC with HMAC-SHA256), mode 0600

Secrets stay out of a backup by default: the admin token and the feed key have their own owner (the
operator who created them outside the template), a backup folder travels, and ``stack down`` takes one
without being asked. A restore without them keeps the target stack's own SecureStrings (a fresh local
deploy makes a new admin token and prints it). ``--with-secrets`` writes them encrypted, never in plain
text, and the same passphrase is needed to restore them.

Restore replays each parameter's history in order (so GetParameterHistory shows it again), then writes
the objects and the items. It refuses a stack that already holds data unless forced: restoring over live
data is a decision, not a default. moto keeps nothing on disk, so the local stack survives ``stack down``
and ``stack up`` the same way (``snapshot_on_down`` and ``restore_on_up``).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from infra import InfraError
from infra import emulator as emu
from infra import template as tpl
from nbaml import layout

BACKUP_FORMAT = 1
MANIFEST = "manifest.json"
OBJECTS_INDEX = "s3-objects.jsonl"
OBJECTS_DIR = "s3"
ODD_OBJECTS_DIR = "s3-other"
TABLES_DIR = "dynamodb"
PARAMETERS = "ssm-parameters.json"
SECRETS = "ssm-securestrings.SECRET.enc"
SECRET_MODE = 0o600
MIN_PASSPHRASE = 16
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}

MODELS_DIR = emu.REPO_ROOT / "models"
BACKUPS_DIR = MODELS_DIR / "backups"
LAST_SNAPSHOT = emu.STATE_DIR / "last-snapshot.json"
DEFAULT_KMS_KEY = "alias/aws/ssm"

_BATCH = 25  # DynamoDB's BatchWriteItem limit
_UNPROCESSED_ATTEMPTS = 8
_SECURE = "SecureString"

Clients = Callable[[str], Any]


class BackupError(InfraError):
    """A backup could not be taken, or a folder cannot be restored (missing, tampered, or a non-empty stack)."""


@functools.cache
def _parameter_root(stage: str) -> str:
    """Where the stage's SSM parameters live, as template.yaml names them (read once)."""
    return tpl.parameter_root(tpl.load(), stage)


# ---------------------------------------------------------------- what a stack is, for a backup
@dataclass(frozen=True)
class StackState:
    """Where a stack keeps its state, by the template's logical ids, and the clients that reach it.

    Logical ids, not physical names, tie a backup to a stack: a restore into a stack of another name
    (a new account, another stage, a fresh emulator) finds each table and the bucket by its role.
    """

    stage: str
    bucket: str
    tables: dict[str, str]  # logical id -> table name
    clients: Clients = field(repr=False, compare=False)
    stack_name: str = ""

    @property
    def parameter_prefix(self) -> str:
        return _parameter_root(self.stage)

    @classmethod
    def of_local(cls, stack: Any, clients: Clients | None = None) -> StackState:
        """An ``infra.stack.LocalStack``: the emulator's (its endpoint, the fake credentials) unless ``clients``."""
        buckets = [lid for lid, kind in stack.resource_types.items() if kind == "AWS::S3::Bucket"]
        if len(buckets) != 1:
            raise BackupError(f"expected one bucket in stack {stack.stack_name}, found {len(buckets)}")
        tables = {
            lid: stack.resource(lid) for lid, kind in stack.resource_types.items() if kind == "AWS::DynamoDB::Table"
        }
        endpoint = stack.endpoint
        return cls(
            stage=stack.parameters.get("Stage", "dev"),
            bucket=stack.resource(buckets[0]),
            tables=tables,
            clients=clients or (lambda service: emu.client(service, endpoint)),
            stack_name=stack.stack_name,
        )

    @classmethod
    def of_cloudformation(cls, stack_name: str, clients: Clients | None = None) -> StackState:
        """A deployed CloudFormation stack; ``clients`` defaults to boto3's default session (AWS_ENDPOINT_URL,
        the operator's profile and region decide where)."""
        import boto3

        from infra.stack import read_cloudformation

        clients = clients or boto3.session.Session().client
        return cls.of_local(read_cloudformation(stack_name, clients), clients)


# ---------------------------------------------------------------- reports
@dataclass
class Report:
    """What a backup wrote or a restore replayed (``action``), printed by the command line."""

    action: str
    folder: Path
    objects: int
    items: dict[str, int]
    parameters: int
    parameter_versions: int
    secure_strings: int = 0
    secrets_included: bool = False
    withheld_parameters: list[str] = field(default_factory=list)
    replaced_parameters: list[str] = field(default_factory=list)
    mirrored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        tables = ", ".join(f"{lid} {n}" for lid, n in sorted(self.items.items()))
        versions = "versions in their history" if self.action == "backup" else "versions replayed"
        lines = [
            f"{self.action:<9} {self.folder}",
            f"  s3        {self.objects} objects",
            f"  dynamodb  {tables}",
            f"  ssm       {self.parameters} parameters, {self.parameter_versions} {versions}",
        ]
        if self.secure_strings and self.secrets_included:
            lines.append(f"  secrets   {self.secure_strings} SecureString(s), encrypted in {SECRETS} (mode 0600)")
        elif self.secure_strings:
            lines.append(f"  secrets   {self.secure_strings} SecureString(s) named, values left out (--with-secrets)")
        if self.withheld_parameters:
            lines.append(f"  kept      {', '.join(self.withheld_parameters)}: the stack's own (no secret restored)")
        if self.replaced_parameters:
            lines.append(f"  replaced  {', '.join(self.replaced_parameters)} (their history differed; rewritten whole)")
        if self.mirrored:
            lines.append(f"  mirror    models/{{{','.join(self.mirrored)}}}")
        lines.append(f"  took      {self.seconds:.1f} s")
        return "\n".join(lines)


# ---------------------------------------------------------------- backup
def backup(state: StackState, folder: Path | str, *, secrets_passphrase: str | None = None) -> Report:
    """Copy the stack's whole state into ``folder`` (new or empty), then seal it with ``manifest.json``.

    The manifest is written last: a folder without one is an interrupted backup and restore refuses it.
    SecureString values are written only with ``secrets_passphrase``, and then only encrypted with it.
    """
    if secrets_passphrase is not None:
        _check_passphrase(secrets_passphrase)
    started = time.monotonic()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: a backup never overwrites another")
    folder.mkdir(parents=True, exist_ok=True)
    objects = _backup_objects(state, folder)
    items = {lid: _backup_table(state, lid, name, folder) for lid, name in sorted(state.tables.items())}
    parameters, versions, secure = _backup_parameters(state, folder, secrets_passphrase)
    files = {
        path.relative_to(folder).as_posix(): _sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    manifest = {
        "format": BACKUP_FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": {
            "stack_name": state.stack_name,
            "stage": state.stage,
            "bucket": state.bucket,
            "tables": state.tables,
            "parameter_prefix": state.parameter_prefix,
        },
        "counts": {
            "s3_objects": objects,
            "dynamodb_items": items,
            "ssm_parameters": parameters,
            "ssm_parameter_versions": versions,
            "ssm_secure_strings": secure,
        },
        "secrets_included": secrets_passphrase is not None and secure > 0,
        "key_schemas": {lid: _key_schema(state, name) for lid, name in sorted(state.tables.items())},
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return Report(
        action="backup",
        folder=folder,
        objects=objects,
        items=items,
        parameters=parameters,
        parameter_versions=versions,
        secure_strings=secure,
        secrets_included=secrets_passphrase is not None and secure > 0,
        seconds=round(time.monotonic() - started, 2),
    )


def _backup_objects(state: StackState, folder: Path) -> int:
    s3 = state.clients("s3")
    index: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=state.bucket):
        for listed in page.get("Contents", []):
            key = listed["Key"]
            response = s3.get_object(Bucket=state.bucket, Key=key)
            body = response["Body"].read()
            digest = hashlib.sha256(body).hexdigest()
            relative = _object_path(folder, key, digest)
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            index.append(
                {
                    "key": key,
                    "file": relative,
                    "size": len(body),
                    "sha256": digest,
                    "content_type": response.get("ContentType") or "binary/octet-stream",
                }
            )
    _write_lines(folder / OBJECTS_INDEX, index)
    return len(index)


def _object_path(folder: Path, key: str, digest: str) -> str:
    """``s3/<key>`` when the key is a safe relative path that does not collide; else ``s3-other/<sha256>``.

    Keys are whatever S3 allows ("a/../b", "x/", "a" beside "a/b"); the index keeps the real key, so the
    fallback loses nothing, and no key can ever write outside the backup folder.
    """
    parts = PurePosixPath(key).parts
    safe = (
        bool(parts)
        and not key.startswith("/")
        and not key.endswith("/")
        and "\\" not in key
        and "\x00" not in key
        and all(part not in ("", ".", "..") for part in parts)
        and "//" not in key
    )
    if safe:
        target = folder / OBJECTS_DIR / Path(*parts)
        blocked = any(parent.is_file() for parent in target.parents if folder in parent.parents)
        if not blocked and not target.exists():
            return f"{OBJECTS_DIR}/{key}"
    return f"{ODD_OBJECTS_DIR}/{digest}"


def _backup_table(state: StackState, logical_id: str, name: str, folder: Path) -> int:
    ddb = state.clients("dynamodb")
    lines: list[str] = []
    for page in ddb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
        lines.extend(json.dumps(_json_safe(item), sort_keys=True) for item in page.get("Items", []))
    lines.sort()  # scan order is the table's hash order: sorted, a backup of the same data is the same file
    path = folder / TABLES_DIR / f"{logical_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return len(lines)


def _key_schema(state: StackState, name: str) -> list[dict[str, str]]:
    return list(state.clients("dynamodb").describe_table(TableName=name)["Table"]["KeySchema"])


def _backup_parameters(state: StackState, folder: Path, passphrase: str | None) -> tuple[int, int, int]:
    ssm = state.clients("ssm")
    prefix = state.parameter_prefix
    names: list[str] = []
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=prefix.rstrip("/"), Recursive=True):
        names.extend(p["Name"] for p in page.get("Parameters", []))
    documents: list[dict[str, Any]] = []
    secrets: dict[str, dict[str, str]] = {}
    versions = 0
    for name in sorted(set(names)):
        history: list[dict[str, Any]] = []
        decrypt = passphrase is not None  # without one, no SecureString value is ever read
        for page in ssm.get_paginator("get_parameter_history").paginate(Name=name, WithDecryption=decrypt):
            history.extend(page.get("Parameters", []))
        history.sort(key=lambda h: int(h["Version"]))
        entries = []
        for item in history:
            entry = {
                "version": int(item["Version"]),
                "type": item["Type"],
                "description": item.get("Description", ""),
                "labels": list(item.get("Labels", [])),
                "data_type": item.get("DataType", "text"),
                "tier": item.get("Tier", "Standard"),
                "modified_at": _iso(item.get("LastModifiedDate")),
                "modified_by": item.get("LastModifiedUser", ""),
            }
            if item.get("AllowedPattern"):
                entry["allowed_pattern"] = item["AllowedPattern"]
            if item["Type"] == _SECURE:
                entry["key_id"] = item.get("KeyId", DEFAULT_KMS_KEY)
                if decrypt:
                    secrets.setdefault(name[len(prefix) :], {})[str(entry["version"])] = str(item["Value"])
            else:
                entry["value"] = item["Value"]
            entries.append(entry)
        versions += len(entries)
        documents.append({"name": name[len(prefix) :], "history": entries})
    (folder / PARAMETERS).write_text(
        json.dumps({"prefix": prefix, "parameters": documents}, indent=2, sort_keys=True) + "\n"
    )
    secure = sum(any(e["type"] == _SECURE for e in d["history"]) for d in documents)
    if secrets and passphrase is not None:
        _write_secret(folder / SECRETS, _encrypt(json.dumps(secrets, sort_keys=True).encode(), passphrase))
    return len(documents), versions, secure


def _write_secret(path: Path, text: str) -> None:
    """Create the secrets file readable by its owner only, from the first byte (no chmod after the fact)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, SECRET_MODE)  # the umask may have removed bits, never added them; make it exact


def _check_passphrase(passphrase: str) -> None:
    if len(passphrase.strip()) < MIN_PASSPHRASE:
        raise BackupError(f"the secrets passphrase must be at least {MIN_PASSPHRASE} characters")


def _fernet(passphrase: str, salt: bytes) -> Any:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    key = Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.strip().encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _encrypt(plaintext: bytes, passphrase: str) -> str:
    """The secrets file: scrypt's parameters and salt beside a Fernet token of the values."""
    salt = os.urandom(16)
    token = _fernet(passphrase, salt).encrypt(plaintext).decode()
    return json.dumps({"kdf": "scrypt", **_SCRYPT, "salt": base64.b64encode(salt).decode(), "fernet": token}) + "\n"


def _decrypt(path: Path, passphrase: str) -> dict[str, dict[str, str]]:
    from cryptography.fernet import InvalidToken

    try:
        envelope = json.loads(path.read_text())
        fernet = _fernet(passphrase, base64.b64decode(envelope["salt"]))
        return dict(json.loads(fernet.decrypt(envelope["fernet"].encode())))
    except InvalidToken:
        raise BackupError(f"{path}: the passphrase does not open it") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is unreadable ({type(exc).__name__})") from None


def read_passphrase(path: Path | str) -> str:
    """The passphrase in ``path`` (its first line): from a file, never from the command line or a log."""
    path = Path(path)
    if path.stat().st_mode & 0o077:
        raise BackupError(f"{path} is readable by others: `chmod 600` it")
    lines = path.read_text(encoding="utf-8").splitlines()
    passphrase = lines[0] if lines else ""
    _check_passphrase(passphrase)
    return passphrase


# ---------------------------------------------------------------- restore
def read_manifest(folder: Path | str) -> dict[str, Any]:
    """The folder's manifest after every listed file's SHA-256 is checked; refuses a tampered backup."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(f"{folder} has no {MANIFEST}: not a backup, or an interrupted one")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise BackupError(f"{path} is not JSON: {exc}") from exc
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(f"{path}: backup format {manifest.get('format')!r}, this tool reads {BACKUP_FORMAT}")
    for relative, digest in manifest.get("files", {}).items():
        file = folder / relative
        if folder.resolve() not in file.resolve().parents:
            raise BackupError(f"{path} lists {relative!r}, outside the backup folder")
        if not file.is_file():
            raise BackupError(f"{folder}: {relative} is missing")
        if _sha256_file(file) != digest:
            raise BackupError(f"{folder}: {relative} does not match its SHA-256 in {MANIFEST}")
    secrets = folder / SECRETS
    if secrets.exists() and secrets.stat().st_mode & 0o077:
        raise BackupError(f"{secrets} is readable by others: `chmod 600` it before restoring")
    return manifest


def holds_data(state: StackState) -> list[str]:
    """What makes the stack not empty: any object, any item, any parameter changed since its creation."""
    found: list[str] = []
    s3 = state.clients("s3")
    if s3.list_objects_v2(Bucket=state.bucket, MaxKeys=1).get("KeyCount", 0):
        found.append(f"s3://{state.bucket} has objects")
    ddb = state.clients("dynamodb")
    for lid, name in sorted(state.tables.items()):
        if ddb.scan(TableName=name, Limit=1, Select="COUNT").get("Count", 0):
            found.append(f"{lid} has items")
    ssm = state.clients("ssm")
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=state.parameter_prefix.rstrip("/"), Recursive=True
    ):
        for parameter in page.get("Parameters", []):
            if parameter["Type"] != _SECURE and int(parameter["Version"]) > 1:
                found.append(f"{parameter['Name']} was changed after its creation")
    return found


def restore(
    state: StackState, folder: Path | str, *, force: bool = False, secrets_passphrase: str | None = None
) -> Report:
    """Write a backup into the stack: parameters (history replayed in order), then objects, then items.

    SecureStrings are restored only from a backup that holds them (encrypted) and with its passphrase;
    otherwise each keeps the target stack's own value, and the report names it.

    Refuses a stack that holds data unless ``force``; forced, same keys are overwritten and anything the
    backup does not have is left in place (nothing is deleted but a parameter whose history must be
    rewritten whole). The registry's items come last, so a restore interrupted midway never shows a
    version as registered whose bundle is not there yet.
    """
    started = time.monotonic()
    folder = Path(folder)
    manifest = read_manifest(folder)
    missing = sorted(set(manifest["source"]["tables"]) - set(state.tables))
    if missing:
        raise BackupError(f"the stack has no table for {', '.join(missing)} (logical ids of the backup)")
    for lid, schema in manifest.get("key_schemas", {}).items():
        if _key_schema(state, state.tables[lid]) != schema:
            raise BackupError(f"{lid}: the stack's key schema differs from the backup's; restore would corrupt it")
    if not force:
        occupied = holds_data(state)
        if occupied:
            raise BackupError(
                "the stack is not empty (" + "; ".join(occupied[:4]) + "): pass --force to restore over it"
            )
    secrets = _secrets_of(folder, manifest, secrets_passphrase)
    parameters, versions, replaced, withheld = _restore_parameters(state, folder, secrets)
    objects = _restore_objects(state, folder)
    order = sorted(state.tables, key=lambda lid: (lid == "ModelVersionsTable", lid))
    items = {lid: _restore_table(state, lid, folder) for lid in order if lid in manifest["source"]["tables"]}
    return Report(
        action="restored",
        folder=folder,
        objects=objects,
        items=items,
        parameters=parameters,
        parameter_versions=versions,
        secrets_included=bool(secrets),
        withheld_parameters=withheld,
        replaced_parameters=replaced,
        seconds=round(time.monotonic() - started, 2),
    )


def _secrets_of(folder: Path, manifest: dict[str, Any], passphrase: str | None) -> dict[str, dict[str, str]]:
    if not manifest.get("secrets_included"):
        if passphrase is not None:
            raise BackupError(f"{folder} holds no secrets (it was taken without --with-secrets)")
        return {}
    if passphrase is None:
        raise BackupError(
            f"{folder} holds encrypted secrets: pass --secrets-passphrase-file FILE (or restore a backup without them)"
        )
    return _decrypt(folder / SECRETS, passphrase)


def _restore_objects(state: StackState, folder: Path) -> int:
    s3 = state.clients("s3")
    count = 0
    for entry in _read_lines(folder / OBJECTS_INDEX):
        body = (folder / entry["file"]).read_bytes()
        if hashlib.sha256(body).hexdigest() != entry["sha256"]:
            raise BackupError(f"{entry['file']} does not match the SHA-256 of {entry['key']}")
        s3.put_object(Bucket=state.bucket, Key=entry["key"], Body=body, ContentType=entry["content_type"])
        count += 1
    return count


def _restore_table(state: StackState, logical_id: str, folder: Path) -> int:
    from boto3.dynamodb.types import TypeDeserializer

    check = TypeDeserializer()
    path = folder / TABLES_DIR / f"{logical_id}.jsonl"
    items = [_from_json_safe(line) for line in _read_lines(path)]
    for item in items:
        check.deserialize({"M": item})  # a malformed item fails here, before anything of the table is written
    ddb = state.clients("dynamodb")
    name = state.tables[logical_id]
    for start in range(0, len(items), _BATCH):
        request = {name: [{"PutRequest": {"Item": item}} for item in items[start : start + _BATCH]]}
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 2.0))  # throttled: back off, bounded
        if request:
            raise BackupError(f"{logical_id}: DynamoDB kept refusing writes after {_UNPROCESSED_ATTEMPTS} attempts")
    return len(items)


def _restore_parameters(
    state: StackState, folder: Path, secrets: dict[str, dict[str, str]]
) -> tuple[int, int, list[str], list[str]]:
    """Replay each parameter's history; a stack's own first versions that match the backup are kept.

    A fresh deploy creates the role parameters with their first value ("none"), which is also the first
    entry of the backup's history: only the later entries are replayed, so the version numbers match too.
    A parameter whose history differs (a new random admin token) is deleted and rewritten whole. A
    SecureString whose values the backup does not hold is left as the stack has it (``withheld``).
    """
    document = json.loads((folder / PARAMETERS).read_text())
    ssm = state.clients("ssm")
    replayed = 0
    replaced: list[str] = []
    withheld: list[str] = []
    for parameter in document["parameters"]:
        relative = parameter["name"]
        name = state.parameter_prefix + relative
        if any(e["type"] == _SECURE for e in parameter["history"]) and relative not in secrets:
            withheld.append(name)
            continue
        wanted = [_with_value(entry, secrets.get(relative, {}), name) for entry in parameter["history"]]
        have = [(h["Type"], h["Value"]) for h in _stack_history(ssm, name)]
        if have and have == [(e["type"], e["value"]) for e in wanted][: len(have)]:
            todo = wanted[len(have) :]
        else:
            if have:
                ssm.delete_parameter(Name=name)
                replaced.append(name)
            todo = wanted
        for entry in todo:
            _put_version(ssm, name, entry)
            replayed += 1
    return len(document["parameters"]), replayed, replaced, withheld


def _stack_history(ssm: Any, name: str) -> list[dict[str, Any]]:
    """The parameter's history in the target stack, oldest first ([] if it does not exist)."""
    from botocore.exceptions import ClientError

    existing: list[dict[str, Any]] = []
    try:
        for page in ssm.get_paginator("get_parameter_history").paginate(Name=name, WithDecryption=True):
            existing.extend(page.get("Parameters", []))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        return []
    return sorted(existing, key=lambda h: int(h["Version"]))


def _put_version(ssm: Any, name: str, entry: dict[str, Any]) -> None:
    """Write one version of a parameter's history back, with its description, pattern, key and labels."""
    arguments: dict[str, Any] = {
        "Name": name,
        "Value": entry["value"],
        "Type": entry["type"],
        "Overwrite": True,
        "Tier": entry.get("tier", "Standard"),
        "DataType": entry.get("data_type", "text"),
    }
    if entry.get("description"):
        arguments["Description"] = entry["description"]
    if entry.get("allowed_pattern"):
        arguments["AllowedPattern"] = entry["allowed_pattern"]
    if entry["type"] == _SECURE and entry.get("key_id") not in (None, DEFAULT_KMS_KEY):
        arguments["KeyId"] = entry["key_id"]
    version = int(ssm.put_parameter(**arguments)["Version"])
    if entry.get("labels"):
        ssm.label_parameter_version(Name=name, ParameterVersion=version, Labels=entry["labels"])


def _with_value(entry: dict[str, Any], secret_values: dict[str, str], name: str) -> dict[str, Any]:
    if entry["type"] != _SECURE:
        return entry
    value = secret_values.get(str(entry["version"]))
    if value is None:
        raise BackupError(f"{name} version {entry['version']} is a SecureString with no value in {SECRETS}")
    return {**entry, "value": value}


# ---------------------------------------------------------------- the local mirror of the models bucket
def mirror_bundles(folder: Path | str, models_dir: Path | str = MODELS_DIR) -> list[str]:
    """Copy the backup's committed bundles to ``models/{version}/``: the local mirror of the models bucket.

    Only bundles whose manifest is in the backup (a bundle without one was never committed). The files
    are artifacts, never code: the mirror is read, never imported or unpickled.
    """
    folder, models_dir = Path(folder), Path(models_dir)
    by_version: dict[str, dict[str, Path]] = {}
    for entry in _read_lines(folder / OBJECTS_INDEX):
        found = layout.bundle_file_of(entry["key"])
        if found is not None:
            by_version.setdefault(found[0], {})[found[1]] = folder / entry["file"]
    mirrored = []
    for version, files in sorted(by_version.items()):
        if layout.MANIFEST_FILE not in files:
            continue
        target = models_dir / version
        target.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            shutil.copyfile(source, target / name)
        mirrored.append(version)
    return mirrored


# ---------------------------------------------------------------- the local stack across stack down / up
def snapshot_on_down(stack: Any, backups_dir: Path = BACKUPS_DIR, state_dir: Path = emu.STATE_DIR) -> Path | None:
    """Back the local stack up before its emulator stops (moto keeps nothing on disk); None if unreachable.

    The folder is recorded in ``.nbaml/last-snapshot.json`` for ``restore_on_up``.
    """
    if not emu.is_reachable(stack.endpoint):
        return None
    folder = backups_dir / f"{_stamp()}-stack-down"
    backup(StackState.of_local(stack), folder)
    mirror_bundles(folder, backups_dir.parent)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / LAST_SNAPSHOT.name).write_text(json.dumps({"folder": str(folder.resolve())}) + "\n")
    return folder


def restore_on_up(stack: Any, state_dir: Path = emu.STATE_DIR) -> Report | None:
    """Restore the snapshot the last ``stack down`` took into the freshly deployed stack; None if there is none."""
    pointer = state_dir / LAST_SNAPSHOT.name
    if not pointer.is_file():
        return None
    try:
        folder = Path(json.loads(pointer.read_text())["folder"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{pointer} is unreadable ({exc}); delete it to start from an empty stack") from exc
    if not folder.is_dir():
        raise BackupError(f"{pointer} names {folder}, which is gone; delete {pointer} to start from an empty stack")
    return restore(StackState.of_local(stack), folder)


# ---------------------------------------------------------------- command line
def _state_for(args: argparse.Namespace) -> StackState:
    if getattr(args, "aws_stack", None):
        return StackState.of_cloudformation(args.aws_stack)
    from infra.stack import LocalStack

    stack = LocalStack.load()
    if not emu.is_reachable(stack.endpoint):
        raise BackupError(f"the emulator at {stack.endpoint} does not answer: run `nbaml stack up` first")
    return StackState.of_local(stack)


def _backup_cli(args: argparse.Namespace) -> int:
    if args.with_secrets != bool(args.secrets_passphrase_file):
        raise BackupError("--with-secrets and --secrets-passphrase-file FILE go together (the values are encrypted)")
    passphrase = read_passphrase(args.secrets_passphrase_file) if args.with_secrets else None
    state = _state_for(args)
    folder = Path(args.to) if args.to else BACKUPS_DIR / _stamp()
    report = backup(state, folder, secrets_passphrase=passphrase)
    if not args.no_mirror:
        report.mirrored = mirror_bundles(folder, MODELS_DIR)
    print(report.summary())
    return 0


def _restore_cli(args: argparse.Namespace) -> int:
    passphrase = read_passphrase(args.secrets_passphrase_file) if args.secrets_passphrase_file else None
    report = restore(_state_for(args), Path(args.source), force=args.force, secrets_passphrase=passphrase)
    print(report.summary())
    return 0


def register(subparsers: Any) -> None:
    backup_parser = subparsers.add_parser(
        "backup",
        help="copy the stack's whole state (bucket, tables, SSM history) to a folder; mirror bundles to models/",
    )
    backup_parser.add_argument("--to", help="a new or empty folder (default: models/backups/<UTC timestamp>/)")
    backup_parser.add_argument("--no-mirror", action="store_true", help="do not copy the bundles to models/{version}/")
    backup_parser.add_argument(
        "--with-secrets",
        action="store_true",
        help="also back up the SecureStrings' values (admin token, feed key), encrypted; off by default",
    )
    backup_parser.add_argument(
        "--secrets-passphrase-file",
        metavar="FILE",
        help="with --with-secrets: a file (mode 0600) whose first line is the passphrase, 16 characters or more",
    )
    backup_parser.add_argument(
        "--aws-stack",
        metavar="NAME",
        help="back up a CloudFormation stack (boto3's default session), not the local one",
    )
    backup_parser.set_defaults(func=_backup_cli)
    restore_parser = subparsers.add_parser("restore", help="write a backup folder into the running stack")
    restore_parser.add_argument("--from", dest="source", required=True, help="the backup folder (with manifest.json)")
    restore_parser.add_argument("--force", action="store_true", help="restore even though the stack holds data")
    restore_parser.add_argument(
        "--secrets-passphrase-file", metavar="FILE", help="the passphrase of a backup taken --with-secrets"
    )
    restore_parser.add_argument(
        "--aws-stack", metavar="NAME", help="restore into a CloudFormation stack with boto3's default session"
    )
    restore_parser.set_defaults(func=_restore_cli)


# ---------------------------------------------------------------- helpers
def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value or "")


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _write_lines(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _json_safe(value: Any) -> Any:
    """DynamoDB JSON (``{"S": ...}``, ``{"N": ...}``) as plain JSON: binary values become base64 text.

    Numbers stay the strings DynamoDB sends, so no precision is lost on the way through a float.
    """
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _from_json_safe(item: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``_json_safe`` on an item: base64 back to bytes under every ``B`` and ``BS``."""

    def attribute(av: dict[str, Any]) -> dict[str, Any]:
        ((kind, value),) = av.items()
        if kind == "B":
            return {"B": base64.b64decode(value)}
        if kind == "BS":
            return {"BS": [base64.b64decode(v) for v in value]}
        if kind == "M":
            return {"M": {k: attribute(v) for k, v in value.items()}}
        if kind == "L":
            return {"L": [attribute(v) for v in value]}
        return {kind: value}

    return {name: attribute(av) for name, av in item.items()}
