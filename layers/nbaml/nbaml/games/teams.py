"""The 30 NBA franchises under their current abbreviations, and every name a feed may call them.

Historical names map to the franchise that carries them today (New Jersey Nets -> BKN, Charlotte
Bobcats -> CHA, New Orleans Hornets -> NOP, Seattle SuperSonics -> OKC, ...), so a team's history is
one continuous record whatever it was called that season.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from nbaml.errors import UnknownTeamError

Team = Literal[
    "ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW",
    "HOU", "IND", "LAC", "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK",
    "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR", "UTA", "WAS",
]  # fmt: skip

TEAMS: tuple[str, ...] = get_args(Team)

# Full names, current and historical (2000 onwards), as API-Basketball and NBA sources spell them.
_NAMES: dict[str, str] = {
    "Atlanta Hawks": "ATL",
    "Boston Celtics": "BOS",
    "Brooklyn Nets": "BKN",
    "New Jersey Nets": "BKN",
    "Charlotte Hornets": "CHA",
    "Charlotte Bobcats": "CHA",
    "Chicago Bulls": "CHI",
    "Cleveland Cavaliers": "CLE",
    "Dallas Mavericks": "DAL",
    "Denver Nuggets": "DEN",
    "Detroit Pistons": "DET",
    "Golden State Warriors": "GSW",
    "Houston Rockets": "HOU",
    "Indiana Pacers": "IND",
    "LA Clippers": "LAC",
    "Los Angeles Clippers": "LAC",
    "Los Angeles Lakers": "LAL",
    "LA Lakers": "LAL",
    "Memphis Grizzlies": "MEM",
    "Vancouver Grizzlies": "MEM",
    "Miami Heat": "MIA",
    "Milwaukee Bucks": "MIL",
    "Minnesota Timberwolves": "MIN",
    "New Orleans Pelicans": "NOP",
    "New Orleans Hornets": "NOP",
    "New Orleans/Oklahoma City Hornets": "NOP",
    "New York Knicks": "NYK",
    "Oklahoma City Thunder": "OKC",
    "Seattle SuperSonics": "OKC",
    "Orlando Magic": "ORL",
    "Philadelphia 76ers": "PHI",
    "Phoenix Suns": "PHX",
    "Portland Trail Blazers": "POR",
    "Sacramento Kings": "SAC",
    "San Antonio Spurs": "SAS",
    "Toronto Raptors": "TOR",
    "Utah Jazz": "UTA",
    "Washington Wizards": "WAS",
}

# Abbreviations other sources use for the same franchises.
_ALIASES: dict[str, str] = {
    "NJN": "BKN", "BRK": "BKN", "NJ": "BKN", "BK": "BKN",
    "CHO": "CHA", "CHH": "CHA",
    "NOH": "NOP", "NOK": "NOP", "NO": "NOP", "NOR": "NOP",
    "SEA": "OKC",
    "PHO": "PHX",
    "SA": "SAS",
    "GS": "GSW", "GOS": "GSW",
    "NY": "NYK",
    "UTAH": "UTA", "UTH": "UTA",
    "WSH": "WAS",
    "VAN": "MEM",
    "LAK": "LAL",
}  # fmt: skip


_NOT_KEY = re.compile(r"[^a-z0-9]")


def _key(text: str) -> str:
    return _NOT_KEY.sub("", text.lower())


# Every spelling as written (BOS, Boston Celtics), later sources overriding earlier ones: a request's team is
# looked up as sent first, then by its normalised key.
_AS_WRITTEN: dict[str, str] = {**_NAMES, **{a: a for a in TEAMS}, **_ALIASES}
_BY_KEY: dict[str, str] = {_key(spelling): abbr for spelling, abbr in _AS_WRITTEN.items()}


def team_abbreviation(name_or_abbreviation: str) -> str:
    """Map any spelling a feed uses (full name, historical name, abbreviation) to our abbreviation.

    Raises UnknownTeamError naming the input, so a feed can count it as a defect and skip the row.
    """
    abbr = _AS_WRITTEN.get(name_or_abbreviation) or _BY_KEY.get(_key(name_or_abbreviation or ""))
    if abbr is None:
        raise UnknownTeamError(f"unknown team {name_or_abbreviation!r}")
    return abbr


# ---------------------------------------------------------------- the league's clock
LEAGUE_TIMEZONE = "America/New_York"
"""The league's clock. A game's date is its US Eastern date (an evening game in the West is past midnight
UTC, never past midnight Eastern), the league's night ends in the small hours Eastern, and template.yaml's
schedules run on this zone (ScheduleExpressionTimezone; a test holds the two together)."""

# Where each franchise plays its home games (the arena's zone; Phoenix keeps standard time all year).
HOME_TIMEZONE: dict[str, str] = {
    "ATL": "America/New_York", "BOS": "America/New_York", "BKN": "America/New_York", "CHA": "America/New_York",
    "CHI": "America/Chicago", "CLE": "America/New_York", "DAL": "America/Chicago", "DEN": "America/Denver",
    "DET": "America/Detroit", "GSW": "America/Los_Angeles", "HOU": "America/Chicago",
    "IND": "America/Indiana/Indianapolis", "LAC": "America/Los_Angeles", "LAL": "America/Los_Angeles",
    "MEM": "America/Chicago", "MIA": "America/New_York", "MIL": "America/Chicago", "MIN": "America/Chicago",
    "NOP": "America/Chicago", "NYK": "America/New_York", "OKC": "America/Chicago", "ORL": "America/New_York",
    "PHI": "America/New_York", "PHX": "America/Phoenix", "POR": "America/Los_Angeles",
    "SAC": "America/Los_Angeles", "SAS": "America/Chicago", "TOR": "America/Toronto", "UTA": "America/Denver",
    "WAS": "America/New_York",
}  # fmt: skip

ASSUMED_LOCAL_TIP_OFF = dt.time(19, 30)
"""When a source gives a game's date but not its start (the history file): the home team's local 19:30, the
most common NBA start. The latest such start (19:30 Pacific) is 22:30 Eastern."""


def league_date(instant: dt.datetime) -> dt.date:
    """The league's date of an instant (its US Eastern date)."""
    return instant.astimezone(ZoneInfo(LEAGUE_TIMEZONE)).date()


def league_time(day: dt.date, wall: dt.time) -> dt.datetime:
    """The UTC instant of a wall-clock time of ``day`` on the league's clock (03:00 of a day, say)."""
    return local_time(day, wall, LEAGUE_TIMEZONE)


def local_time(day: dt.date, wall: dt.time, timezone: str) -> dt.datetime:
    """The UTC instant of a wall-clock time of ``day`` in ``timezone``."""
    return dt.datetime.combine(day, wall, tzinfo=ZoneInfo(timezone)).astimezone(dt.UTC)


def assumed_tip_off(day: dt.date, home: str) -> dt.datetime:
    """A game's start when the source gives only its date: ASSUMED_LOCAL_TIP_OFF at the home team's arena."""
    return local_time(day, ASSUMED_LOCAL_TIP_OFF, HOME_TIMEZONE[home])
