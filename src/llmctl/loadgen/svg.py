"""The latency-throughput curve as a standalone SVG, written by hand (no plotting library to install).

Two panels share the x axis, output tokens/s: TTFT and TPOT, each as median and p99 (the highest
percentile reported) against it, one
marker per load point labelled with its concurrency or rate. Each marker has a <title> with its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 960, 420
PANEL_W, PANEL_H = 380, 300
MARGIN_L, MARGIN_T = 70, 60
GAP = 100
STYLES = (("#1f77b4", ""), ("#d62728", "6 4"))  # median, upper percentile


@dataclass(frozen=True)
class CurvePoint:
    label: str  # "c=4" or "r=2"
    throughput: float  # output tokens/s
    ttft: tuple[float | None, float | None]  # (median, p99) ms
    tpot: tuple[float | None, float | None]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 x 10^k."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks = [math.floor(lo / step) * step]
    while ticks[-1] < hi - step * 1e-9:  # the last tick is at or above the highest value
        ticks.append(ticks[0] + len(ticks) * step)
    return [round(t, 10) for t in ticks]


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def _panel(x0: float, title: str, points: Sequence[CurvePoint], pick: str, xticks: list[float],
           names: tuple[str, str]) -> list[str]:
    values = [v for p in points for v in getattr(p, pick) if v is not None]
    yticks = nice_ticks(0.0, max(values) if values else 1.0)
    xmin, xmax, ymax = xticks[0], xticks[-1], yticks[-1]

    def sx(v: float) -> float:
        return x0 + (v - xmin) / (xmax - xmin or 1) * PANEL_W

    def sy(v: float) -> float:
        return MARGIN_T + PANEL_H - v / (ymax or 1) * PANEL_H

    out = [f'<text x="{x0 + PANEL_W / 2:.1f}" y="{MARGIN_T - 14}" text-anchor="middle" font-weight="bold">'
           f"{escape(title)}</text>",
           f'<rect x="{x0}" y="{MARGIN_T}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>']
    for t in yticks:
        y = sy(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in xticks:
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{MARGIN_T + PANEL_H}" x2="{x:.1f}" y2="{MARGIN_T + PANEL_H + 5}" stroke="#444"/>')
        out.append(f'<text x="{x:.1f}" y="{MARGIN_T + PANEL_H + 18}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{x0 + PANEL_W / 2:.1f}" y="{MARGIN_T + PANEL_H + 38}" text-anchor="middle">'
               "output tokens/s</text>")
    out.append(f'<text transform="translate({x0 - 50},{MARGIN_T + PANEL_H / 2}) rotate(-90)" text-anchor="middle">'
               "ms</text>")
    for idx, ((color, dash), name) in enumerate(zip(STYLES, names)):
        pts = [(p, getattr(p, pick)[idx]) for p in points if getattr(p, pick)[idx] is not None]
        if len(pts) > 1:
            path = " ".join(f"{sx(p.throughput):.1f},{sy(v):.1f}" for p, v in pts)  # type: ignore[arg-type]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}/>')
        for p, v in pts:
            assert v is not None
            tip = f"{p.label}: {name} {title} {v:.1f} ms at {p.throughput:.1f} tok/s"
            out.append(f'<circle cx="{sx(p.throughput):.1f}" cy="{sy(v):.1f}" r="4" fill="{color}">'
                       f"<title>{escape(tip)}</title></circle>")
            if idx == 0:
                out.append(f'<text x="{sx(p.throughput) + 6:.1f}" y="{sy(v) - 6:.1f}" font-size="10">'
                           f"{escape(p.label)}</text>")
    return out


def render(title: str, points: Sequence[CurvePoint], upper: str = "p99") -> str:
    """The SVG document (UTF-8 text); `upper` names the second series (the highest percentile reported)."""
    names = ("median", upper)
    pts = sorted(points, key=lambda p: p.throughput)
    xs = [p.throughput for p in pts] or [0.0, 1.0]
    xticks = nice_ticks(0.0, max(xs))
    body = [f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">'
            f"{escape(title)}</text>"]
    body += _panel(MARGIN_L, "TTFT", pts, "ttft", xticks, names)
    body += _panel(MARGIN_L + PANEL_W + GAP, "TPOT", pts, "tpot", xticks, names)
    lx = WIDTH - 120
    for i, ((color, dash), name) in enumerate(zip(STYLES, names)):
        y = 20 + 16 * i
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        body.append(f'<line x1="{lx}" y1="{y - 4}" x2="{lx + 24}" y2="{y - 4}" stroke="{color}" stroke-width="2"{dash_attr}/>')
        body.append(f'<text x="{lx + 30}" y="{y}">{name}</text>')
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">\n'
            f'<title>{escape(title)}</title>\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")


__all__ = ["CurvePoint", "nice_ticks", "render"]
