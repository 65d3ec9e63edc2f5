"""The artifact bucket's layout: every key nbaml reads or writes is spelled here, and nowhere else.

    raw/{batch}/{source}/{name}           feed payloads exactly as received, archived before parsing;
                                          batch is the collect run's date or ``backfill-{UTC stamp}``
    training/games/season={season}.jsonl  completed games, one clean record per line
    state/league.json                     the incremental team state the features read
    state/calendar.json                   each recent day's games by status, and the tip-offs still to come:
                                          which days are complete (nbaml.games.calendar)
    models/{version}/{file}               a model bundle: model.json, scaler.json, features.txt,
                                          metadata.json, calibration.json (when the model has one),
                                          and manifest.json, written last (the commit)
    reports/{run_date}/{name}             drift reports (drift.json, drift.html);
    reports/latest/{name}                 a copy of the newest, what GET /reports/latest serves

The bucket is versioned, so a rewritten key keeps its earlier versions. template.yaml grants each
function's S3 access by these top-level prefixes (``PREFIXES``; a test holds the two together), and the
local ``models/`` folder mirrors the ``models/`` prefix. Standard library only: the predict function
imports it.
"""

from __future__ import annotations

import datetime as dt

RAW = "raw/"
TRAINING = "training/"
STATE = "state/"
MODELS = "models/"
REPORTS = "reports/"
PREFIXES = (RAW, TRAINING, STATE, MODELS, REPORTS)

TRAINING_GAMES = f"{TRAINING}games/"
LEAGUE_STATE = f"{STATE}league.json"
LEAGUE_CALENDAR = f"{STATE}calendar.json"

MODEL_FILE = "model.json"
SCALER_FILE = "scaler.json"
FEATURES_FILE = "features.txt"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
CALIBRATION_FILE = "calibration.json"
# Exactly these files, plus the manifest and any of the optional ones, make a bundle; anything else beside
# them is refused. A bundle trained without a calibrator (or before there was one) has no calibration.json.
BUNDLE_FILES = (MODEL_FILE, SCALER_FILE, FEATURES_FILE, METADATA_FILE)
OPTIONAL_BUNDLE_FILES = (CALIBRATION_FILE,)

DRIFT_JSON = "drift.json"
DRIFT_HTML = "drift.html"
LATEST = "latest"


# ---------------------------------------------------------------- raw/
def collect_batch(run_date: dt.date) -> str:
    """The raw/ folder of one collect run: its date (a rerun of the same day rewrites the same keys)."""
    return run_date.isoformat()


def backfill_batch(at: dt.datetime) -> str:
    """The raw/ folder of one backfill: when it ran (two backfills never overwrite each other)."""
    return f"backfill-{at:%Y%m%dT%H%M%S}"


def raw_prefix(batch: str) -> str:
    return f"{RAW}{batch}/"


def raw_key(batch: str, payload_key: str) -> str:
    """Where a feed payload is archived; ``payload_key`` is the feed's own ``{source}/{name}``."""
    return raw_prefix(batch) + payload_key


# ---------------------------------------------------------------- training/ and state/
def training_season_key(season: int) -> str:
    return f"{TRAINING_GAMES}season={season}.jsonl"


def season_of(training_key: str) -> int:
    """The season of a ``training_season_key``; ValueError for any other key."""
    name = training_key.removeprefix(TRAINING_GAMES)
    if name == training_key or not (name.startswith("season=") and name.endswith(".jsonl")):
        raise ValueError(f"{training_key!r} is not a training snapshot key")
    return int(name[len("season=") : -len(".jsonl")])


# ---------------------------------------------------------------- models/
def model_prefix(version: str) -> str:
    return f"{MODELS}{version}/"


def bundle_key(version: str, name: str) -> str:
    return model_prefix(version) + name


def manifest_key(version: str) -> str:
    """The bundle's commit: a version whose manifest is absent was never committed."""
    return bundle_key(version, MANIFEST_FILE)


def bundle_file_of(key: str) -> tuple[str, str] | None:
    """(version, file name) for a key directly under ``models/{version}/``; None for any other key."""
    version, _, name = key.removeprefix(MODELS).partition("/")
    if not key.startswith(MODELS) or not _plain(version) or not _plain(name):
        return None
    return version, name


def _plain(text: str) -> bool:
    return bool(text) and "/" not in text and "\\" not in text and text not in (".", "..") and "\x00" not in text


# ---------------------------------------------------------------- reports/
def report_key(name: str, run_date: dt.date | None = None) -> str:
    """``reports/{run_date}/{name}``, or the newest copy, ``reports/latest/{name}``, without a date."""
    return f"{REPORTS}{run_date.isoformat() if run_date else LATEST}/{name}"
