"""The main job through the real runtime: the season replay in SAM's containers agrees with the in-process one.

Thirty days of the 2022 synthetic season (from Tuesday 2022-10-18: four Monday drift checks, the monthly
retrain of November 1st), lived twice on the same inputs: once with every handler in this process
(``infra.replay``), once with every scheduled job through ``sam local start-lambda`` and every slate through
``sam local start-api`` (``infra.samcli.replay``), each against its own freshly deployed stack. The two must
promote the same versions with the same statuses and serve every game the same probability to 1e-9: the
built layers (locked to the development environment's versions) and python3.12 train and serve as the
development environment does. The SAM run prints its monthly AWS cost, which must price every line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from infra import replay as rp
from infra.samcli import cost
from infra.samcli import replay as sam_replay

DAYS = 30


class Capture(rp.Hooks):
    """Keeps the replay object, so its served predictions can be read after ``run`` returns."""

    replay: rp.SeasonReplay | None = None

    def before_slate(self, replay: rp.SeasonReplay, day: Any) -> None:
        self.replay = replay


def _versions(result: rp.ReplayResult) -> list[tuple[str, str, str]]:
    return sorted((v["version"], v["status"], v.get("trigger", "")) for v in result.versions)


def _retrains(result: rp.ReplayResult) -> list[tuple[str, Any, str]]:
    return [(r["trigger"], r.get("version"), r["status"]) for r in result.retrains]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, sam_tier: Any) -> tuple[Any, Any, Capture]:
    options = rp.ReplayOptions(days=DAYS, progress=False)
    in_process = Capture()
    local = rp.run(dataclasses.replace(options, out_dir=tmp_path_factory.mktemp("in-process")), in_process)
    sam = sam_replay.run(dataclasses.replace(options, out_dir=tmp_path_factory.mktemp("sam")))
    return local, sam, in_process


def test_given_the_same_days_when_replayed_in_both_runtimes_then_the_same_versions_are_promoted(both) -> None:
    local, sam, _ = both
    assert not local.failures and not sam.result.failures, (local.failures, sam.result.failures)
    assert _versions(sam.result) == _versions(local)
    assert _retrains(sam.result) == _retrains(local)
    assert [d["run_date"] for d in sam.result.drift_events] == [d["run_date"] for d in local.drift_events]
    assert len(_versions(local)) >= 2, "thirty days should cross the monthly retrain of November 1st"


def test_given_the_same_slates_when_served_in_both_runtimes_then_every_probability_agrees_to_1e_9(both) -> None:
    local, sam, captured = both
    assert captured.replay is not None
    expected = captured.replay.served
    assert set(sam.served) == set(expected) and len(expected) > 100
    differences = []
    for game_id, answer in expected.items():
        served = sam.served[game_id]
        assert served["version"] == answer["version"] and served["role"] == answer["role"], game_id
        differences.append(abs(served["home_win_probability"] - answer["home_win_probability"]))
    print(f"{len(differences)} games, max |p_sam - p_in_process| = {max(differences):.3g}")
    assert max(differences) <= 1e-9
    assert sam.result.live["overall"]["model"] == local.live["overall"]["model"]


def test_given_the_sam_replay_then_its_monthly_cost_prices_every_line_from_measured_invocations(both) -> None:
    _, sam, _ = both
    estimate = sam.estimate
    usage = estimate.usage
    functions = {r.function for r in usage.reports}
    assert functions >= {"CollectFunction", "DriftCheckFunction", "RetrainFunction", "PredictFunction"}
    assert usage.predict_requests > 0 and usage.calls, "no predict REPORT line or no recorded AWS call"
    assert all(line.usd >= 0 for line in estimate.lines) and estimate.total > 0
    assert {line.item.split(" (")[0] for line in estimate.lines} >= {"Lambda duration", "HTTP API requests"}
    text = estimate.render()
    assert cost.PRICES_READ_ON in text and "total (list prices)" in text
    assert Path(sam.result.report_dir / "cost.md").read_text().strip() == text.strip()
