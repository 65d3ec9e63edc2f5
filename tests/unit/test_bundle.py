"""Code tests of the model bundle: round trip, determinism, and every way a bundle in S3 can be wrong or hostile."""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from nbaml.bundle import (
    ModelBundle,
    StandardScalerParams,
    first_version,
    is_valid_version,
    sha256,
    timestamp_version,
)
from nbaml.errors import BundleIntegrityError
from nbaml.layout import BUNDLE_FILES, FEATURES_FILE, MANIFEST_FILE, METADATA_FILE, MODEL_FILE, SCALER_FILE

np = pytest.importorskip("numpy")
xgb = pytest.importorskip("xgboost")
preprocessing = pytest.importorskip("sklearn.preprocessing")

N_FEATURES = 5
NAMES = [f"feature_{i}" for i in range(N_FEATURES)]
CREATED_AT = "2024-10-22T03:00:00Z"


def _data(seed: int, n_rows: int = 600, missing_rate: float = 0.05):
    """Features on the scales of real ones (win %, points, ratings), so the scaler has something to do."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=[0.5, 110.0, 108.0, 2.0, 1.5], scale=[0.15, 6.0, 5.0, 1.5, 1.0], size=(n_rows, N_FEATURES))
    logit = 8 * (x[:, 0] - 0.5) + (x[:, 1] - x[:, 2]) / 4 + rng.normal(scale=0.8, size=n_rows)
    if missing_rate:
        x[rng.random(x.shape) < missing_rate] = np.nan
    return x, (logit > 0).astype(int)


def _classifier(seed: int = 0, **params):
    """Row and column sampling on purpose: the scaled-vs-raw test must hold with the seed's randomness too."""
    settings = {"n_estimators": 60, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.8, "colsample_bytree": 0.8}
    return xgb.XGBClassifier(tree_method="hist", random_state=seed, n_jobs=1, **(settings | params))


@pytest.fixture(scope="module")
def trained():
    """A scaler and a classifier fitted on scaled features, as retrain does."""
    x, y = _data(seed=0)
    scaler = preprocessing.StandardScaler().fit(x)
    model = _classifier().fit(scaler.transform(x), y)
    return scaler, model


@pytest.fixture
def bundle(trained) -> ModelBundle:
    scaler, model = trained
    return ModelBundle(
        version="v20241022_030000",
        model_json=bytes(model.get_booster().save_raw("json")),
        scaler=StandardScalerParams.from_sklearn(scaler),
        feature_names=list(NAMES),
        metadata={"metrics": {"accuracy": 0.66, "log_loss": 0.61}, "seed": 0, "params": {"max_depth": 3}},
        created_at=CREATED_AT,
    )


def _forge(files: dict[str, bytes], name: str, data: bytes | None) -> dict[str, bytes]:
    """What an attacker with write access does: replace (or add) a file and rewrite the manifest to match."""
    forged = dict(files)
    manifest = json.loads(forged[MANIFEST_FILE])
    if data is None:
        forged.pop(name)
        manifest["files"].pop(name)
    else:
        forged[name] = data
        manifest["files"][name] = {"sha256": sha256(data), "bytes": len(data)}
    forged[MANIFEST_FILE] = json.dumps(manifest).encode()
    return forged


# -------------------------------------------------------------------------------------------------- round trip


def test_given_bundle_when_written_and_read_back_then_equal_and_predicting_the_same(bundle):
    # Given a bundle's files
    files = bundle.to_files()
    # When read back
    loaded = ModelBundle.from_files(files, expected_version=bundle.version)
    # Then nothing was lost, and it predicts exactly as the original
    assert loaded == bundle
    assert set(files) == {*BUNDLE_FILES, MANIFEST_FILE}
    rows = _data(seed=1, n_rows=50)[0].tolist()
    assert loaded.predict_many(rows) == bundle.predict_many(rows)


def test_given_bundle_when_written_twice_then_byte_identical_whatever_the_metadata_key_order(bundle):
    # Given the same bundle built again with metadata keys in another order
    reordered = ModelBundle(
        version=bundle.version,
        model_json=bundle.model_json,
        scaler=bundle.scaler,
        feature_names=list(bundle.feature_names),
        metadata=dict(reversed(list(bundle.metadata.items()))),
        created_at=bundle.created_at,
    )
    # When both are written
    # Then the bytes, and so the checksums, are identical
    assert bundle.to_files() == bundle.to_files() == reordered.to_files()


def test_given_bundle_when_written_then_manifest_lists_every_file_with_its_checksum_and_size(bundle):
    files = bundle.to_files()
    manifest = json.loads(files[MANIFEST_FILE])
    assert manifest["version"] == bundle.version
    assert manifest["created_at"] == CREATED_AT
    assert manifest["files"] == {
        name: {"sha256": sha256(files[name]), "bytes": len(files[name])} for name in BUNDLE_FILES
    }
    assert files[FEATURES_FILE].decode().splitlines() == NAMES
    assert files[MODEL_FILE] == bundle.model_json


def test_given_a_bundle_when_predicting_raw_features_then_equal_to_xgboost_on_scaled_features(bundle, trained):
    # Given raw (unscaled) features with missing values
    scaler, model = trained
    x, _ = _data(seed=2, n_rows=300, missing_rate=0.1)
    # When the bundle predicts
    ours = np.array([bundle.predict_proba(row) for row in x.tolist()])
    # Then it applied the scaler before the trees, as training did
    assert np.abs(ours - model.predict_proba(scaler.transform(x))[:, 1]).max() < 1e-6
    unscaled = np.array([bundle.forest().predict_proba(row) for row in x.tolist()])
    assert np.abs(ours - unscaled).max() > 1e-3


def test_given_bundle_when_forest_asked_twice_then_parsed_once(bundle):
    assert bundle.forest() is bundle.forest()


# ------------------------------------------------------------------------------------------- integrity checks


@pytest.mark.parametrize("name", BUNDLE_FILES)
def test_given_one_byte_changed_in_a_file_when_loaded_then_refused_naming_it(bundle, name):
    # Given a bundle where one byte of a file changed after the manifest was written
    files = bundle.to_files()
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)
    # When loaded, Then refused, naming the file and its checksum
    with pytest.raises(BundleIntegrityError, match=rf"^{name}: SHA-256"):
        ModelBundle.from_files(files)


def test_given_a_file_grown_by_a_byte_when_loaded_then_refused_on_size(bundle):
    files = bundle.to_files()
    files[MODEL_FILE] += b" "
    with pytest.raises(BundleIntegrityError, match=rf"^{MODEL_FILE}: size"):
        ModelBundle.from_files(files)


class _Payload:
    """A pickle that, if ever unpickled, creates a marker file: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_given_a_pickle_planted_as_model_json_with_a_forged_manifest_when_loaded_then_refused_and_never_run(
    bundle, tmp_path, protocol
):
    # Given a pickle whose payload demonstrably runs when unpickled
    proof = tmp_path / "proof-the-payload-works"
    pickle.loads(pickle.dumps(_Payload(str(proof)), protocol=protocol))
    assert proof.exists()
    # ... planted as model.json by someone who also rewrote the manifest's checksum
    marker = tmp_path / "payload-ran"
    files = _forge(bundle.to_files(), MODEL_FILE, pickle.dumps(_Payload(str(marker)), protocol=protocol))
    # When loaded
    with pytest.raises(BundleIntegrityError, match=rf"^{MODEL_FILE}: "):
        ModelBundle.from_files(files)
    # Then it was refused as data, and its payload never ran
    assert not marker.exists()


@pytest.mark.parametrize("name", [*BUNDLE_FILES, MANIFEST_FILE])
def test_given_a_file_missing_when_loaded_then_refused_naming_it(bundle, name):
    files = bundle.to_files()
    del files[name]
    with pytest.raises(BundleIntegrityError, match=rf"^{name}: missing"):
        ModelBundle.from_files(files)


def test_given_a_required_file_dropped_from_files_and_manifest_when_loaded_then_refused(bundle):
    files = _forge(bundle.to_files(), SCALER_FILE, None)
    with pytest.raises(BundleIntegrityError, match=rf"^{SCALER_FILE}: required but not listed"):
        ModelBundle.from_files(files)


def test_given_an_extra_unlisted_file_when_loaded_then_refused_naming_it(bundle):
    files = bundle.to_files()
    files["model.pkl"] = b"anything"
    with pytest.raises(BundleIntegrityError, match=r"^model.pkl: extra file not listed"):
        ModelBundle.from_files(files)


def test_given_an_extra_file_listed_in_a_forged_manifest_when_loaded_then_refused(bundle):
    files = _forge(bundle.to_files(), "loader.py", b"print('hi')\n")
    with pytest.raises(BundleIntegrityError, match=r"^loader.py: listed in manifest.json but not a bundle file"):
        ModelBundle.from_files(files)


def test_given_features_one_shorter_than_the_scaler_when_loaded_then_refused(bundle):
    files = _forge(bundle.to_files(), FEATURES_FILE, "".join(f"{n}\n" for n in NAMES[:-1]).encode())
    with pytest.raises(BundleIntegrityError, match=rf"^{FEATURES_FILE}: 4 names but {SCALER_FILE} has 5"):
        ModelBundle.from_files(files)


def test_given_scaler_and_features_shorter_than_the_model_when_loaded_then_refused(bundle):
    # Given features.txt and scaler.json agreeing on 4 features while the model reads 5
    files = bundle.to_files()
    files = _forge(files, FEATURES_FILE, "".join(f"{n}\n" for n in NAMES[:-1]).encode())
    short = StandardScalerParams(mean=bundle.scaler.mean[:-1], scale=bundle.scaler.scale[:-1])
    files = _forge(files, SCALER_FILE, short.to_json())
    # When loaded, Then refused
    with pytest.raises(BundleIntegrityError, match=rf"^{FEATURES_FILE}: does not match {MODEL_FILE}: .* 5 features"):
        ModelBundle.from_files(files)


def test_given_mismatched_lengths_when_building_a_bundle_then_value_error(bundle):
    with pytest.raises(ValueError, match="4 feature names but the scaler has 5"):
        ModelBundle(version="v1", model_json=bundle.model_json, scaler=bundle.scaler, feature_names=NAMES[:-1])


def test_given_a_model_reading_another_number_of_features_when_writing_then_refused(bundle):
    # Given a bundle whose names and scaler say 4 features while the model reads 5
    short = ModelBundle(
        version="v2",
        model_json=bundle.model_json,
        scaler=StandardScalerParams.identity(4),
        feature_names=NAMES[:-1],
    )
    # When written, Then refused before anything reaches storage
    with pytest.raises(ValueError, match="expects 5 features"):
        short.to_files()


def test_given_a_multiclass_model_with_a_forged_manifest_when_loaded_then_refused(bundle):
    x, _ = _data(seed=3)
    labels = np.random.default_rng(0).integers(0, 3, len(x))
    other = bytes(xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(x, labels).get_booster().save_raw("json"))
    with pytest.raises(BundleIntegrityError, match=rf"^{MODEL_FILE}: objective 'multi:softprob'"):
        ModelBundle.from_files(_forge(bundle.to_files(), MODEL_FILE, other))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (MODEL_FILE, b"\xff\xfe", "not UTF-8"),
        (MODEL_FILE, b'{"learner": ', "not valid JSON"),
        (SCALER_FILE, b'{"mean": [0, 1, 2, 3, 4], "scale": [1, 1, 1, 1, 0]}', "positive"),
        (SCALER_FILE, b'{"mean": [0, 1, 2, 3, NaN], "scale": [1, 1, 1, 1, 1]}', "non-finite"),
        (FEATURES_FILE, b"a\nb\nc\nd\na\n", "repeat"),
        (FEATURES_FILE, b"a\nb\n\nd\ne\n", "empty"),
        (METADATA_FILE, b"[1, 2]", "JSON object"),
    ],
)
def test_given_a_malformed_file_with_a_forged_manifest_when_loaded_then_refused_naming_it(bundle, name, data, message):
    with pytest.raises(BundleIntegrityError, match=rf"^{name}: .*{message}"):
        ModelBundle.from_files(_forge(bundle.to_files(), name, data))


@pytest.mark.parametrize("version", ["v0", "../v1", "v1/../../x", "latest"])
def test_given_a_manifest_with_a_bad_version_when_loaded_then_refused(bundle, version):
    files = bundle.to_files()
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["version"] = version
    files[MANIFEST_FILE] = json.dumps(manifest).encode()
    with pytest.raises(BundleIntegrityError, match=rf"^{MANIFEST_FILE}: invalid version"):
        ModelBundle.from_files(files)


def test_given_a_bundle_of_another_version_when_loaded_as_this_one_then_refused(bundle):
    with pytest.raises(BundleIntegrityError, match="was asked for"):
        ModelBundle.from_files(bundle.to_files(), expected_version="v2")


def test_given_metadata_that_is_not_plain_json_when_writing_then_value_error(bundle):
    odd = ModelBundle(
        version="v1", model_json=bundle.model_json, scaler=bundle.scaler, feature_names=NAMES, metadata={"x": {1, 2}}
    )
    with pytest.raises(ValueError, match="metadata must be plain JSON"):
        odd.to_files()


# ------------------------------------------------------------------------------------------------------ scaler


def _distinct_float32(column) -> int:
    return len(np.unique(column[~np.isnan(column)].astype(np.float32)))


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_given_trees_trained_on_scaled_or_raw_features_when_predicting_matching_inputs_then_identical(seed):
    # Given the same classifier and seed (with row and column sampling) fitted on raw and on standard-scaled
    # features, recorded to a thousandth as box scores are
    x, y = _data(seed=seed, n_rows=2000, missing_rate=0.05)
    x = np.round(x, 3)
    scaler = preprocessing.StandardScaler().fit(x)
    x_scaled = scaler.transform(x)
    # (XGBoost stores features as float32: the claim needs distinct values to stay distinct in both spaces; at
    # 110 points float32 resolves 7.6e-6, so values recorded to full float64 precision can merge in one space only)
    assert all(_distinct_float32(x[:, j]) == _distinct_float32(x_scaled[:, j]) for j in range(N_FEATURES))
    on_raw = _classifier(seed=seed, n_estimators=200, max_depth=4).fit(x, y)
    on_scaled = _classifier(seed=seed, n_estimators=200, max_depth=4).fit(x_scaled, y)
    # When each predicts new games given in its own space
    x_new = np.round(_data(seed=seed + 100, n_rows=1000, missing_rate=0.05)[0], 3)
    raw = on_raw.predict_proba(x_new)[:, 1]
    scaled = on_scaled.predict_proba(scaler.transform(x_new))[:, 1]
    # Then the predictions are the same: a positive affine map keeps every split, so the scaler costs nothing
    assert np.abs(raw - scaled).max() < 1e-6


def test_given_a_fitted_sklearn_scaler_when_read_then_transform_equals_sklearn():
    x, _ = _data(seed=6, n_rows=200, missing_rate=0.1)
    fitted = preprocessing.StandardScaler().fit(x)
    params = StandardScalerParams.from_sklearn(fitted)
    ours = np.array([params.transform(row) for row in x.tolist()])
    np.testing.assert_array_equal(ours, fitted.transform(x))  # NaN stays NaN, the rest bit for bit


@pytest.mark.parametrize(("with_mean", "with_std"), [(False, True), (True, False), (False, False)])
def test_given_a_scaler_without_centring_or_scaling_when_read_then_transform_equals_sklearn(with_mean, with_std):
    x, _ = _data(seed=7, n_rows=100, missing_rate=0.0)
    fitted = preprocessing.StandardScaler(with_mean=with_mean, with_std=with_std).fit(x)
    params = StandardScalerParams.from_sklearn(fitted)
    np.testing.assert_allclose([params.transform(row) for row in x.tolist()], fitted.transform(x), rtol=1e-15)


def test_given_an_unfitted_scaler_when_read_then_value_error():
    with pytest.raises(ValueError, match="not fitted"):
        StandardScalerParams.from_sklearn(preprocessing.StandardScaler())


def test_given_scaler_params_when_round_tripped_through_json_then_every_float_is_exact():
    params = StandardScalerParams(mean=(0.1, 1 / 3, -2.5e-300), scale=(math.pi, 1e-12, 7.0))
    assert StandardScalerParams.from_json(params.to_json()) == params


def test_given_a_row_with_none_when_transformed_then_nan_and_others_scaled():
    params = StandardScalerParams(mean=(1.0, 10.0), scale=(2.0, 5.0))
    result = params.transform([None, 20.0])
    assert math.isnan(result[0])
    assert result[1] == 2.0


def test_given_a_row_of_the_wrong_length_when_transformed_then_value_error():
    with pytest.raises(ValueError, match="scaler expects 2"):
        StandardScalerParams(mean=(1.0, 10.0), scale=(2.0, 5.0)).transform([1.0])


# ---------------------------------------------------------------------------------------------------- versions


def test_given_no_model_yet_when_naming_the_first_then_v1():
    assert first_version() == "v1"
    assert is_valid_version(first_version())


@pytest.mark.parametrize(
    "now",
    [
        datetime(2024, 10, 22, 3, 0, 5, 999_999, tzinfo=UTC),
        datetime(2024, 10, 22, 5, 0, 5, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_given_an_aware_time_when_naming_a_version_then_its_utc_timestamp(now):
    assert timestamp_version(now) == "v20241022_030005"
    assert is_valid_version(timestamp_version(now))


def test_given_a_naive_time_when_naming_a_version_then_value_error():
    with pytest.raises(ValueError, match="timezone-aware"):
        timestamp_version(datetime(2024, 10, 22, 3, 0, 5))


@pytest.mark.parametrize(
    ("version", "valid"),
    [
        ("v1", True),
        ("v2", True),
        ("v999999", True),
        ("v20241022_030005", True),
        ("v0", False),
        ("v01", False),
        ("v1000000", False),
        ("v20241322_030005", False),  # month 13
        ("v20241022_250000", False),  # hour 25
        ("v20241022030005", False),
        ("v20241022_030005\n", False),
        ("v1 ", False),
        ("V1", False),
        ("1", False),
        ("v١", False),  # an Arabic-Indic digit: \d would accept it
        ("../v1", False),
        ("v1/x", False),
        ("", False),
        (None, False),
        (1, False),
    ],
)
def test_given_a_string_when_checked_as_a_version_then_only_the_two_shapes_pass(version, valid):
    assert is_valid_version(version) is valid


def test_given_a_bad_version_when_building_a_bundle_then_value_error(bundle):
    with pytest.raises(ValueError, match="invalid model version"):
        ModelBundle(version="../v1", model_json=bundle.model_json, scaler=bundle.scaler, feature_names=NAMES)


# ------------------------------------------------------------------------------------------------- lean import


def test_given_a_fresh_interpreter_when_importing_the_bundle_and_predicting_then_no_heavy_library_loads(
    bundle, tmp_path
):
    # Given a bundle on disk
    for name, data in bundle.to_files().items():
        (tmp_path / name).write_bytes(data)
    script = f"""
import pathlib, sys
from nbaml.bundle import ModelBundle
files = {{p.name: p.read_bytes() for p in pathlib.Path({str(tmp_path)!r}).iterdir()}}
print(ModelBundle.from_files(files).predict_proba([0.5, 110.0, 108.0, 2.0, None]))
heavy = {{"numpy", "scipy", "xgboost", "pandas", "sklearn"}} & {{m.split(".")[0] for m in sys.modules}}
print(sorted(heavy))
"""
    # When a fresh interpreter loads it and predicts, as the predict Lambda does
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    probability, heavy = result.stdout.splitlines()
    # Then it predicts without any of the heavy libraries being imported
    assert 0.0 < float(probability) < 1.0
    assert heavy == "[]"


# ------------------------------------------------------------------------------------------------- calibration


def test_given_a_calibrator_when_written_and_read_back_then_it_is_checksummed_data_and_applied(bundle):
    from dataclasses import replace

    from nbaml.bundle import PlattCalibration
    from nbaml.layout import CALIBRATION_FILE

    # Given: the bundle with a Platt calibrator (a < 1 shrinks the forest's confidence)
    calibrated = replace(bundle, calibration=PlattCalibration(a=0.8, b=-0.05))
    files = calibrated.to_files()
    # Then: calibration.json is plain JSON, listed with its checksum; the bundle reads back equal
    assert json.loads(files[CALIBRATION_FILE]) == {"method": "platt", "a": 0.8, "b": -0.05}
    assert json.loads(files[MANIFEST_FILE])["files"][CALIBRATION_FILE]["sha256"] == sha256(files[CALIBRATION_FILE])
    loaded = ModelBundle.from_files(files, expected_version=bundle.version)
    assert loaded == calibrated
    # and every probability is the forest's through the calibrator, never reordered
    x, _ = _data(seed=3, n_rows=50)
    rows = [list(r) for r in x]
    raw, served = bundle.predict_many(rows), loaded.predict_many(rows)
    for p, q in zip(raw, served, strict=True):
        z = 0.8 * math.log(p / (1 - p)) - 0.05
        assert q == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
    assert np.argsort(raw).tolist() == np.argsort(served).tolist()
    # A calibrator changed in S3 is refused like any other file
    tampered = dict(files) | {CALIBRATION_FILE: b'{"a": 5.0, "b": 0.0, "method": "platt"}\n'}
    with pytest.raises(BundleIntegrityError, match=CALIBRATION_FILE):
        ModelBundle.from_files(tampered)


@pytest.mark.parametrize(
    "body", [b'{"method": "platt", "a": -1.0, "b": 0.0}', b'{"method": "isotonic", "a": 1, "b": 0}', b"[1, 2]"]
)
def test_given_a_forged_calibrator_that_is_not_a_positive_platt_then_refused(bundle, body):
    from nbaml.layout import CALIBRATION_FILE

    with pytest.raises(BundleIntegrityError, match=CALIBRATION_FILE):
        ModelBundle.from_files(_forge(bundle.to_files(), CALIBRATION_FILE, body))


def test_given_a_calibrator_with_an_elo_term_then_it_reads_the_rows_raw_elo_and_needs_that_feature(bundle):
    from dataclasses import replace

    from nbaml.bundle import PlattCalibration
    from nbaml.features import elo_probability
    from nbaml.layout import CALIBRATION_FILE

    # Given: the bundle's last feature named elo_diff, and a calibrator that leans on Elo's probability
    names = [*NAMES[:-1], "elo_diff"]
    leaning = replace(bundle, feature_names=names, calibration=PlattCalibration(a=0.5, b=0.1, elo=0.6))
    files = leaning.to_files()
    assert json.loads(files[CALIBRATION_FILE]) == {"method": "platt", "a": 0.5, "b": 0.1, "elo": 0.6}
    loaded = ModelBundle.from_files(files)
    # Then: each probability is a * logit(forest) + elo * logit(Elo's probability of the raw elo_diff) + b
    x, _ = _data(seed=4, n_rows=40, missing_rate=0.0)
    rows = [list(r) for r in x]
    for row, p, q in zip(rows, bundle.predict_many(rows), loaded.predict_many(rows), strict=True):
        pe = elo_probability(row[-1])
        z = 0.5 * math.log(p / (1 - p)) + 0.6 * math.log(pe / (1 - pe)) + 0.1
        assert q == pytest.approx(1 / (1 + math.exp(-z)), abs=1e-12)
        assert loaded.predict_proba(row) == q
    # A bundle whose features have no elo_diff cannot carry an Elo term
    with pytest.raises(BundleIntegrityError, match="elo_diff"):
        ModelBundle.from_files(replace(leaning, feature_names=list(NAMES)).to_files())


def test_given_feature_descriptions_then_features_txt_says_what_each_is_and_still_reads_as_the_names(bundle):
    from dataclasses import replace

    described = replace(bundle, metadata=bundle.metadata | {"feature_descriptions": {NAMES[0]: "a win share"}})
    text = described.to_files()[FEATURES_FILE].decode()
    assert text.splitlines()[0] == f"{NAMES[0]}\ta win share" and text.splitlines()[1] == NAMES[1]
    assert ModelBundle.from_files(described.to_files()).feature_names == NAMES
