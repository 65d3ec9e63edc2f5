"""``nbaml backfill``: load history into the running local stack (or AWS with AWS_ENDPOINT_URL unset).

``--games FILE`` reads a games CSV in the shared file's format, prints the table of defects it found
(kinds and counts) and loads only the clean games; ``--generator SEASONS`` loads synthetic seasons of the
embedded league instead. Either way the raw payload is archived to S3 raw/ first, then Games, the training
snapshot and the team state are written (nbaml.backfill).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from infra import runtime
from infra import stack as stk


def _backfill(args: argparse.Namespace) -> int:
    from nbaml.backfill import backfill
    from nbaml.config import CommonSettings, FeedSettings, load_settings
    from nbaml.games.feeds import open_feed

    stack = stk.LocalStack.load()
    payloads = None
    if args.games:
        from nbaml.games.feeds.base import RawPayload

        path = Path(args.games)
        feed: Any = open_feed(FeedSettings(feed_source="file", feed_file=str(path)))
        games = feed.load().games
        start, end = games[0].game_date, games[-1].game_date
        payloads = [RawPayload("file", f"file/{path.name}", feed.read_bytes(), "text/csv")]
    else:
        from nbaml.games.feeds.generator import season_window

        feed = open_feed(FeedSettings(feed_source="generator", feed_seed=args.seed))
        first = feed.first_season
        start, end = season_window(first)[0], season_window(first + args.generator - 1)[1]
    with runtime.function_environment(stack.operator_env("collect")):  # an operator's load, not collect's
        report = backfill(load_settings(CommonSettings), feed, start - dt.timedelta(days=1), end, payloads=payloads)
    print(
        f"source {report.source}: {report.payloads} payload(s) archived to raw/, {report.final_games} final games "
        f"loaded, seasons {report.seasons}, team state as of {report.state_as_of}\n"
    )
    print(report.defects.table())
    if report.defects.total:
        print("\nrows with a defect were reported and skipped; examples:")
        for kind, examples in report.defects.as_dict()["examples"].items():
            for example in examples[:2]:
                print(f"  {kind}: {example['where']}: {example['reason']}")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("backfill", help="load history into the local stack, reporting every defect")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--games", help="a games CSV in the format of ../shared/data/nba_games_2009_2023.csv")
    source.add_argument("--generator", type=int, metavar="SEASONS", help="this many seasons of the synthetic league")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic league")
    parser.set_defaults(func=_backfill)
