"""The bucket layout: keys round-trip, odd keys are refused, and template.yaml grants by the same prefixes."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from infra import template as tpl
from nbaml import layout


def test_given_a_season_when_keyed_then_the_key_gives_the_season_back() -> None:
    key = layout.training_season_key(2022)
    assert key.startswith(layout.TRAINING_GAMES)
    assert layout.season_of(key) == 2022


@pytest.mark.parametrize("key", ["training/games/2022.jsonl", "state/league.json", "training/games/season=x.jsonl"])
def test_given_a_key_that_is_no_training_snapshot_when_read_as_one_then_it_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        layout.season_of(key)


def test_given_a_bundle_file_when_keyed_then_version_and_name_come_back() -> None:
    assert layout.bundle_file_of(layout.bundle_key("v20210602_000000", layout.MODEL_FILE)) == (
        "v20210602_000000",
        layout.MODEL_FILE,
    )
    assert layout.manifest_key("v1") == layout.model_prefix("v1") + layout.MANIFEST_FILE


@pytest.mark.parametrize("key", ["models/v1/../x", "models//model.json", "models/v1/", "models/v1/a/b", "raw/v1/x"])
def test_given_a_key_that_is_no_bundle_file_when_parsed_then_it_is_none(key: str) -> None:
    assert layout.bundle_file_of(key) is None


def test_given_a_report_then_the_dated_and_the_latest_copy_share_its_name_and_differ_in_folder() -> None:
    dated = layout.report_key(layout.DRIFT_HTML, dt.date(2023, 1, 2))
    latest = layout.report_key(layout.DRIFT_HTML)
    assert dated == "reports/2023-01-02/drift.html"
    assert latest == "reports/latest/drift.html"


def test_given_collect_and_backfill_then_their_raw_batches_never_collide() -> None:
    day = dt.date(2023, 1, 2)
    collected = layout.raw_key(layout.collect_batch(day), "generator/2023-01-01.json")
    backfilled = layout.raw_key(layout.backfill_batch(dt.datetime(2023, 1, 2, 3, 4, 5)), "file/games.csv")
    assert collected.startswith(layout.raw_prefix("2023-01-02"))
    assert backfilled == "raw/backfill-20230102T030405/file/games.csv"


def test_given_the_template_then_its_s3_grants_name_exactly_the_layout_prefixes() -> None:
    # Given: every object ARN pattern the functions' policies grant (${ArtifactBucket.Arn}/<prefix>*)
    text = tpl.DEFAULT_TEMPLATE.read_text()
    granted = {f"{prefix}/" for prefix in re.findall(r"\$\{ArtifactBucket\.Arn\}/([a-z]+)/\*", text)}
    # Then: a prefix added to the layout without a grant (or granted but unknown) fails here
    assert granted == set(layout.PREFIXES)
    # and a grant of one object names a key the layout spells (drift_check and retrain read the calendar only)
    objects = set(re.findall(r"\$\{ArtifactBucket\.Arn\}/([a-z/]+\.[a-z]+)", text))
    assert objects == {layout.LEAGUE_CALENDAR}
