"""The canary's three cases end to end: each a replay of 42 days of the real 2022-23 season (``infra.canary_cases``).

With ``PromotionMode: canary`` the retrain of November 1st starts its candidate at 10 %, and the Monday drift
checks (Nov 7, 14, 21, 28) judge it with no operator action: the normal retrain (better) must reach active,
an equal candidate must do no harm either way, and a worse one (trained with home and away swapped, its gates
bypassed) must be aborted at its first step within two checks of having enough games. Every step must be in
the registry's history and in the SSM parameter's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import canary_cases as cc
from tests.conftest import SHARED_GAMES, bulk_writes_remembered

MONTHLY = "v20221101_090000"  # the November retrain's candidate in every case (05:00 EDT; versions are named in UTC)
pytestmark = pytest.mark.skipif(not SHARED_GAMES.exists(), reason=f"the shared real seasons are not at {SHARED_GAMES}")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary")


@pytest.fixture(scope="module")
def cases(out: Path) -> dict[str, tuple[cc.CaseResult, cc.Capture]]:
    found = {}
    with bulk_writes_remembered() as backfills:  # the three backfills of the same 15,428 games: moto writes them once
        for case in cc.CASES:
            capture = cc.Capture()
            results = cc.run_case(case, out_dir=out, capture=capture)
            found[case] = (next(r for r in results if r.version == MONTHLY), capture)
    assert backfills["put_back"] >= len(cc.CASES) - 1, backfills  # every case after the first reuses the rows
    table = cc.render([r for r, _ in found.values()])
    (Path(out) / "canary_cases.md").write_text(table + "\n")
    print("\n" + table)
    for case, (result, _) in found.items():
        print(case, [(c["run_date"], c["percent"], c["n"], c["upper"], c["action"]) for c in result.checks])
    return found


def _steps_in_ssm(capture: cc.Capture) -> list[str]:
    return [value for value, _ in capture.parameter_history["canary"] if value.startswith(MONTHLY)]


def test_given_the_normal_monthly_retrain_then_it_climbs_every_step_to_active_within_three_checks(cases) -> None:
    # Nov 7: fewer than 50 pairs, hold; Nov 14: 10 -> 50; Nov 21: 50 -> 100, active before the next retrain
    result, capture = cases["better"]
    assert result.status == "active"
    assert result.steps == [10, 50]  # then the last step, 100, is the promotion
    assert result.weeks_to_decision is not None and result.weeks_to_decision <= 3
    assert [c["action"] for c in result.checks][-2:] == ["advanced", "promoted"]
    # each step is an SSM write with the figures, and the promotion a write of the active parameter
    assert _steps_in_ssm(capture) == [f"{MONTHLY}:10", f"{MONTHLY}:50"]
    active_value, why = capture.parameter_history["active"][-1]
    assert active_value == MONTHLY and "canary at 100 %" in why and "n=" in why
    record = capture.registry[MONTHLY]
    assert [h["to"] for h in record["history"]][-3:] == ["canary", "canary", "active"]
    assert capture.registry["v1"]["status"] == "inactive"
    assert result.served_as_canary > 0 and result.served_as_champion > 0


def test_given_an_equal_candidate_then_it_does_no_harm_either_way(cases) -> None:
    result, capture = cases["equal"]
    assert result.status in {"active", "rejected"}
    live = result.live
    assert live["n"] >= 50
    # on the games both scored, the candidate is within the margin of the champion, whatever was decided
    assert abs(live["candidate_log_loss"] - live["champion_log_loss"]) < 0.01
    if result.status == "rejected":
        assert "not shown non-inferior" in capture.registry[MONTHLY]["rejected_because"][0]


def test_given_a_worse_candidate_then_it_is_aborted_at_its_first_step_within_two_checks_of_enough_games(
    cases,
) -> None:
    result, capture = cases["worse"]
    assert result.status == "rejected"
    assert result.steps == [10]  # never more than the first step's share
    assert result.weeks_after_enough is not None and result.weeks_after_enough <= 2
    assert result.served_as_champion == 0
    total = sum(1 for p in capture.predictions if p["role"] == "champion")
    assert result.served_as_canary <= 0.2 * total  # about 10 % of the games since it started
    record = capture.registry[MONTHLY]
    assert record["rejected_because"][0].startswith("canary aborted by canary-rule: n=")
    assert record["canary_evidence"]["decision"] in {"abort", "futile"}
    assert _steps_in_ssm(capture) == [f"{MONTHLY}:10"]
    assert capture.parameter_history["canary"][-1][0] == "none"
    assert "canary aborted" in capture.parameter_history["canary"][-1][1]
    assert capture.parameter_history["active"][-1][0] == "v1"


def test_the_season_dashboard_marks_each_case_s_canary_moves_and_lists_its_checks(cases, out: Path) -> None:
    for case, moves in (("better", ("advanced", "promoted")), ("worse", ("aborted",))):
        result, _ = cases[case]
        page = (out / case / "dashboard.html").read_text()
        for move in moves:
            assert f">canary {move}</text>" in page, f"{case}: the {move} step is marked on the charts"
        table = page.split("<h2>Canary checks</h2>")[1].split("<h2>")[0]
        assert table.count(f"<td>{MONTHLY}</td>") == len(result.checks), f"{case}: a row per check of the canary"


BEATS_ALWAYS_HOME_BY = 0.01  # log-loss on the same served games: 0.6460 against 0.6684 on these 308 (measured)


def test_given_real_games_then_the_served_model_beats_always_home_on_the_same_games(cases, out: Path) -> None:
    # what users were given over 42 days of the real 2022-23 season (champion and canary answers), each case
    for case in cc.CASES:
        overall = json.loads((out / case / "replay.json").read_text())["live"]["overall"]
        assert overall["n"] >= 250, (case, overall["n"])
        served, home = overall["model"]["log_loss"], overall["always_home"]["log_loss"]
        assert served < home - BEATS_ALWAYS_HOME_BY, (case, served, home)
