"""The canary's sequential test, simulated: how often each decision is reached, and after how many weekly checks.

The drift check judges a canary every Monday on the paired per-game differences so far (canary minus champion
log-loss, ``nbaml.promotion.evidence.decide`` with the template's numbers). This bench draws those differences
for canaries of known mean and spread, judged every 50 games (a week of an NBA season), and counts the outcomes:

- mean 0 (as good as the champion) and mean = the margin (worse by exactly the margin: a promotion is the costly
  error, bounded by CANARY_ALPHA_PROMOTE over all checks);
- spreads measured on 2022-23 (monthly candidates against v1 on the same games): about 0.015
  for a monthly retrain against its champion, 0.17 for a model trained with home and away swapped, 0.31 for one
  trained on shuffled labels; 0.03 and 0.05 in between.

"worse" counts aborts because the canary was shown worse (lower bound above 0, bounded by CANARY_ALPHA_ABORT when
it is not); "futile" the aborts because 100 pairs did not show it non-inferior (not an error: no harm either way).

Run: ``.venv/bin/python bench/bench_canary.py [--runs 2000] [--seed 1]`` (pure Python and numpy, seconds).
"""

from __future__ import annotations

import argparse

import numpy as np

from nbaml.promotion.evidence import SequentialTest, decide

WEEK = 50
SPREADS = (0.015, 0.03, 0.05, 0.17, 0.31)


def fates(mean: float, sd: float, runs: int, rng: np.random.Generator, test: SequentialTest) -> list[tuple[str, int]]:
    out = []
    for draws in mean + rng.normal(0, sd, (runs, test.max_games + WEEK)):
        fate, checks = "hold", 0
        for n in range(WEEK, test.max_games + WEEK, WEEK):
            checks += 1
            fate = decide(draws[:n].tolist(), test).decision
            if fate != "hold":
                break
        out.append((fate, checks))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    test = SequentialTest()
    rng = np.random.default_rng(args.seed)
    print(
        f"margin {test.margin}, alpha promote {test.alpha_promote}, alpha abort {test.alpha_abort}, "
        f"min {test.min_games} / max {test.max_games} pairs, a look every {WEEK} games, {args.runs} canaries a row"
    )
    print("| spread | true mean | advanced | aborted: shown worse | aborted: futile | mean checks to decision |")
    print("| --- | --- | --- | --- | --- | --- |")
    for sd in SPREADS:
        for mean in (0.0, test.margin):
            found = fates(mean, sd, args.runs, rng, test)
            share = {k: sum(1 for f, _ in found if f == k) / args.runs for k in ("advance", "abort", "futile")}
            weeks = np.mean([w for _, w in found])
            print(
                f"| {sd} | {mean:+.2f} | {share['advance']:.1%} | {share['abort']:.1%} | {share['futile']:.1%} | "
                f"{weeks:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
