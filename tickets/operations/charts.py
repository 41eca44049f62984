"""Server-rendered SVG charts for the operations page: stacked bars (messages by outcome) and a line
(p95 latency). Plain SVG in the HTML, so the page needs no script, no CDN and no chart library; every
bar and point carries a <title> with its exact value (the browser shows it on hover)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 28  # room for the y ticks on the left and the x labels below


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str


def _nice_max(value: float) -> float:
    """The y axis top: 1, 2 or 5 times a power of ten, at least `value` (and above zero)."""
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 <= value:
        step *= 10
    while step > value * 10:
        step /= 10
    return next(m * step for m in (1, 2, 5, 10) if m * step >= value)


def _frame(*, label: str, y_top: float, y_format: Callable[[float], str], x_labels: Sequence[str],
           every: int, slot: float) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
             f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(label)}</title>"]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#666">'
                     f"{escape(y_format(y_top * fraction))}</text>")
    for index, text in enumerate(x_labels):
        if index % every == 0 or index == len(x_labels) - 1:
            x = LEFT + slot * (index + 0.5)
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" fill="#666">'
                         f"{escape(text)}</text>")
    return parts


def stacked_bars(*, label: str, x_labels: Sequence[str], values: Sequence[dict[str, int]],
                 series: Sequence[Series], every: int = 1) -> SafeString:
    """One bar per x label, its segments the series' values stacked bottom up in the series' order."""
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    plot_h = HEIGHT - TOP - BOTTOM
    y_top = _nice_max(max((sum(v.values()) for v in values), default=0))
    parts = _frame(label=label, y_top=y_top, y_format=lambda v: f"{v:g}", x_labels=x_labels, every=every, slot=slot)
    for index, (x_label, counts) in enumerate(zip(x_labels, values, strict=True)):
        x, base = LEFT + slot * index + slot * 0.15, TOP + plot_h
        for s in series:
            n = counts.get(s.key, 0)
            if not n:
                continue
            h = plot_h * n / y_top
            base -= h
            parts.append(f'<rect class="bar" data-series="{escape(s.key)}" x="{x:.1f}" y="{base:.1f}" '
                         f'width="{slot * 0.7:.1f}" height="{h:.1f}" fill="{s.color}">'
                         f"<title>{escape(x_label)} · {escape(s.label)}: {n}</title></rect>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it went through escape()


def line(*, label: str, x_labels: Sequence[str], values: Sequence[float | None], color: str,
         y_format: Callable[[float], str], every: int = 1) -> SafeString:
    """A line through the points that have a value; a missing value breaks the line."""
    slot = (WIDTH - LEFT - RIGHT) / max(len(values), 1)
    plot_h = HEIGHT - TOP - BOTTOM
    y_top = _nice_max(max((v for v in values if v is not None), default=0))
    parts = _frame(label=label, y_top=y_top, y_format=y_format, x_labels=x_labels, every=every, slot=slot)
    runs: list[list[tuple[float, float]]] = [[]]
    for index, (x_label, value) in enumerate(zip(x_labels, values, strict=True)):
        if value is None:
            runs.append([])
            continue
        x, y = LEFT + slot * (index + 0.5), TOP + plot_h * (1 - value / y_top)
        runs[-1].append((x, y))
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}">'
                     f"<title>{escape(x_label)}: {escape(y_format(value))}</title></circle>")
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it went through escape()
