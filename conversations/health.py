"""Reads behind the message path's health gauges (conversations/metrics.py), for the current tenant.

Built on the same selectors as the operations page (conversations/selectors.py), so a gauge and the
page never disagree on what "waiting" or "dead" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from conversations.models import OutboundMessage
from conversations.selectors import inbound_waiting, outbound_rows_by_state

Status = OutboundMessage.Status
# The ledger states the gauges report; a row being sent counts as pending (it is not delivered yet).
OUTBOUND_STATES = {Status.PENDING: "pending", Status.SENDING: "pending", Status.RETRYING: "retrying",
                   Status.DEAD: "dead"}


@dataclass(frozen=True, kw_only=True)
class MessagePathHealth:
    inbound_waiting: int
    inbound_oldest_waiting_seconds: float
    outbound_rows: dict[str, int]  # "pending", "retrying", "dead": every one present, 0 when none


def message_path_health(*, now: datetime | None = None) -> MessagePathHealth:
    """Inbound messages not yet processed (how many, the oldest's age) and outbound rows by state."""
    now = now or timezone.now()
    waiting, oldest = inbound_waiting()
    rows = dict.fromkeys(sorted(set(OUTBOUND_STATES.values())), 0)
    for status, (count, _oldest) in outbound_rows_by_state().items():
        rows[OUTBOUND_STATES[status]] += count
    return MessagePathHealth(inbound_waiting=waiting,
                             inbound_oldest_waiting_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
                             outbound_rows=rows)
