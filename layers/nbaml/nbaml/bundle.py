"""The model bundle: the files under ``models/{version}/`` and the checks that stand between S3 and serving.

A bundle is data only. ``model.json`` is XGBoost's own JSON format, evaluated by ``nbaml.forest`` without
xgboost; ``scaler.json`` holds the seed's StandardScaler as two lists of numbers; nothing is ever unpickled, so
a file planted in the bucket can at worst be refused, never run. Every file is listed in ``manifest.json`` with
its SHA-256 and size, and ``ModelBundle.from_files`` refuses a bundle before anything is parsed if one byte
differs, a file is missing or an unlisted file sits beside them.

Why keep a scaler in front of a tree model at all: the seed asks for it, and it costs nothing in accuracy,
since a tree only compares a feature with thresholds and a per-feature affine map with a positive scale keeps
the order of values; the tests show XGBoost trained on scaled and unscaled features predicts the same. One
caveat, measured: XGBoost stores features as float32 (about 7.6e-6 of resolution at 110 points), so two games
whose raw values differ by less than that merge in one space and not the other, and with row subsampling the
trees can then drift apart (0.07 in probability seen after 168 trees); with values recorded to a thousandth
the two fits are identical.

This module imports only the standard library (the predict Lambda may not import numpy, xgboost or sklearn).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nbaml.errors import BundleIntegrityError
from nbaml.features import elo_probability
from nbaml.forest import Forest
from nbaml.layout import (
    BUNDLE_FILES,
    CALIBRATION_FILE,
    FEATURES_FILE,
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    OPTIONAL_BUNDLE_FILES,
    SCALER_FILE,
)

_PICKLE_PROTOCOL_OPCODE = b"\x80"
_TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
# v1, v<n> (n < 10**6, no leading zero) or vYYYYMMDD_HHMMSS: the one spelling of a version, also the API's
# path and body pattern (anchored there, since OpenAPI patterns are searched, not matched).
VERSION_PATTERN = r"v(?:[1-9][0-9]{0,5}|[0-9]{8}_[0-9]{6})"
_VERSION_PATTERN = re.compile(VERSION_PATTERN)


def sha256(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes, as written in the manifest."""
    return hashlib.sha256(data).hexdigest()


def _dumps(obj: Any) -> bytes:
    """Canonical JSON: sorted keys and fixed separators make the same bundle the same bytes (and checksums)."""
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------------- versions


def first_version() -> str:
    """The version of the very first model, before any retrain."""
    return "v1"


def timestamp_version(now: datetime) -> str:
    """``vYYYYMMDD_HHMMSS`` in UTC; a naive datetime is refused, since it would depend on the machine's zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("timestamp_version needs a timezone-aware datetime (e.g. datetime.now(UTC))")
    return "v" + now.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def is_valid_version(version: object) -> bool:
    """True for ``v1``, ``v<n>`` (n < 10**6, no leading zero) or ``vYYYYMMDD_HHMMSS`` naming a real instant.

    Versions become S3 keys and SSM values; checking them before they get there keeps ``../``, slashes,
    whitespace and other surprises out of the bucket.
    """
    if not isinstance(version, str) or not _VERSION_PATTERN.fullmatch(version):
        return False
    if "_" in version:
        try:
            datetime.strptime(version[1:], _TIMESTAMP_FORMAT)  # only the calendar is checked
        except ValueError:
            return False
    return True


def _require_version(version: object) -> str:
    if not is_valid_version(version):
        raise ValueError(f"invalid model version {version!r}: expected v1, v<n> or vYYYYMMDD_HHMMSS")
    return str(version)


# ------------------------------------------------------------------------------------------------------ scaler


@dataclass(frozen=True, slots=True)
class StandardScalerParams:
    """The two vectors of a fitted StandardScaler, applied in pure Python as ``(x - mean) / scale``."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in self.mean)
        scale = tuple(float(v) for v in self.scale)
        if len(mean) != len(scale) or not mean:
            raise ValueError(f"scaler mean and scale must be non-empty and equal in length ({len(mean)}, {len(scale)})")
        if not all(math.isfinite(v) for v in mean):
            raise ValueError("scaler mean holds a non-finite value")
        if not all(math.isfinite(v) and v > 0 for v in scale):
            raise ValueError("scaler scale must be finite and positive (sklearn uses 1.0 for constant features)")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "scale", scale)

    def __len__(self) -> int:
        return len(self.mean)

    @classmethod
    def identity(cls, n_features: int) -> StandardScalerParams:
        """A scaler that changes nothing, for models trained on raw features."""
        return cls(mean=(0.0,) * n_features, scale=(1.0,) * n_features)

    @classmethod
    def from_sklearn(cls, scaler: Any) -> StandardScalerParams:
        """Read a fitted ``sklearn.preprocessing.StandardScaler`` by duck typing, so sklearn is never imported here.

        sklearn keeps ``mean_`` even when ``with_mean=False`` but does not use it, and sets ``scale_`` to None when
        ``with_std=False``; both are mapped to what ``transform`` actually does.
        """
        mean_attr = getattr(scaler, "mean_", None)
        scale_attr = getattr(scaler, "scale_", None)
        n_features = getattr(scaler, "n_features_in_", None)
        if n_features is None:
            raise ValueError("the scaler is not fitted (no n_features_in_)")
        n = int(n_features)
        mean = [float(v) for v in mean_attr] if mean_attr is not None and getattr(scaler, "with_mean", True) else []
        scale = [float(v) for v in scale_attr] if scale_attr is not None and getattr(scaler, "with_std", True) else []
        return cls(mean=tuple(mean or [0.0] * n), scale=tuple(scale or [1.0] * n))

    def transform(self, row: Sequence[float | None]) -> list[float]:
        """Scale one row; a missing value (None or NaN) stays NaN so the trees still send it the default way."""
        if len(row) != len(self.mean):
            raise ValueError(f"row has {len(row)} features, scaler expects {len(self.mean)}")
        try:  # the serving path: a row of floats (NaN for missing), as the feature builder writes it
            return [(v - m) / s for v, m, s in zip(row, self.mean, self.scale, strict=True)]
        except TypeError:  # None for missing, or numbers in another form
            return [
                math.nan if v is None else (float(v) - m) / s
                for v, m, s in zip(row, self.mean, self.scale, strict=True)
            ]

    def to_json(self) -> bytes:
        """Canonical bytes of ``scaler.json``; Python's float repr round-trips every float64 exactly."""
        return _dumps({"mean": list(self.mean), "scale": list(self.scale)})

    @classmethod
    def from_json(cls, data: bytes | str) -> StandardScalerParams:
        """Parse ``scaler.json``; raises ValueError when it is not exactly two equal lists of numbers."""
        doc = json.loads(data)
        if not isinstance(doc, dict) or set(doc) != {"mean", "scale"}:
            raise ValueError("expected an object with exactly the keys 'mean' and 'scale'")
        mean, scale = doc["mean"], doc["scale"]
        for name, values in (("mean", mean), ("scale", scale)):
            if not isinstance(values, list) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                raise ValueError(f"'{name}' must be a list of numbers")
        return cls(mean=tuple(mean), scale=tuple(scale))


# ------------------------------------------------------------------------------------------------- calibration


ELO_FEATURE = "elo_diff"  # the feature the calibrator's Elo term reads (raw, before the scaler)


def _logit(p: float) -> float:
    q = min(max(p, 1e-7), 1.0 - 1.0e-7)
    return math.log(q / (1.0 - q))


@dataclass(frozen=True, slots=True)
class PlattCalibration:
    """Platt scaling after the trees, with an optional Elo term: three numbers in calibration.json.

    ``p' = 1 / (1 + exp(-(a * logit(p) + elo * logit(p_elo) + b)))``, where ``p_elo`` is Elo's own probability
    of the game (``nbaml.features.elo_probability`` of the row's raw ``elo_diff``). Fitted on predictions the
    trees made of games they never saw (the search's last time-ordered folds), it corrects a forest's over-
    or under-confidence on new games, and the Elo term lets it lean on Elo's smooth curve where a forest of
    a few thousand games only approximates it in steps (``elo`` is 0 when that did not help). ``a`` must be
    positive, so a calibrator never reverses the forest's order; probabilities are clipped to
    [1e-7, 1 - 1e-7] before the logit.
    """

    a: float
    b: float
    elo: float = 0.0

    def __post_init__(self) -> None:
        a, b, elo = float(self.a), float(self.b), float(self.elo)
        if not all(math.isfinite(x) for x in (a, b, elo)) or a <= 0:
            raise ValueError(f"a calibrator needs finite a > 0, b and elo, got a={a!r}, b={b!r}, elo={elo!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "elo", elo)

    def apply(self, p: float, elo_diff: float | None = None) -> float:
        z = self.a * _logit(p) + self.b
        if self.elo:
            if elo_diff is None:
                raise ValueError("this calibrator has an Elo term: it needs the row's elo_diff")
            z += self.elo * _logit(elo_probability(elo_diff))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"method": "platt", "a": self.a, "b": self.b}
        if self.elo:
            doc["elo"] = self.elo
        return _dumps(doc)

    @classmethod
    def from_json(cls, data: bytes) -> PlattCalibration:
        doc = json.loads(data)
        if (
            not isinstance(doc, dict)
            or doc.get("method") != "platt"
            or not {"method", "a", "b"}
            <= set(doc)
            <= {
                "method",
                "a",
                "b",
                "elo",
            }
        ):
            raise ValueError('expected {"method": "platt", "a": number, "b": number[, "elo": number]}')
        numbers = [k for k in ("a", "b", "elo") if k in doc]
        if not all(isinstance(doc[k], int | float) and not isinstance(doc[k], bool) for k in numbers):
            raise ValueError("a, b and elo must be numbers")
        return cls(a=doc["a"], b=doc["b"], elo=doc.get("elo", 0.0))


# ------------------------------------------------------------------------------------------------------ bundle


def _utc_now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_feature_names(names: Sequence[str]) -> list[str]:
    """A name per line in features.txt (a tab starts its description): empty, padded, multi-line, tabbed or
    repeated names would corrupt it."""
    result = [str(n) for n in names]
    if not result:
        raise ValueError("no feature names")
    for name in result:
        if not name or name != name.strip() or any(ch in name for ch in "\n\r\t"):
            raise ValueError(f"feature name {name!r} is empty, padded, spans lines or holds a tab")
    if len(set(result)) != len(result):
        raise ValueError("feature names repeat")
    return result


@dataclass(frozen=True)
class ModelBundle:
    """One model version as served: the XGBoost JSON, the scaler in front of it, the feature order, metadata.

    Build it after training and write ``to_files()``; read it back with ``from_files``, which is the only way
    bytes from storage become a bundle. ``created_at`` is part of the manifest; it defaults to now (UTC).
    """

    version: str
    model_json: bytes
    scaler: StandardScalerParams
    feature_names: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=_utc_now_iso)
    calibration: PlattCalibration | None = None
    _forest: Forest | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _require_version(self.version)
        if not isinstance(self.model_json, bytes):
            raise TypeError("model_json must be bytes (the file XGBoost's save_model wrote)")
        names = _check_feature_names(self.feature_names)
        if len(names) != len(self.scaler):
            raise ValueError(f"{len(names)} feature names but the scaler has {len(self.scaler)} columns")
        if not isinstance(self.metadata, dict):
            raise TypeError("metadata must be a dict")
        object.__setattr__(self, "feature_names", names)

    def forest(self) -> Forest:
        """The evaluator of ``model.json``, parsed once per bundle (the predict Lambda keeps bundles warm)."""
        if self._forest is None:
            self._attach(Forest.from_json(self.model_json))
        assert self._forest is not None
        return self._forest

    def _attach(self, forest: Forest) -> None:
        """Cache the evaluator after checking it reads the features this bundle names, in the same order."""
        if forest.num_feature != len(self.feature_names):
            raise ValueError(
                f"the model expects {forest.num_feature} features but {FEATURES_FILE} names {len(self.feature_names)}"
            )
        if forest.feature_names and list(forest.feature_names) != self.feature_names:
            raise ValueError(f"the model's own feature names differ from the order in {FEATURES_FILE}")
        object.__setattr__(self, "_forest", forest)

    def predict_proba(self, features_in_order: Sequence[float | None]) -> float:
        """Probability of class 1 (the home team wins) for features in ``feature_names`` order, raw (unscaled).

        The forest's probability, then the bundle's calibrator when it has one.
        """
        p = self.forest().predict_proba_floats(self.scaler.transform(features_in_order))
        return p if self.calibration is None else self.calibration.apply(p, self._elo_of(features_in_order))

    def predict_many(self, rows: Sequence[Sequence[float | None]]) -> list[float]:
        """``predict_proba`` over several rows."""
        forest, calibration = self.forest(), self.calibration
        raw = [forest.predict_proba_floats(self.scaler.transform(row)) for row in rows]
        if calibration is None:
            return raw
        return [calibration.apply(p, self._elo_of(row)) for p, row in zip(raw, rows, strict=True)]

    def _elo_of(self, row: Sequence[float | None]) -> float | None:
        """The row's raw elo_diff, which the calibrator's Elo term reads (None if the model has no such feature)."""
        if ELO_FEATURE not in self.feature_names:
            return None
        value = row[self.feature_names.index(ELO_FEATURE)]
        return 0.0 if value is None else float(value)

    def to_files(self) -> dict[str, bytes]:
        """Every file of ``models/{version}/``, manifest included; the same bundle always gives the same bytes.

        The model is parsed first, so a bundle that ``from_files`` would refuse is never written.
        """
        self.forest()
        try:
            metadata = _dumps(self.metadata)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be plain JSON (str, finite numbers, lists, dicts): {exc}") from exc
        files = {
            MODEL_FILE: self.model_json,
            SCALER_FILE: self.scaler.to_json(),
            FEATURES_FILE: _features_text(self.feature_names, self.metadata.get("feature_descriptions")),
            METADATA_FILE: metadata,
        }
        if self.calibration is not None:
            files[CALIBRATION_FILE] = self.calibration.to_json()
        manifest = {
            "version": self.version,
            "created_at": self.created_at,
            "files": {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in files.items()},
        }
        files[MANIFEST_FILE] = _dumps(manifest)
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], *, expected_version: str | None = None) -> ModelBundle:
        """Verify and load a bundle; raises BundleIntegrityError naming the file and the fault.

        Checks run before parsing: the manifest lists exactly the bundle's files, each present with its size and
        SHA-256. Then each file must parse as what it claims to be. A checksum only proves the files agree with
        the manifest, not that the manifest is honest (whoever can write one can write both), so ``model.json``
        is still only ever parsed as JSON: a pickle is refused as data, never loaded. ``expected_version`` is
        the version the caller asked for (the S3 prefix), which the manifest must repeat.
        """
        manifest = _read_manifest(files)
        version = manifest["version"]
        if expected_version is not None and version != expected_version:
            raise BundleIntegrityError(f"{MANIFEST_FILE}: version {version!r} but {expected_version!r} was asked for")
        _verify_listing(files, manifest["files"])

        model_json = bytes(files[MODEL_FILE])
        model_doc = _parse_model(model_json)
        try:
            scaler = StandardScalerParams.from_json(files[SCALER_FILE])
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise BundleIntegrityError(f"{SCALER_FILE}: {exc}") from exc
        names = _read_feature_names(files[FEATURES_FILE])
        if len(names) != len(scaler):
            raise BundleIntegrityError(f"{FEATURES_FILE}: {len(names)} names but {SCALER_FILE} has {len(scaler)}")
        metadata = _read_metadata(files[METADATA_FILE])
        calibration = None
        if CALIBRATION_FILE in manifest["files"]:
            try:
                calibration = PlattCalibration.from_json(files[CALIBRATION_FILE])
            except ValueError as exc:
                raise BundleIntegrityError(f"{CALIBRATION_FILE}: {exc}") from exc
            if calibration.elo and ELO_FEATURE not in names:
                raise BundleIntegrityError(f"{CALIBRATION_FILE}: an Elo term, but {FEATURES_FILE} has no {ELO_FEATURE}")

        bundle = cls(
            version=version,
            model_json=model_json,
            scaler=scaler,
            feature_names=names,
            metadata=metadata,
            created_at=manifest["created_at"],
            calibration=calibration,
        )
        try:
            forest = Forest.from_dict(model_doc)
        except ValueError as exc:
            raise BundleIntegrityError(f"{MODEL_FILE}: {exc}") from exc
        try:
            bundle._attach(forest)
        except ValueError as exc:
            raise BundleIntegrityError(f"{FEATURES_FILE}: does not match {MODEL_FILE}: {exc}") from exc
        return bundle


def _verify_listing(files: Mapping[str, bytes], listed: dict[str, Any]) -> None:
    """The manifest lists exactly the bundle's files, and each is there with its size and SHA-256."""
    extra = sorted(set(files) - {MANIFEST_FILE} - set(listed))
    if extra:
        raise BundleIntegrityError(f"{', '.join(extra)}: extra file not listed in {MANIFEST_FILE}")
    unknown = sorted(set(listed) - set(BUNDLE_FILES) - set(OPTIONAL_BUNDLE_FILES))
    if unknown:
        raise BundleIntegrityError(f"{', '.join(unknown)}: listed in {MANIFEST_FILE} but not a bundle file")
    for name in BUNDLE_FILES:
        if name not in listed:
            raise BundleIntegrityError(f"{name}: required but not listed in {MANIFEST_FILE}")
    for name in sorted(listed):
        if name not in files:
            raise BundleIntegrityError(f"{name}: missing")
        _verify_checksum(name, files[name], listed[name])


def _features_text(names: Sequence[str], descriptions: Any) -> bytes:
    """features.txt: a name per line in the model's order, then a tab and what the feature is (when known)."""
    described = descriptions if isinstance(descriptions, dict) else {}
    lines = [f"{name}\t{described[name]}" if described.get(name) else name for name in names]
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _read_metadata(data: bytes) -> dict[str, Any]:
    try:
        metadata = json.loads(data)
    except ValueError as exc:
        raise BundleIntegrityError(f"{METADATA_FILE}: not JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise BundleIntegrityError(f"{METADATA_FILE}: expected a JSON object")
    return metadata


def _read_manifest(files: Mapping[str, bytes]) -> dict[str, Any]:
    if MANIFEST_FILE not in files:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: missing")
    try:
        manifest = json.loads(files[MANIFEST_FILE])
    except ValueError as exc:
        raise BundleIntegrityError(f"{MANIFEST_FILE}: not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise BundleIntegrityError(f"{MANIFEST_FILE}: expected an object with a 'files' object")
    if not is_valid_version(manifest.get("version")):
        raise BundleIntegrityError(f"{MANIFEST_FILE}: invalid version {manifest.get('version')!r}")
    if not isinstance(manifest.get("created_at"), str):
        raise BundleIntegrityError(f"{MANIFEST_FILE}: created_at missing or not a string")
    return manifest


def _verify_checksum(name: str, data: bytes, entry: Any) -> None:
    if (
        not isinstance(entry, dict)
        or not isinstance(entry.get("sha256"), str)
        or not isinstance(entry.get("bytes"), int)
    ):
        raise BundleIntegrityError(f"{name}: manifest entry must hold 'sha256' and 'bytes'")
    if len(data) != entry["bytes"]:
        raise BundleIntegrityError(f"{name}: size {len(data)} bytes, manifest says {entry['bytes']}")
    actual = sha256(data)
    if actual != entry["sha256"].lower():
        raise BundleIntegrityError(f"{name}: SHA-256 {actual} does not match the manifest's {entry['sha256']}")


def _parse_model(data: bytes) -> Any:
    """Refuse anything but UTF-8 JSON before the evaluator sees it, naming a pickle as such for the operator."""
    if data.startswith(_PICKLE_PROTOCOL_OPCODE):
        raise BundleIntegrityError(f"{MODEL_FILE}: starts with a pickle protocol opcode; pickles are never loaded")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleIntegrityError(f"{MODEL_FILE}: not UTF-8 text, so not XGBoost JSON") from exc
    except ValueError as exc:
        raise BundleIntegrityError(f"{MODEL_FILE}: not valid JSON ({exc})") from exc


def _read_feature_names(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleIntegrityError(f"{FEATURES_FILE}: not UTF-8 text") from exc
    lines = [line.split("\t", 1)[0] for line in text.splitlines()]  # a name, then what it is
    try:
        return _check_feature_names(lines)
    except ValueError as exc:
        raise BundleIntegrityError(f"{FEATURES_FILE}: {exc}") from exc
