"""Inactivity auto-close: the limits of its settings (DeskSettings.inactivity_*), checked by the admin and the
REST API alike. The sweep itself is the human side's (tickets/inactivity.py): it closes through the agents'
close path, and only conversations an agent owns are closed for the customer's silence.

微信客服 allows replies only within 48 hours of the customer's last message (services/reply_limits.py), so the
warning and the close must both fall inside that window: warn + close minutes stay below 48 hours less a
margin for a late sweep. The sweep also warns early when the window would close first.
"""

from __future__ import annotations

from datetime import timedelta

from conversations.services.reply_limits import KF_REPLY_WINDOW

# The sweep runs every minute; a late or retried tick must still land inside the window.
WINDOW_MARGIN = timedelta(minutes=5)
MAX_TOTAL_MINUTES = int((KF_REPLY_WINDOW - WINDOW_MARGIN).total_seconds() // 60) - 1
WARNING_MAX_BYTES = 2048  # one message part: the warning is never split


def inactivity_problems(*, enabled: bool, warn_minutes: int | None, close_minutes: int | None,
                        warning: str) -> dict[str, str]:
    """{field: problem} for settings that cannot work (empty: fine). Checked even when switched off, so
    switching on later cannot meet a stored value that breaks the window."""
    problems = {}
    for field, value in (("inactivity_warn_minutes", warn_minutes), ("inactivity_close_minutes", close_minutes)):
        if value is not None and value < 1:
            problems[field] = "Must be at least 1."
    if warn_minutes and close_minutes and warn_minutes + close_minutes > MAX_TOTAL_MINUTES:
        problems["inactivity_close_minutes"] = (
            f"Warning and close minutes together must stay under WeCom's 48-hour reply window "
            f"(at most {MAX_TOTAL_MINUTES} minutes in all).")
    text = (warning or "").strip()
    if enabled and not text:
        problems["inactivity_warning"] = "Needed when inactivity auto-close is on."
    elif len(text.encode()) > WARNING_MAX_BYTES:
        problems["inactivity_warning"] = f"At most {WARNING_MAX_BYTES} bytes (UTF-8): sent as one message."
    return problems
