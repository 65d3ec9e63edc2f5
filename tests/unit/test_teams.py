"""Code tests of the team map: every spelling a feed uses lands on one of the 30 franchises."""

from __future__ import annotations

import pytest

from nbaml.errors import UnknownTeamError
from nbaml.games.teams import TEAMS, team_abbreviation


def test_given_the_league_then_there_are_30_distinct_abbreviations() -> None:
    assert len(TEAMS) == 30
    assert len(set(TEAMS)) == 30


@pytest.mark.parametrize("abbreviation", TEAMS)
def test_given_our_own_abbreviation_when_mapped_then_it_maps_to_itself(abbreviation: str) -> None:
    assert team_abbreviation(abbreviation) == abbreviation
    assert team_abbreviation(abbreviation.lower()) == abbreviation


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("Boston Celtics", "BOS"),
        ("LA Clippers", "LAC"),
        ("Los Angeles Clippers", "LAC"),
        ("New Jersey Nets", "BKN"),
        ("NJN", "BKN"),
        ("Charlotte Bobcats", "CHA"),
        ("New Orleans Hornets", "NOP"),
        ("New Orleans/Oklahoma City Hornets", "NOP"),
        ("Seattle SuperSonics", "OKC"),
        ("PHO", "PHX"),
        ("  philadelphia 76ers ", "PHI"),
    ],
)
def test_given_a_current_or_historical_name_when_mapped_then_it_is_the_franchise_today(
    spelling: str, expected: str
) -> None:
    assert team_abbreviation(spelling) == expected


@pytest.mark.parametrize("spelling", ["", "Springfield Isotopes", "XYZ", "Team LeBron"])
def test_given_an_unknown_team_when_mapped_then_unknown_team_error_names_it(spelling: str) -> None:
    with pytest.raises(UnknownTeamError) as caught:
        team_abbreviation(spelling)
    assert repr(spelling) in str(caught.value)


def test_given_an_unknown_team_error_then_it_is_also_a_value_error() -> None:
    # Feeds catch ValueError around parsing; an unknown team must be caught there too.
    with pytest.raises(ValueError):
        team_abbreviation("Nowhere Nobodies")


def test_given_every_franchise_then_its_arena_has_a_time_zone_and_the_assumed_start_is_its_evening() -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from nbaml.games.teams import HOME_TIMEZONE, TEAMS, assumed_tip_off, league_date

    assert set(HOME_TIMEZONE) == set(TEAMS)
    day = dt.date(2024, 1, 5)
    eastern = {team: assumed_tip_off(day, team).astimezone(ZoneInfo("America/New_York")) for team in TEAMS}
    # 19:30 at home: 19:30 Eastern in Boston, 20:30 in Chicago, 21:30 in Denver and Phoenix, 22:30 in Los Angeles
    assert {eastern[t].strftime("%H:%M") for t in ("BOS", "CHI", "DEN", "PHX", "LAL")} == {
        "19:30", "20:30", "21:30", "22:30"
    }  # fmt: skip
    assert eastern["LAL"].hour == 22 and eastern["CHI"].hour == 20
    assert all(league_date(assumed_tip_off(day, t)) == day for t in TEAMS)
    # Phoenix keeps standard time all year: 19:30 there is 22:30 Eastern in summer time
    assert assumed_tip_off(dt.date(2024, 4, 5), "PHX").astimezone(ZoneInfo("America/New_York")).hour == 22


def test_given_a_spelling_as_written_then_the_fast_lookup_agrees_with_the_normalised_one() -> None:
    from nbaml.games import teams

    assert len(teams._AS_WRITTEN) > len(TEAMS)
    for spelling, abbreviation in teams._AS_WRITTEN.items():
        assert teams._BY_KEY[teams._key(spelling)] == abbreviation, spelling
