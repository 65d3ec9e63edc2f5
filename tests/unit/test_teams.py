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
