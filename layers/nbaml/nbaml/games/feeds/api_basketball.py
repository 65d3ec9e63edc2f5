"""The live feed: API-Basketball (api-sports, through RapidAPI), NBA = league 12, one request per date.

Dates. Our ``game_date`` is the US local date of the game, while the API speaks UTC: an evening game in
the US starts after midnight UTC (7:30 pm ET on Jan 5 is 00:30 UTC on Jan 6). Every start time is
therefore converted to America/New_York before its date is taken, and requests ask the API for that time
zone too (``timezone=America/New_York``), so ``date=`` selects a US day; the conversion keeps the date
right even if the API ignored the parameter. A game's start is its ``tip_off``; a game in play (Q1 ... OT,
half time) is in progress: pending, so its day is not complete until a later answer says it is final.

Failures. api-sports reports many errors inside an HTTP 200 (``{"errors": {"token": ...}}``) while
RapidAPI answers 401/403 for a bad key and 429 for rate limits. A rejected or missing key raises
``FeedAuthError`` at once (retrying cannot help). 429, 5xx, connection errors, per-minute rate limits and
unreadable bodies are retried with exponential backoff and full jitter, honouring Retry-After; after the
last attempt a ``FeedError`` names the date and the last status. A truncated or invalid JSON body is
retried like a transient failure, because the usual cause is a connection cut mid-body; if it persists it
is a ``FeedError``, never a quietly empty day.

The key comes from ``key_provider`` (the caller reads an SSM SecureString with a cache); it is read per
fetch, sent only in the request header, and never logged or put in an exception message.

Transport. The key only ever travels to the configured host over verified TLS: the base URL must be
https, and a redirect is never followed (a 3xx is an error naming the status, not the target), so no
response can send the key header to another host or down to plain http. Each request has an overall
deadline (``deadline``, connect to last byte) besides the per-operation socket timeout, so a server that
drips bytes cannot hold the collect function until its own timeout, and a body above ``max_body_bytes``
is refused before it is read whole (a day of NBA games is about 40 kB).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import json
import logging
import random
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError

from nbaml.errors import FeedAuthError, FeedError, UnknownTeamError
from nbaml.games.defects import DefectKind, DefectReport, RowDefect
from nbaml.games.feeds.base import FeedBatch, RawPayload, batch_of, day_range, unscored
from nbaml.games.records import Game, GameStatus, Stage, season_of
from nbaml.games.teams import LEAGUE_TIMEZONE, league_date, team_abbreviation

logger = logging.getLogger(__name__)

SOURCE = "api-basketball"
NBA_LEAGUE_ID = 12
DEFAULT_HOST = "api-basketball.p.rapidapi.com"
DEFAULT_BASE_URL = f"https://{DEFAULT_HOST}"
CONTENT_TYPE = "application/json"

FINISHED = frozenset({"FT", "AOT"})
IN_PLAY = frozenset({"Q1", "Q2", "Q3", "Q4", "OT", "BT", "HT"})
NOT_STARTED = frozenset({"NS"})
# Not played to a result. Suspended games are resumed later (postponed); an awarded result says nothing
# about how the teams play, so it is recorded as cancelled and never trained on.
STATUS_OF: dict[str, GameStatus] = {
    "POST": GameStatus.POSTPONED,
    "SUSP": GameStatus.POSTPONED,
    "CANC": GameStatus.CANCELLED,
    "ABD": GameStatus.CANCELLED,
    "AWD": GameStatus.CANCELLED,
}
_AUTH_STATUSES = frozenset({401, 403})
MAX_BODY_BYTES = 2 * 1024 * 1024
_CHUNK = 64 * 1024
_AUTH_ERROR_WORDS = ("key", "token", "subscri", "application", "access")
_PLAYOFF_WORDS = ("play", "final", "round", "semi", "quarter")


def season_label(day: dt.date) -> str:
    """API-Basketball's season name for a date: ``2023-2024`` for any day of the 2023-24 season."""
    season = season_of(day)
    return f"{season}-{season + 1}"


def start_time(start: str | None, timestamp: object = None) -> dt.datetime:
    """A start time (UTC) given as ISO 8601 (any offset; naive means UTC) or epoch seconds: the game's tip-off."""
    if start:
        moment = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
    elif isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    else:
        raise ValueError("no start time")
    return moment.astimezone(dt.UTC)


def local_date(start: str | None, timestamp: object = None) -> dt.date:
    """The US Eastern date of a start time (``start_time``): the game's date."""
    return league_date(start_time(start, timestamp))


class _Retry(Exception):
    """A transient failure: ``status`` for the final error message, ``wait`` from Retry-After if given."""

    def __init__(self, status: str, wait: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.wait = wait


class ApiBasketballFeed:
    """API-Basketball as a ``GameFeed``."""

    name = SOURCE

    def __init__(
        self,
        key_provider: Callable[[], str],
        *,
        base_url: str = DEFAULT_BASE_URL,
        host: str = DEFAULT_HOST,
        league: int = NBA_LEAGUE_ID,
        timezone: str | None = LEAGUE_TIMEZONE,
        timeout: float = 10.0,
        deadline: float = 30.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        max_attempts: int = 4,
        backoff_base: float = 1.0,
        backoff_cap: float = 20.0,
        max_retry_after: float = 60.0,
        request_interval: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"base_url must be an https URL (the key travels in a header), got {base_url!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._key_provider = key_provider
        self.base_url = base_url.rstrip("/")
        self._netloc = (parts.hostname, parts.port or 443)
        self._path_prefix = parts.path.rstrip("/")
        self.host = host
        self.league = league
        self.timezone = timezone
        self.timeout = timeout
        self.deadline = deadline
        self.max_body_bytes = max_body_bytes
        # Verified TLS with the system's trust store (SSL_CERT_FILE honoured), unless a context is given.
        self._ssl_context = ssl_context
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.request_interval = request_interval
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter only, not security

    # --- fetching -----------------------------------------------------------------------------------

    def fetch_raw(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None) -> list[RawPayload]:
        """One payload per date of the inclusive window, each exactly as the API sent it.

        The API answers as of the moment it is asked: ``as_of`` (which the emulated feeds use) changes nothing.

        ``request_interval`` spaces the requests of a long window (a backfill) to stay under a plan's
        per-minute limit instead of leaning on 429 retries.
        """
        key = self._key()
        payloads = []
        for number, day in enumerate(day_range(start, end)):
            if number and self.request_interval > 0:
                self._sleep(self.request_interval)
            payloads.append(self._fetch_day(day, key))
        return payloads

    def fetch_day(self, day: dt.date) -> RawPayload:
        """The payload of one date (what ``fetch_raw`` does for each date of its window)."""
        return self._fetch_day(day, self._key())

    def _key(self) -> str:
        try:
            key = self._key_provider()
        except Exception as exc:
            raise FeedAuthError(f"{SOURCE}: could not read the API key ({type(exc).__name__})") from None
        if not isinstance(key, str) or not key.strip():
            raise FeedAuthError(f"{SOURCE}: the API key is missing or empty")
        return key.strip()

    def url_for(self, day: dt.date) -> str:
        """The games request of one date (no secret in it: the key travels in a header)."""
        return f"{self.base_url}/games?{self._query(day)}"

    def _query(self, day: dt.date) -> str:
        query: dict[str, str | int] = {"league": self.league, "season": season_label(day), "date": day.isoformat()}
        if self.timezone:
            query["timezone"] = self.timezone
        return urllib.parse.urlencode(query)

    def _fetch_day(self, day: dt.date, key: str) -> RawPayload:
        last_status = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            try:
                body, content_type = self._attempt(day, key)
            except _Retry as failure:
                last_status = _redact(failure.status, key)
                if attempt == self.max_attempts:
                    break
                delay = self._delay(attempt, failure.wait)
                logger.warning(
                    "%s %s: %s (attempt %d of %d), retrying in %.1f s",
                    SOURCE,
                    day,
                    last_status,
                    attempt,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
                continue
            return RawPayload(source=SOURCE, key=f"{SOURCE}/{day:%Y-%m-%d}.json", body=body, content_type=content_type)
        raise FeedError(f"{SOURCE} {day}: gave up after {self.max_attempts} attempts, last status: {last_status}")

    def _attempt(self, day: dt.date, key: str) -> tuple[bytes, str]:
        """One request; raises _Retry for what may pass, FeedAuthError/FeedError for what will not."""
        headers = {"x-rapidapi-key": key, "x-rapidapi-host": self.host, "Accept": CONTENT_TYPE}
        try:
            status, response_headers, body = self._get(f"{self._path_prefix}/games?{self._query(day)}", headers)
        except ssl.SSLCertVerificationError as exc:
            raise FeedError(
                f"{SOURCE} {day}: the server's TLS certificate is not trusted ({exc.verify_message})"
            ) from None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS failure, socket timeout
            raise _Retry(f"connection error: {type(exc).__name__}") from None
        if status in _AUTH_STATUSES:
            raise FeedAuthError(f"{SOURCE} {day}: the API key was rejected (HTTP {status})")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status}", _retry_after(response_headers.get("Retry-After")))
        if 300 <= status < 400:
            raise FeedError(f"{SOURCE} {day}: HTTP {status} redirect refused (the key is never sent elsewhere)")
        if status != 200:
            raise FeedError(f"{SOURCE} {day}: HTTP {status}")
        content_type = response_headers.get("Content-Type", CONTENT_TYPE)

        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _Retry(f"invalid JSON ({len(body)} bytes)") from None
        if not isinstance(document, dict):
            raise _Retry("JSON body is not an object") from None
        self._check_errors(day, document.get("errors"), key)
        return body, content_type

    def _get(self, path: str, headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
        """GET over verified TLS within ``deadline``; the body read in chunks, never beyond the cap.

        ``http.client`` follows no redirects by itself, which is the point: the key header goes to one host.
        """
        ends = time.monotonic() + self.deadline

        def remaining() -> float:
            left = ends - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {self.deadline:.0f} s")
            return min(self.timeout, left)

        context = self._ssl_context or ssl.create_default_context()
        connection = http.client.HTTPSConnection(*self._netloc, timeout=remaining(), context=context)
        try:
            connection.request("GET", path, headers=headers)
            sock = connection.sock  # the response keeps reading from it after the connection lets it go
            sock.settimeout(remaining())
            response = connection.getresponse()
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
                raise FeedError(f"{SOURCE}: response of {declared} bytes refused (cap {self.max_body_bytes})")
            chunks, size = [], 0
            while not response.isclosed():  # it closes itself once the whole body is read
                sock.settimeout(remaining())
                chunk = response.read1(_CHUNK)  # one read from the socket, so the deadline is checked between
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise FeedError(f"{SOURCE}: response above {self.max_body_bytes} bytes refused")
                chunks.append(chunk)
            return response.status, response.headers, b"".join(chunks)
        finally:
            connection.close()

    def _check_errors(self, day: dt.date, errors: object, key: str) -> None:
        """api-sports puts errors in the body of an HTTP 200; sort them into auth, rate limit and the rest."""
        if not errors:
            return
        items = list(errors.items()) if isinstance(errors, dict) else [("error", e) for e in _as_list(errors)]
        text = _redact("; ".join(f"{field}: {message}" for field, message in items), key)
        fields = {str(field).lower() for field, _ in items}
        if "ratelimit" in fields:
            raise _Retry(f"rate limited ({text})")
        if "requests" in fields:  # the daily quota: retrying today cannot help
            raise FeedError(f"{SOURCE} {day}: daily request quota reached ({text})")
        if "token" in fields or any(word in text.lower() for word in _AUTH_ERROR_WORDS):
            raise FeedAuthError(f"{SOURCE} {day}: the API key was rejected ({text})")
        raise FeedError(f"{SOURCE} {day}: the API reported errors ({text})")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter on an exponential ceiling; a Retry-After (capped) is a floor, never shortened."""
        backoff = self._rng.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), backoff)
        return backoff

    # --- parsing ------------------------------------------------------------------------------------

    def parse(self, payloads: list[RawPayload]) -> FeedBatch:
        """Games from archived payloads. An in-play game is a game in progress: pending, not a defect."""
        defects = DefectReport()

        def rows() -> Iterator[tuple[Game | None, str]]:
            for payload in payloads:
                for item in _response_items(payload, defects):
                    where = f"{payload.key}#{item.get('id', '?') if isinstance(item, dict) else '?'}"
                    yield game_from_item(item, where, defects), where

        return batch_of(rows(), defects)

    def schedule(self, day: dt.date) -> list[Game]:
        """The day's games that are on (not postponed or cancelled), unscored, from a fresh request."""
        batch = self.parse([self.fetch_day(day)])
        return [unscored(g) for g in batch.games if (g.is_pending or g.is_final) and g.game_date == day]


def game_from_item(item: object, where: str, defects: DefectReport) -> Game | None:
    """One API game as a record (its start is its tip-off), or None after counting why it cannot be one."""
    try:
        return _game(item, where, defects)
    except RowDefect as defect:
        defects.add(defect.kind, where, defect.reason)
        return None


def _game(item: object, where: str, defects: DefectReport) -> Game | None:
    if not isinstance(item, dict):
        raise RowDefect(DefectKind.MALFORMED, f"item is a {type(item).__name__}, not an object")
    code, home_name, away_name = _required(item)
    start = _start(item)
    day = league_date(start)
    home, away = _teams(home_name, away_name)
    status, home_score, away_score = _status(item, code, home, away)
    label = _get(item, "league", "season")
    if label is not None and str(label) != season_label(day):  # counted, and the game kept
        defects.add(DefectKind.SEASON_LABEL_MISMATCH, where, f"season {label!r} but {day} is in {season_label(day)}")
    try:
        return Game.create(
            game_date=day,
            home=home,
            away=away,
            status=status,
            source=SOURCE,
            home_score=home_score,
            away_score=away_score,
            stage=_stage(item),
            source_id=str(item["id"]) if item.get("id") is not None else None,
            tip_off=start,
        )
    except ValidationError as exc:
        raise RowDefect(DefectKind.MALFORMED, f"invalid game: {exc.errors()[0].get('msg', 'invalid')}") from None


def _required(item: dict[str, Any]) -> tuple[str, str, str]:
    """(status code in capitals, home name, away name), or a MISSING_FIELD naming every absent one."""
    status_code = _get(item, "status", "short")
    home_name, away_name = _get(item, "teams", "home", "name"), _get(item, "teams", "away", "name")
    fields = (("status.short", status_code), ("teams.home.name", home_name), ("teams.away.name", away_name))
    missing = [name for name, value in fields if not value]
    if not item.get("date") and item.get("timestamp") is None:
        missing.append("date")
    if missing:
        raise RowDefect(DefectKind.MISSING_FIELD, f"missing {', '.join(missing)}")
    return str(status_code).upper(), str(home_name), str(away_name)


def _start(item: dict[str, Any]) -> dt.datetime:
    try:
        return start_time(item.get("date") if isinstance(item.get("date"), str) else None, item.get("timestamp"))
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise RowDefect(DefectKind.MALFORMED, f"unreadable start time {item.get('date')!r}: {exc}") from None


def _teams(home_name: str, away_name: str) -> tuple[str, str]:
    try:
        home, away = team_abbreviation(home_name), team_abbreviation(away_name)
    except UnknownTeamError as exc:
        raise RowDefect(DefectKind.UNKNOWN_TEAM, str(exc)) from None
    if home == away:
        raise RowDefect(DefectKind.SAME_TEAM_BOTH_SIDES, f"{home} on both sides")
    return home, away


def _status(item: dict[str, Any], code: str, home: str, away: str) -> tuple[GameStatus, int | None, int | None]:
    """The game's status and, when it is final, its score (which must be a real, decided one)."""
    if code in NOT_STARTED:
        return GameStatus.SCHEDULED, None, None
    if code in IN_PLAY:  # not final yet: pending (its day is not complete), never skipped
        return GameStatus.IN_PROGRESS, None, None
    if code in STATUS_OF:
        return STATUS_OF[code], None, None
    if code not in FINISHED:
        raise RowDefect(DefectKind.MALFORMED, f"unknown status {code!r}")
    home_total, away_total = _get(item, "scores", "home", "total"), _get(item, "scores", "away", "total")
    if home_total is None or away_total is None:
        raise RowDefect(DefectKind.FINAL_WITHOUT_SCORE, f"status {code} but scores {home_total}-{away_total}")
    try:
        home_score, away_score = _whole(home_total), _whole(away_total)
    except ValueError:
        raise RowDefect(DefectKind.MALFORMED, f"scores {home_total!r}-{away_total!r} are not whole numbers") from None
    if home_score == 0 or away_score == 0:
        raise RowDefect(DefectKind.UNPLAYED_ZERO_SCORE, f"{home} {home_score}-{away_score} {away}")
    if home_score == away_score:
        raise RowDefect(DefectKind.MALFORMED, f"final tie {home_score}-{away_score}")
    return GameStatus.FINAL, home_score, away_score


def _stage(item: dict[str, Any]) -> Stage:
    """Playoffs (and the play-in) when the stage, the week or the league type says so; else regular."""
    texts = [item.get("stage"), item.get("week"), _get(item, "league", "type")]
    words = " ".join(str(t).lower() for t in texts if isinstance(t, str))
    return Stage.PLAYOFFS if any(word in words for word in _PLAYOFF_WORDS) else Stage.REGULAR


def _response_items(payload: RawPayload, defects: DefectReport) -> Iterable[Any]:
    try:
        document = json.loads(payload.body)
    except (ValueError, UnicodeDecodeError) as exc:
        defects.add(DefectKind.MALFORMED, payload.key, f"not JSON: {type(exc).__name__}")
        return []
    if not isinstance(document, dict):
        defects.add(DefectKind.MALFORMED, payload.key, "JSON body is not an object")
        return []
    if document.get("errors"):
        defects.add(DefectKind.MALFORMED, payload.key, "payload carries API errors")
        return []
    items = document.get("response")
    if not isinstance(items, list):
        defects.add(DefectKind.MALFORMED, payload.key, "no 'response' list")
        return []
    return items


def _get(item: object, *path: str) -> Any:
    for part in path:
        if not isinstance(item, dict):
            return None
        item = item.get(part)
    return item


def _whole(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean score")
    number = float(value)  # type: ignore[arg-type]
    if not number.is_integer() or number < 0:
        raise ValueError(f"score {value!r}")
    return int(number)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _redact(text: str, key: str) -> str:
    """Belt and braces: an API echoing the key back must not carry it into logs or exceptions."""
    return text.replace(key, "***") if key else text
