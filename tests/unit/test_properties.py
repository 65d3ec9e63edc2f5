"""Bad input, proved: any payload gives clean games and counted defects; any valid history gives finite features.

Hypothesis drives each parser with arbitrary bytes, with JSON shaped like the API's response but with
random types in every field, and with random CSV rows; the contract is the same for all of them: a
FeedBatch of valid Game records, every rejected row counted, never an exception. Bounded: 200 examples
a property, no deadline (the first call of a parser warms caches).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nbaml.features import FEATURE_NAMES, LeagueState, build_features, update_state
from nbaml.games.defects import DefectKind, DefectReport
from nbaml.games.feeds.api_basketball import IN_PLAY, ApiBasketballFeed
from nbaml.games.feeds.base import FeedBatch, RawPayload
from nbaml.games.feeds.history_file import COLUMNS, HistoryFileFeed
from nbaml.games.records import Game, GameStatus, Stage
from nbaml.games.teams import TEAMS
from nbaml.serving.schemas import PredictionRequest

BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_clean(batch: FeedBatch) -> None:
    """The contract of every parse: valid records (re-validated from scratch), unique, ordered; counted defects."""
    assert isinstance(batch, FeedBatch)
    assert isinstance(batch.defects, DefectReport)
    for game in batch.games:
        assert isinstance(game, Game)
        assert Game.model_validate(game.model_dump()) == game
    ids = [g.game_id for g in batch.games]
    assert len(ids) == len(set(ids))
    assert [(g.game_date, g.game_id) for g in batch.games] == sorted((g.game_date, g.game_id) for g in batch.games)
    assert all(isinstance(n, int) and n > 0 for n in batch.defects.counts.values())
    json.dumps(batch.defects.as_dict())  # the report is publishable whatever it holds


# ---------------------------------------------------------------- the history file
TEAM_TEXT = st.one_of(st.sampled_from(TEAMS), st.sampled_from(["Boston Celtics", "LA Clippers", "Seattle SuperSonics"]))
CELL = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 300).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.dates(dt.date(2008, 1, 1), dt.date(2025, 12, 31)).map(dt.date.isoformat),
    TEAM_TEXT,
    st.sampled_from(["W", "L", "", " ", "2019", "2023"]),
)


def _plausible_row() -> st.SearchStrategy[list[str]]:
    """A row that is often a real game and often a near miss (a swapped label, a tie, a zero, a bad date)."""
    return st.tuples(
        st.sampled_from(["2018", "2019", "", "x"]),
        st.dates(dt.date(2018, 10, 1), dt.date(2020, 4, 30)).map(dt.date.isoformat) | CELL,
        st.sampled_from(TEAMS) | CELL,
        TEAM_TEXT | CELL,
        st.integers(0, 160).map(str) | CELL,
        st.sampled_from(TEAMS) | CELL,
        TEAM_TEXT | CELL,
        st.integers(0, 160).map(str) | CELL,
        st.sampled_from(["W", "L"]) | CELL,
    ).map(list)


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _file_payload(body: bytes) -> RawPayload:
    return RawPayload(source="file", key="file/prop.csv", body=body, content_type="text/csv")


@BOUNDED
@given(st.binary(max_size=2000))
def test_given_any_bytes_when_the_history_file_is_parsed_then_a_clean_batch_comes_back(body: bytes) -> None:
    assert_clean(HistoryFileFeed("unused.csv").parse([_file_payload(body)]))


@BOUNDED
@given(st.lists(st.one_of(_plausible_row(), st.lists(CELL, max_size=12)), max_size=25))
def test_given_random_csv_rows_when_parsed_then_every_dropped_row_is_a_counted_defect(rows: list[list[str]]) -> None:
    # Given: the file's own header, then rows that are valid, nearly valid or of the wrong width
    batch = HistoryFileFeed("unused.csv").parse([_file_payload(_csv(list(COLUMNS), rows))])
    # Then
    assert_clean(batch)
    kept_with_defect = batch.defects.count(DefectKind.SEASON_LABEL_MISMATCH)
    written = [row for row in rows if row]  # an empty row is a blank line, which CSV readers skip
    assert len(written) - len(batch.games) <= batch.defects.total - kept_with_defect
    assert all(g.is_final and g.source == "file" for g in batch.games)


# ---------------------------------------------------------------- API-Basketball
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
ANY_JSON = st.recursive(
    JSON_LEAF,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right kind of value most of the time, anything JSON can hold otherwise."""
    return st.one_of(strategy, strategy, ANY_JSON)


def _api_item() -> st.SearchStrategy[Any]:
    start = st.datetimes(dt.datetime(2018, 10, 1), dt.datetime(2024, 6, 30), timezones=st.just(dt.UTC))
    total = st.one_of(
        st.integers(-3, 160), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=4)
    )
    item = st.fixed_dictionaries(
        {
            "id": _maybe(st.integers(1, 10**6)),
            "date": _maybe(start.map(dt.datetime.isoformat)),
            "timestamp": _maybe(st.integers(-(10**12), 10**12)),
            "status": _maybe(
                st.fixed_dictionaries(
                    {"short": _maybe(st.sampled_from(["FT", "AOT", "NS", "Q1", "POST", "CANC", "AWD", "??"]))}
                )
            ),
            "league": _maybe(
                st.fixed_dictionaries(
                    {
                        "id": _maybe(st.just(12)),
                        "season": _maybe(st.sampled_from(["2019-2020", "2023-2024"])),
                        "type": _maybe(st.sampled_from(["League", "Cup"])),
                    }
                )
            ),
            "teams": _maybe(
                st.fixed_dictionaries(
                    {
                        "home": _maybe(st.fixed_dictionaries({"name": _maybe(TEAM_TEXT)})),
                        "away": _maybe(st.fixed_dictionaries({"name": _maybe(TEAM_TEXT)})),
                    }
                )
            ),
            "scores": _maybe(
                st.fixed_dictionaries(
                    {
                        "home": _maybe(st.fixed_dictionaries({"total": total})),
                        "away": _maybe(st.fixed_dictionaries({"total": total})),
                    }
                )
            ),
            "stage": _maybe(st.sampled_from([None, "Regular Season", "Play Offs", "Final"])),
            "week": _maybe(st.sampled_from([None, "1", "Play-In"])),
        }
    )
    return st.one_of(item, item, item, ANY_JSON)


def _api_document() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries(
            {
                "get": st.just("games"),
                "errors": st.one_of(st.just([]), st.just({}), ANY_JSON),
                "response": _maybe(st.lists(_api_item(), max_size=8)),
            }
        ),
        ANY_JSON,
    )


def _short_status(item: Any) -> Any:
    status = item.get("status") if isinstance(item, dict) else None
    return status.get("short") if isinstance(status, dict) else None


def _api_payload(body: bytes) -> RawPayload:
    return RawPayload(
        source="api-basketball", key="api-basketball/prop.json", body=body, content_type="application/json"
    )


@BOUNDED
@given(st.binary(max_size=2000))
def test_given_any_bytes_when_the_api_payload_is_parsed_then_a_clean_batch_comes_back(body: bytes) -> None:
    assert_clean(ApiBasketballFeed(lambda: "unused").parse([_api_payload(body)]))


@BOUNDED
@given(st.lists(_api_document(), min_size=1, max_size=3))
def test_given_api_shaped_json_with_random_types_when_parsed_then_valid_games_and_counted_defects(
    documents: list[Any],
) -> None:
    payloads = [_api_payload(json.dumps(d).encode()) for d in documents]
    batch = ApiBasketballFeed(lambda: "unused").parse(payloads)
    assert_clean(batch)
    assert all(g.source == "api-basketball" for g in batch.games)
    assert all(g.status is not GameStatus.FINAL or g.home_score != g.away_score for g in batch.games)
    # Every item of a payload is a game, a counted defect, or a game still in play (neither yet); a payload
    # that carries API errors is one defect as a whole
    usable = [
        d for d in documents if isinstance(d, dict) and not d.get("errors") and isinstance(d.get("response"), list)
    ]
    items = [i for d in usable for i in d["response"]]
    in_play = sum(1 for i in items if str(_short_status(i)).upper() in IN_PLAY)
    assert len(items) - len(batch.games) <= batch.defects.total + in_play


# ---------------------------------------------------------------- features
@st.composite
def final_games(draw: st.DrawFn) -> list[Game]:
    """Valid final games in date order: any teams, any scores (no ties), any gaps, both stages."""
    day = draw(st.dates(dt.date(2015, 10, 1), dt.date(2020, 1, 1)))
    games: list[Game] = []
    for _ in range(draw(st.integers(0, 60))):
        day += dt.timedelta(days=draw(st.integers(0, 200)))
        home, away = draw(st.lists(st.sampled_from(TEAMS), min_size=2, max_size=2, unique=True))
        home_score = draw(st.integers(1, 200))
        away_score = draw(st.integers(1, 200).filter(lambda s, h=home_score: s != h))
        stage = draw(st.sampled_from([Stage.REGULAR, Stage.REGULAR, Stage.PLAYOFFS]))
        game = Game.create(
            game_date=day, home=home, away=away, status=GameStatus.FINAL, source="prop",
            home_score=home_score, away_score=away_score, stage=stage,
        )  # fmt: skip
        if game.game_id not in {g.game_id for g in games}:
            games.append(game)
    return games


def _finite_row(row: list[float]) -> bool:
    return len(row) == len(FEATURE_NAMES) and all(isinstance(x, float | int) and math.isfinite(x) for x in row)


@BOUNDED
@given(final_games(), st.sampled_from(TEAMS), st.sampled_from(TEAMS), st.integers(1, 30))
def test_given_any_valid_history_then_features_are_finite_and_the_state_round_trips(
    games: list[Game], home: str, away: str, days_after: int
) -> None:
    table = build_features(games)
    assert len(table.rows) == sum(1 for g in games if g.stage is Stage.REGULAR)
    assert all(_finite_row(row) for row in table.rows)
    state = table.state
    assert state is not None
    # The stored state (JSON, as in S3) comes back the same and answers the same
    stored = json.loads(json.dumps(state.to_dict()))
    again = LeagueState.from_dict(stored)
    assert again.to_dict() == state.to_dict()
    day = (state.as_of or dt.date(2015, 10, 1)) + dt.timedelta(days=days_after)
    if home != away:
        assert _finite_row(state.features(home, away, day))
        assert again.features(home, away, day) == state.features(home, away, day)
    # The daily update from an empty state gives the same state as the rebuild
    assert update_state(LeagueState(), games).to_dict() == state.to_dict()


# ---------------------------------------------------------------- request schemas
GAME_FIELD = st.one_of(TEAM_TEXT, st.dates().map(dt.date.isoformat), ANY_JSON)
GAME_LIKE = st.dictionaries(
    st.sampled_from(["home", "away", "date", "extra"]) | st.text(max_size=5), GAME_FIELD, max_size=5
)
REQUEST_LIKE = st.one_of(
    GAME_LIKE,
    st.fixed_dictionaries({"games": st.one_of(st.lists(GAME_LIKE, max_size=4), ANY_JSON)}),
    st.dictionaries(st.sampled_from(["games", "home", "x"]), ANY_JSON, max_size=3),
    ANY_JSON,
)


@BOUNDED
@given(REQUEST_LIKE)
def test_given_any_request_body_then_the_schema_accepts_it_or_raises_validation_error(body: Any) -> None:
    try:
        request = PredictionRequest.model_validate(body)
    except ValidationError:
        return
    assert request.games
    for game in request.games:
        assert game.home in TEAMS and game.away in TEAMS and game.home != game.away


@BOUNDED
@given(st.one_of(st.binary(max_size=300), REQUEST_LIKE.map(lambda b: json.dumps(b).encode())))
def test_given_any_raw_body_then_json_validation_only_ever_raises_validation_error(raw: bytes) -> None:
    with contextlib.suppress(ValidationError):
        PredictionRequest.model_validate_json(raw)


@pytest.mark.parametrize(
    "body",
    [
        {"home": "BOS", "away": "LAL", "date": "2030-01-01"},
        {"games": [{"home": "Miami Heat", "away": "NYK", "date": "2030-01-01"}]},
    ],
)
def test_given_a_valid_body_then_the_property_above_is_not_vacuous(body: dict[str, Any]) -> None:
    assert PredictionRequest.model_validate(body).games
