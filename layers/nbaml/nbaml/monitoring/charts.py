"""Small SVG charts for the pages people read (the drift report, the season dashboard): every chart has a
title, axes with tick values and units, and a legend. Plain SVG strings, no plotting library, so the
drift_check function stays as small as it is (it has no numpy either).

- ``line_chart``: series over a numeric or categorical x axis, optional vertical event markers (drift
  events, retrains) and horizontal reference lines;
- ``bar_chart``: horizontal bars with their names and values beside them (feature PSI) and a threshold;
- ``timeline_chart``: labelled spans over a categorical axis (which model version served which weeks).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
FONT = "font-family='sans-serif'"


_HALO = "stroke='white' stroke-width='3' paint-order='stroke'"  # text stays legible where a line crosses it


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]  # (x, y); x is an index for a categorical axis
    color: str | None = None
    dashed: bool = False
    markers: bool = True
    labels: Sequence[str] = ()  # a short text above each point (e.g. how many games it stands for)


@dataclass
class Marker:
    """A vertical line at ``x`` with a short label (a drift event, a retrain)."""

    x: float
    label: str
    color: str = "#d62728"


@dataclass
class Axis:
    label: str
    lo: float | None = None
    hi: float | None = None
    fmt: str = "{:g}"
    categories: list[str] = field(default_factory=list)  # tick labels for x = 0, 1, 2 ... (thinned to fit)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _e(text: object) -> str:
    return html.escape(str(text))


class _Plot:
    """The plotting area of one chart: maps data to pixels and draws the axes, grid and ticks."""

    def __init__(self, width: int, height: int, left: int, right: int, top: int, bottom: int) -> None:
        self.width, self.height = width, height
        self.x0, self.x1 = left, width - right
        self.y0, self.y1 = height - bottom, top  # y grows downward in SVG

    def sx(self, value: float, lo: float, hi: float) -> float:
        return self.x0 + (value - lo) / ((hi - lo) or 1) * (self.x1 - self.x0)

    def sy(self, value: float, lo: float, hi: float) -> float:
        return self.y0 - (value - lo) / ((hi - lo) or 1) * (self.y0 - self.y1)


def _frame(title: str, width: int, height: int, body: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
        f"role='img' aria-label='{_e(title)}' {FONT}><rect width='100%' height='100%' fill='white'/>"
        f"<text x='{width / 2}' y='18' text-anchor='middle' font-size='14' font-weight='bold'>{_e(title)}</text>"
        f"{body}</svg>"
    )


def _y_axis(plot: _Plot, axis: Axis, lo: float, hi: float) -> str:
    out = []
    for tick in nice_ticks(lo, hi):
        if tick < lo - 1e-12 or tick > hi + 1e-12:
            continue
        y = plot.sy(tick, lo, hi)
        out.append(
            f"<line x1='{plot.x0}' x2='{plot.x1}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e5e5e5'/>"
            f"<text x='{plot.x0 - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11'>"
            f"{_e(axis.fmt.format(tick))}</text>"
        )
    mid = (plot.y0 + plot.y1) / 2
    out.append(
        f"<text x='14' y='{mid:.1f}' font-size='12' text-anchor='middle' transform='rotate(-90 14 {mid:.1f})'>"
        f"{_e(axis.label)}</text>"
    )
    return "".join(out)


def _x_axis(plot: _Plot, axis: Axis, lo: float, hi: float) -> str:
    out = []
    if axis.categories:
        every = max(1, math.ceil(len(axis.categories) / max(1, (plot.x1 - plot.x0) // 60)))
        ticks = [(float(i), name) for i, name in enumerate(axis.categories) if i % every == 0]
    else:
        ticks = [(t, axis.fmt.format(t)) for t in nice_ticks(lo, hi) if lo - 1e-12 <= t <= hi + 1e-12]
    for value, label in ticks:
        x = plot.sx(value, lo, hi)
        out.append(
            f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{plot.y0}' y2='{plot.y0 + 5}' stroke='#444'/>"
            f"<text x='{x:.1f}' y='{plot.y0 + 18}' text-anchor='middle' font-size='11'>{_e(label)}</text>"
        )
    out.append(
        f"<text x='{(plot.x0 + plot.x1) / 2:.1f}' y='{plot.height - 8}' text-anchor='middle' font-size='12'>"
        f"{_e(axis.label)}</text>"
    )
    return "".join(out)


def _legend(plot: _Plot, entries: list[tuple[str, str, bool]]) -> tuple[str, int]:
    """Entries (name, color, dashed) in rows above the plotting area; returns the SVG and the pixels the
    rows beyond the first take (the chart moves down by that much)."""
    out, x, y = [], plot.x0, 34
    for name, color, dashed in entries:
        step = 36 + 6.5 * len(name)
        if x > plot.x0 and x + step > plot.width - 10:
            x, y = plot.x0, y + 15
        dash = " stroke-dasharray='5 3'" if dashed else ""
        out.append(
            f"<line x1='{x}' x2='{x + 18}' y1='{y}' y2='{y}' stroke='{color}' stroke-width='2.5'{dash}/>"
            f"<text x='{x + 23}' y='{y + 4}' font-size='11'>{_e(name)}</text>"
        )
        x += step
    return "".join(out), y - 34


def _place(title: str, width: int, height: int, legend: tuple[str, int], body: list[str]) -> str:
    svg, extra = legend
    return _frame(title, width, height + extra, svg + f"<g transform='translate(0,{extra})'>" + "".join(body) + "</g>")


def _range(values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    """The axis range: ``lo``/``hi`` where given, else the data's extent widened to round tick values."""
    if lo is None or hi is None:
        low, high = min(values, default=0.0), max(values, default=1.0)
        ticks = nice_ticks(low, high)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
        lo = math.floor(low / step + 1e-9) * step if lo is None else lo
        hi = math.ceil(high / step - 1e-9) * step if hi is None else hi
    return lo, hi


def line_chart(
    title: str,
    series: Sequence[Series],
    x: Axis,
    y: Axis,
    *,
    markers: Sequence[Marker] = (),
    references: Sequence[tuple[float, str]] = (),
    width: int = 640,
    height: int = 320,
) -> str:
    """Lines with points; ``references`` are horizontal dashed lines (value, legend name)."""
    plot = _Plot(width, height, left=64, right=20, top=50, bottom=56)
    xs = [p[0] for s in series for p in s.points] + [m.x for m in markers]
    ys = [p[1] for s in series for p in s.points] + [v for v, _ in references]
    if x.categories:
        x_lo, x_hi = -0.5, len(x.categories) - 0.5
    else:
        x_lo, x_hi = _range(xs, x.lo, x.hi)
    y_lo, y_hi = _range(ys, y.lo, y.hi)
    body = [_y_axis(plot, y, y_lo, y_hi), _x_axis(plot, x, x_lo, x_hi)]
    body.append(
        f"<line x1='{plot.x0}' x2='{plot.x1}' y1='{plot.y0}' y2='{plot.y0}' stroke='#444'/>"
        f"<line x1='{plot.x0}' x2='{plot.x0}' y1='{plot.y0}' y2='{plot.y1}' stroke='#444'/>"
    )
    legend: list[tuple[str, str, bool]] = []
    for value, name in references:
        ry = plot.sy(value, y_lo, y_hi)
        body.append(
            f"<line x1='{plot.x0}' x2='{plot.x1}' y1='{ry:.1f}' y2='{ry:.1f}' stroke='#888' stroke-dasharray='6 4'/>"
        )
        legend.append((name, "#888", True))
    for k, marker in enumerate(sorted(markers, key=lambda m: m.x)):
        mx = plot.sx(marker.x, x_lo, x_hi)
        near_end = mx + 6 * len(marker.label) > plot.x1  # label on the line's left near the right edge
        tx, anchor = (mx - 3, "end") if near_end else (mx + 3, "start")
        body.append(  # labels in three staggered rows, so neighbouring events stay legible
            f"<line x1='{mx:.1f}' x2='{mx:.1f}' y1='{plot.y0}' y2='{plot.y1}' stroke='{marker.color}' "
            f"stroke-dasharray='3 3'/><text x='{tx:.1f}' y='{plot.y1 + 10 + 11 * (k % 3)}' font-size='10' "
            f"text-anchor='{anchor}' fill='{marker.color}'>{_e(marker.label)}</text>"
        )
    for k, s in enumerate(series):
        color = s.color or COLORS[k % len(COLORS)]
        legend.append((s.name, color, s.dashed))
        coords = " ".join(f"{plot.sx(px, x_lo, x_hi):.1f},{plot.sy(py, y_lo, y_hi):.1f}" for px, py in s.points)
        dash = " stroke-dasharray='6 3'" if s.dashed else ""
        body.append(f"<polyline fill='none' stroke='{color}' stroke-width='2'{dash} points='{coords}'/>")
        if s.markers:
            body.extend(
                f"<circle cx='{plot.sx(px, x_lo, x_hi):.1f}' cy='{plot.sy(py, y_lo, y_hi):.1f}' r='3' fill='{color}'>"
                f"<title>{_e(s.name)}: {_e(y.fmt.format(py))}</title></circle>"
                for px, py in s.points
            )
        body.extend(
            f"<text x='{plot.sx(px, x_lo, x_hi):.1f}' y='{plot.sy(py, y_lo, y_hi) - 7:.1f}' font-size='9' "
            f"text-anchor='middle' fill='{color}' {_HALO}>{_e(label)}</text>"
            for (px, py), label in zip(s.points, s.labels, strict=False)
        )
    if not xs:
        body.append(f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' fill='#888'>no data yet</text>")
    return _place(title, width, height, _legend(plot, legend), body)


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float]],
    value: Axis,
    *,
    threshold: float | None = None,
    limits: Mapping[str, float] | None = None,
    width: int = 640,
) -> str:
    """Horizontal bars, one per name (names on the left, values at the bar ends); red over its limit.

    ``threshold`` is one limit for every bar (a dashed line); ``limits`` gives each bar its own (a black
    tick on its row) and takes precedence.
    """
    row = 18
    label_width = 8 + 7 * max((len(name) for name, _ in bars), default=4)
    height = 50 + 56 + row * max(len(bars), 1)
    plot = _Plot(width, height, left=label_width, right=60, top=50, bottom=56)
    limits = dict(limits or {})
    values = [v for _, v in bars] + ([threshold] if threshold is not None else []) + list(limits.values())
    lo, hi = _range([0.0, *values], value.lo if value.lo is not None else 0.0, value.hi)
    body = [_x_axis(plot, value, lo, hi)]
    for tick in nice_ticks(lo, hi):
        if lo <= tick <= hi:
            gx = plot.sx(tick, lo, hi)
            body.append(f"<line x1='{gx:.1f}' x2='{gx:.1f}' y1='{plot.y1}' y2='{plot.y0}' stroke='#e5e5e5'/>")
    legend = [("within its limit", COLORS[0], False), ("over its limit", COLORS[1], False)]
    for i, (name, v) in enumerate(bars):
        top = plot.y1 + i * row + 3
        limit = limits.get(name, threshold)
        over = limit is not None and v > limit
        color = COLORS[1] if over else COLORS[0]
        end = plot.sx(min(v, hi), lo, hi)
        body.append(
            f"<text x='{plot.x0 - 6}' y='{top + 11}' text-anchor='end' font-size='11'>{_e(name)}</text>"
            f"<rect x='{plot.x0}' y='{top}' width='{max(end - plot.x0, 0.5):.1f}' height='{row - 6}' fill='{color}'/>"
            f"<text x='{end + 4:.1f}' y='{top + 11}' font-size='10'>{_e(value.fmt.format(v))}</text>"
        )
        if name in limits:
            lx = plot.sx(limits[name], lo, hi)
            body.append(
                f"<line x1='{lx:.1f}' x2='{lx:.1f}' y1='{top - 2}' y2='{top + row - 4}' stroke='black' "
                "stroke-width='2'>"
                f"<title>{_e(name)} alarm level {_e(value.fmt.format(limits[name]))}</title></line>"
            )
    if limits:
        legend.append(("alarm level (black tick)", "black", False))
    elif threshold is not None:
        tx = plot.sx(threshold, lo, hi)
        body.append(
            f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{plot.y1}' y2='{plot.y0}' stroke='{COLORS[1]}' "
            f"stroke-dasharray='6 4'/>"
        )
        legend.append((f"threshold {threshold:g}", COLORS[1], True))
    body.append(f"<line x1='{plot.x0}' x2='{plot.x0}' y1='{plot.y1}' y2='{plot.y0}' stroke='#444'/>")
    if not bars:
        body.append(f"<text x='{width / 2}' y='{plot.y1 + 12}' text-anchor='middle' fill='#888'>not computed</text>")
    return _place(title, width, height, _legend(plot, legend), body)


def timeline_chart(
    title: str,
    x: Axis,
    spans: Sequence[tuple[int, int, str]],
    *,
    markers: Sequence[Marker] = (),
    width: int = 640,
    height: int = 150,
) -> str:
    """One lane of labelled spans (first index, last index, label) over ``x.categories``, with markers."""
    plot = _Plot(width, height, left=64, right=20, top=50, bottom=56)
    lo, hi = -0.5, max(len(x.categories), 1) - 0.5
    body = [_x_axis(plot, x, lo, hi)]
    labels = list(dict.fromkeys(label for _, _, label in spans))
    for first, last, label in spans:
        color = COLORS[labels.index(label) % len(COLORS)]
        left, right = plot.sx(first - 0.5, lo, hi), plot.sx(last + 0.5, lo, hi)
        body.append(
            f"<rect x='{left:.1f}' y='{plot.y1 + 8}' width='{right - left:.1f}' height='{plot.y0 - plot.y1 - 16}' "
            f"fill='{color}' fill-opacity='0.8' stroke='white'><title>{_e(label)}</title></rect>"
        )
        if right - left > 7 * len(label):
            body.append(
                f"<text x='{(left + right) / 2:.1f}' y='{(plot.y0 + plot.y1) / 2 + 4:.1f}' text-anchor='middle' "
                f"font-size='11' fill='white'>{_e(label)}</text>"
            )
    for marker in markers:
        mx = plot.sx(marker.x, lo, hi)
        body.append(
            f"<line x1='{mx:.1f}' x2='{mx:.1f}' y1='{plot.y0}' y2='{plot.y1}' stroke='{marker.color}' "
            f"stroke-width='2' stroke-dasharray='3 3'/>"
        )
    if not spans:
        body.append(f"<text x='{width / 2}' y='{height / 2}' text-anchor='middle' fill='#888'>no version served</text>")
    legend = _legend(plot, [(label, COLORS[k % len(COLORS)], False) for k, label in enumerate(labels)])
    return _place(title, width, height, legend, body)
