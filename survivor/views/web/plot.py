"""An inline SVG plot of a check's `scalar` over time, with its incarnations marked.

Drawn on the server as plain SVG (no JavaScript library, nothing to
download): one line per incarnation (the line breaks where the fingerprint
`fp` changes, with a dashed marker and the new fingerprint), one dot per
result coloured by its code, with a tooltip. Only presentation attributes
are used, no `style`, so the page's Content-Security-Policy can forbid inline
styles. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from survivor.clock import parse_time
from survivor.model.codes import code_name

WIDTH, HEIGHT = 860, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 22, 30
COLOURS = {0: "#2e7d32", 1: "#c62828", 2: "#ef6c00", 3: "#1565c0", 4: "#6a1b9a", 5: "#ad1457"}
GREY = "#78909c"
LINE = "#90a4ae"


@dataclass(frozen=True, slots=True)
class Point:
    t: datetime
    value: float | None  # None: the result had no scalar
    rc: int | None
    fp: str
    comment: str


def points_of(records: Sequence[Mapping[str, Any]]) -> list[Point]:
    """History records as points, oldest first; records without a readable time are skipped."""
    out: list[Point] = []
    for r in records:
        t = parse_time(r.get("t"))
        if t is None:
            continue
        raw = r.get("scalar")
        value = (
            float(raw)
            if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
            else None
        )
        rc = r.get("rc")
        out.append(
            Point(
                t=t,
                value=value,
                rc=rc if isinstance(rc, int) and not isinstance(rc, bool) else None,
                fp=str(r.get("fp") or ""),
                comment=str(r.get("comment") or ""),
            )
        )
    out.sort(key=lambda p: p.t)
    return out


def _empty(message: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 60" role="img" '
        f'aria-label="{escape(message)}"><text x="{WIDTH / 2:.0f}" y="34" text-anchor="middle" '
        f'fill="{GREY}" font-size="14">{escape(message)}</text></svg>'
    )


def _label(value: float) -> str:
    return f"{value:.4g}"


def widen(low: float, high: float) -> tuple[float, float]:
    """The value axis for values from `low` to `high`: 8 % of the span added each side, and
    a flat line given a span of its own. The span must be one that floats can tell apart
    at that magnitude: around 2e16 adding 1 changes nothing, and a zero span divides by
    zero (the check page answered 500 for a large constant scalar)."""
    magnitude = max(abs(low), abs(high), 1.0)
    if high - low < magnitude * 1e-9:
        low, high = low - magnitude * 0.05, high + magnitude * 0.05
    pad = (high - low) * 0.08
    return low - pad, high + pad


def scalar_plot(records: Sequence[Mapping[str, Any]], *, title: str = "scalar") -> str:
    """The SVG document (a string to put inline in HTML, or serve as image/svg+xml)."""
    points = points_of(records)
    valued = [p for p in points if p.value is not None]
    if not valued:
        return _empty("no numeric results to plot" if points else "no history yet")
    t0, t1 = points[0].t.timestamp(), points[-1].t.timestamp()
    if t1 - t0 < 60:
        t0, t1 = t0 - 30, t1 + 30
    values = [p.value for p in valued if p.value is not None]
    v0, v1 = widen(min(values), max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t.timestamp() - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + (v1 - v) / (v1 - v0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)} over time">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfcfd" '
        f'stroke="#dde2e7"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = v1 - frac * (v1 - v0)
        yy = y(v)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="#eceff1"/>'
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{GREY}">{escape(_label(v))}</text>'
        )
    for t, anchor in ((points[0].t, "start"), (points[-1].t, "end")):
        parts.append(
            f'<text x="{x(t):.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}" font-size="11" '
            f'fill="{GREY}">{escape(t.strftime("%Y-%m-%d %H:%M"))}Z</text>'
        )
    # Incarnations: a marker where the fingerprint changes; lines never cross one.
    segments: list[list[Point]] = []
    last_fp: str | None = None
    for p in points:
        if last_fp is not None and p.fp != last_fp:
            xx = x(p.t)
            parts.append(
                f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
                f'stroke="#5c6bc0" stroke-dasharray="4 3"><title>new incarnation: fp '
                f"{escape(p.fp or '?')} (was {escape(last_fp or '?')})</title></line>"
                f'<text x="{xx + 3:.1f}" y="{TOP - 6}" font-size="11" fill="#5c6bc0">fp '
                f"{escape(p.fp[:12] or '?')}</text>"
            )
        if last_fp is None or p.fp != last_fp:
            segments.append([])
        last_fp = p.fp
        if p.value is not None:
            segments[-1].append(p)
    for seg in segments:
        if len(seg) > 1:
            coords = " ".join(f"{x(p.t):.1f},{y(p.value or 0.0):.1f}" for p in seg)
            parts.append(
                f'<polyline points="{coords}" fill="none" stroke="{LINE}" stroke-width="1.5"/>'
            )
    radius = 3.0 if len(valued) <= 200 else 2.0
    for p in valued:
        colour = COLOURS.get(p.rc, GREY) if p.rc is not None else GREY
        code = code_name(p.rc) if p.rc is not None else "?"
        tip = f"{p.t.strftime('%Y-%m-%d %H:%M:%S')}Z {code} {_label(p.value or 0.0)} {p.comment}"
        parts.append(
            f'<circle cx="{x(p.t):.1f}" cy="{y(p.value or 0.0):.1f}" r="{radius}" '
            f'fill="{colour}"><title>{escape(tip[:300])}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)
