"""Reads behind the message path's health gauges (conversations/metrics.py), for the current tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
from django.utils import timezone

from conversations.models import InboundMessage, OutboundMessage

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
    waiting = InboundMessage.objects.filter(status=InboundMessage.Status.PENDING).aggregate(
        count=Count("id"), oldest=Min("received_at"))
    rows = dict.fromkeys(sorted(set(OUTBOUND_STATES.values())), 0)
    # order_by(): Meta.ordering would otherwise join the GROUP BY.
    for status, count in (OutboundMessage.objects.filter(status__in=OUTBOUND_STATES).order_by()
                          .values_list("status").annotate(count=Count("id"))):
        rows[OUTBOUND_STATES[status]] += count
    oldest = waiting["oldest"]
    return MessagePathHealth(inbound_waiting=waiting["count"],
                             inbound_oldest_waiting_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
                             outbound_rows=rows)
