"""The pages people read (the drift report, the season dashboard): what they say, and that a real browser
draws them. Headless Chromium renders each page to a PNG and the test decodes it (zlib, no imaging
library) to check it is not blank; .ci/run installs Debian's chromium where it is missing."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from infra import dashboard
from nbaml.features import FEATURE_NAMES
from nbaml.monitoring import charts
from nbaml.monitoring.report import render_html

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


def drift_document() -> dict:
    values = {name: round(0.02 + 0.015 * k, 4) for k, name in enumerate(FEATURE_NAMES)}
    values["home_ppg"] = 0.41
    return {
        "run_date": "2023-02-06",
        "active": "v20230101_050000",
        "drift": True,
        "retrain_requested": True,
        "rule": {
            "rule": "sequential",
            "fired": True,
            "detail": "log-loss 0.7012 observed vs 0.6240 expected over 212 games",
            "evidence_since": "2023-01-02",
        },
        "other_rule": {"rule": "seed", "fired": False, "detail": "accuracy 0.620 on the last 50 vs baseline 0.655"},
        "performance": {"n": 212, "accuracy": 0.62, "log_loss": 0.7012, "baseline_accuracy": 0.655},
        "calibration": {
            "n": 212,
            "ece": 0.041,
            "curve": [{"mean_probability": p / 10 + 0.05, "win_rate": p / 10 + 0.02, "n": 20} for p in range(2, 9)],
        },
        "psi": {
            "n": 410,
            "n_before": 388,
            "judged": True,
            "days": 28,
            "threshold": 0.2,
            "values": values,
            "limits": {name: 0.2 if "h2h" in name else 0.35 for name in FEATURE_NAMES},
            "alarm": ["home_ppg", "h2h_home_losses", "h2h_avg_margin"],
        },
        "coverage": {"finished": 52, "predicted": 51, "share": 0.9808},
        "results": {
            "n": 52,
            "home_margin": -14.2,
            "expected": 2.61,
            "z": -8.9,
            "limit": 4.0,
            "judged": True,
            "alarm": True,
        },
        "latency": {"n": 340, "p50_ms": 0.61, "p99_ms": 1.93},
        "rolling": {
            f"v1 ({role})": [{"week": f"2023-W{w:02d}", "n": 50, "accuracy": 0.6 + 0.01 * (w % 5)} for w in range(1, 7)]
            for role in ("champion", "shadow")
        },
        "challengers": [],
    }


def season_weeks() -> list[dict]:
    start = dt.date(2022, 10, 17)
    return [
        {
            "week": dashboard.week_of(start + dt.timedelta(weeks=k)),
            "n": 50,
            "model": 0.62 + 0.01 * (k % 3),
            "elo": 0.635 + 0.01 * (k % 2),
            "always_home": 0.68,
            "version": "v1" if k < 8 else "v2",
        }
        for k in range(16)
    ]


def dashboard_page() -> str:
    drift = [
        {"run_date": "2022-12-05", "rule": "sequential", "reasons": ["sequential rule"], "retrain_requested": True}
    ]
    retrains = [
        {"requested_at": "2022-12-05T04:30:00+00:00", "trigger": "drift", "version": "v2", "status": "promoted"},
        {"requested_at": "2023-01-01T05:00:00+00:00", "trigger": "scheduled", "version": "v3", "status": "rejected"},
    ]
    canary = [  # a candidate started at 10 %, held, stepped to 50 %, then made active
        {"run_date": d, "version": "v2", "percent": pct, "action": action, "n": n, "mean": mean}
        for d, pct, action, n, mean in (
            ("2022-11-07", 10, "hold", 12, None),
            ("2022-11-14", 10, "advanced", 61, -0.0042),
            ("2022-11-21", 50, "promoted", 88, -0.0051),
        )
    ]
    return dashboard.render_dashboard(2022, season_weeks(), drift, retrains, canary_checks=canary)


# ---------------------------------------------------------------- what the pages say
def test_the_drift_report_names_every_feature_and_gives_coverage_and_latency_as_rows() -> None:
    page = render_html(drift_document())
    for name in FEATURE_NAMES:
        assert f">{name}</text>" in page, f"the PSI bars carry the feature name {name}"
    assert "98.1 %: 51 of 52 finished games predicted" in page
    assert "p50 0.610 ms, p99 1.930 ms over 340 requests" in page
    assert "ALARM: check the feed: mean home margin -14.2 points over 52 games, training 2.61 (z -8.9" in page
    assert "{" not in re.sub(r"<style>.*?</style>", "", page), "no raw JSON on the page"
    assert "home_ppg 0.41 &gt; 0.35" in page, "each alarm says its value and its limit"
    assert "0.0410 over 212 resolved games (a perfectly calibrated model shows about 0.0" in page, "ECE beside chance"
    assert page.count("</title></line>") == len(FEATURE_NAMES), "every bar shows its own alarm level"


def test_every_chart_has_tick_values_axis_labels_and_a_legend() -> None:
    page = render_html(drift_document())
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 3
    calibration, weekly, _ = svgs
    for tick in ("0.0", "0.2", "0.4", "0.6", "0.8", "1.0"):
        assert f">{tick}</text>" in calibration
    assert "predicted home-win probability" in calibration and "perfectly calibrated" in calibration
    assert calibration.count(">n=20</text>") == 7, "each calibration point says how many games it stands for"
    assert "accuracy (% of games picked right)" in weekly and ">23-W01</text>" in weekly
    assert "v1 (champion)" in weekly and "v1 (shadow)" in weekly


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    ticks = charts.nice_ticks(0.583, 0.702)
    assert ticks[0] <= 0.6 and ticks[-1] >= 0.7 and all(round(t, 3) == t for t in ticks)


def test_the_dashboard_marks_drift_and_retrains_and_shows_who_served() -> None:
    page = dashboard_page()
    assert "live log-loss by week" in page and "log-loss (nats per game)" in page
    assert ">drift</text>" in page and "retrain: promoted" in page and "retrain: rejected" in page
    assert ">v1</text>" in page and ">v2</text>" in page, "the version timeline labels its spans"
    assert "always home" in page and "Elo" in page


def test_the_dashboard_shows_the_canary_steps_and_the_evidence_each_was_decided_on() -> None:
    page = dashboard_page()
    assert ">canary advanced</text>" in page and ">canary promoted</text>" in page, "moves marked on the charts"
    assert ">canary hold</text>" not in page, "a hold is no move: a table row, no marker"
    table = page.split("<h2>Canary checks</h2>")[1].split("<h2>")[0]
    assert table.count("<tr>") == 4, "a header and one row per check"
    assert "<td>2022-11-14</td><td>v2</td><td>10 %</td><td>advanced</td><td>61</td><td>-0.0042</td>" in table
    assert "<td>2022-11-07</td><td>v2</td><td>10 %</td><td>hold</td><td>12</td><td>-</td>" in table
    assert "<p>none</p>" in dashboard.render_dashboard(2022, season_weeks(), [], []).split("Canary checks")[1]


def test_weekly_log_loss_scores_each_week_on_its_own_games() -> None:
    items = [
        {
            "game_date": "2023-01-02",
            "game_id": "a",
            "home_won": True,
            "probability": 0.8,
            "version": "v1",
            "role": "champion",
        },
        {
            "game_date": "2023-01-03",
            "game_id": "b",
            "home_won": False,
            "probability": 0.3,
            "version": "v1",
            "role": "champion",
        },
        {
            "game_date": "2023-01-09",
            "game_id": "c",
            "home_won": True,
            "probability": 0.5,
            "version": "v2",
            "role": "champion",
        },
    ]
    weeks = dashboard.weekly_log_loss(items, {"a": 0.6, "b": 0.6, "c": 0.6}, 0.58)
    assert [w["week"] for w in weeks] == ["2023-W01", "2023-W02"]
    assert weeks[0]["n"] == 2 and weeks[1]["version"] == "v2"
    assert weeks[1]["model"] == pytest.approx(0.693147, abs=1e-6)


# ---------------------------------------------------------------- what a browser draws
def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), f"unexpected PNG format depth={depth} color={color}"
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, previous = [], bytearray(stride)
    for r in range(height):
        kind, line = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1 : (r + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line[j] for j in range(stride) if j % bpp < 3))  # RGB only
        previous = line
    return width, height, rows


def screenshot(page: str, tmp_path: Path, name: str) -> Path:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (Debian: apt-get install chromium; .ci/run installs it)"
    html_file = tmp_path / f"{name}.html"
    html_file.write_text(page)
    png = tmp_path / f"{name}.png"
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            "--hide-scrollbars",
            "--window-size=1000,1400",
            f"--screenshot={png}",
            html_file.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return png


@pytest.mark.parametrize("name", ["drift", "dashboard"])
def test_given_a_page_when_chromium_renders_it_then_the_screenshot_is_not_blank(name: str, tmp_path: Path) -> None:
    page = render_html(drift_document()) if name == "drift" else dashboard_page()
    png = screenshot(page, tmp_path, name)
    width, height, rows = png_pixels(png.read_bytes())
    assert (width, height) == (1000, 1400)
    pixels = [row[i : i + 3] for row in rows[::4] for i in range(0, len(row), 12)]  # every 4th pixel both ways
    ink = sum(1 for p in pixels if p != b"\xff\xff\xff") / len(pixels)
    colors = len(set(pixels))
    assert ink > 0.03, f"{name}: only {ink:.1%} of the screenshot is not white"
    assert colors > 20, f"{name}: {colors} colours: text and charts were not drawn"
    lower_half = [row for row in rows[height // 2 :: 8]]
    assert any(row.count(b"\xff") < len(row) for row in lower_half), f"{name}: the lower half is empty"
