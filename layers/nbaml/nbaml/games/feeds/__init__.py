"""Feeds: API-Basketball (live), the historical CSV file, and the embedded synthetic league.

``open_feed`` is the one place a feed is chosen from its settings: the collect function, ``nbaml backfill``
and the season replay all get theirs from it.
"""

from __future__ import annotations

from nbaml.config import FeedSettings
from nbaml.errors import ConfigurationError
from nbaml.games.feeds.base import GameFeed

_OPEN: dict[tuple[object, ...], GameFeed] = {}


def open_feed(settings: FeedSettings) -> GameFeed:
    """The feed ``settings`` name (FEED_SOURCE and the rest), built once per execution environment.

    A warm function keeps it: the synthetic league generates its seasons once, the file feed reads its
    file once. The API key is read from its SecureString at call time, never kept in the feed.
    """
    key = tuple(getattr(settings, name) for name in FeedSettings.model_fields)
    if key not in _OPEN:
        _OPEN[key] = _new_feed(settings)
    return _OPEN[key]


def _new_feed(settings: FeedSettings) -> GameFeed:
    if settings.feed_source == "generator":
        from nbaml.games.feeds.generator import SyntheticLeague

        return SyntheticLeague(seed=settings.feed_seed)
    if settings.feed_source == "file":
        from nbaml.games.feeds.history_file import HistoryFileFeed

        if not settings.feed_file:
            raise ConfigurationError("FEED_SOURCE=file needs FEED_FILE (the path of a games CSV)")
        return HistoryFileFeed(settings.feed_file)
    from nbaml.games.feeds.api_basketball import ApiBasketballFeed
    from nbaml.storage import parameters

    if not settings.feed_key_param:
        raise ConfigurationError("FEED_SOURCE=api-basketball needs FEED_KEY_PARAM (the SecureString's name)")
    options = {"base_url": settings.feed_base_url} if settings.feed_base_url else {}
    return ApiBasketballFeed(key_provider=lambda: parameters.read_secret(settings.feed_key_param), **options)
