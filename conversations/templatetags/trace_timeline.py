"""Filters of the admin's trace timeline (admin/conversations/_trace_timeline.html): durations read by
people, and a stage's details with the ones an operator looks for first."""

from __future__ import annotations

from django import template

register = template.Library()

# Shown in their own column (the delivery row) or not at all, so left out of the details.
_ROW_KEYS = frozenset({"outbound", "part", "parts_total"})
_FIRST = ("errcode", "reason", "outcome", "ms", "attempts")


@register.filter
def duration_ms(milliseconds: int | None) -> str:
    """1234 -> "1.23 s"; 75000 -> "1 min 15 s": exact enough to compare stages, short enough to scan."""
    if milliseconds is None:
        return ""
    sign, value = ("-", -milliseconds) if milliseconds < 0 else ("", milliseconds)
    if value < 1000:
        text = f"{value} ms"
    elif value < 60_000:
        text = f"{value / 1000:.2f} s"
    elif value < 3_600_000:
        text = f"{value // 60_000} min {value % 60_000 // 1000} s"
    else:
        text = f"{value // 3_600_000} h {value % 3_600_000 // 60_000} min"
    return sign + text


@register.filter
def trace_details(detail: dict) -> list[tuple[str, object]]:
    """(key, value) pairs of a stage's detail: errcode, reason, outcome, latency first, then the rest."""
    first = [(key, detail[key]) for key in _FIRST if key in detail]
    rest = [(key, value) for key, value in detail.items() if key not in _ROW_KEYS and key not in _FIRST]
    return first + rest
