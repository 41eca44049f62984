"""Reads behind the human side's health gauges (tickets/metrics.py), for the current tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from tenants.keys import current_schema
from tickets import presence
from tickets.models import AgentProfile, Ticket
from tickets.selectors import ACTIVE_TICKET


@dataclass(frozen=True, kw_only=True)
class HumanSideHealth:
    tickets_waiting: int
    tickets_sla_breached: int
    agents_online: int


def sla_overdue(now: datetime) -> Q:
    """Tickets in progress past a due time: no first response by its due time, or not resolved by its own."""
    return Q(status__in=ACTIVE_TICKET) & (Q(first_responded_at__isnull=True, first_response_due_at__lt=now)
                                          | Q(resolution_due_at__lt=now))


def human_side_health(*, now: datetime | None = None) -> HumanSideHealth:
    """Open tickets nobody has taken, tickets past their SLA, agents online (a live screen, not away)."""
    now = now or timezone.now()
    agents = list(AgentProfile.objects.filter(is_active=True).values_list("user_id", flat=True))
    online = presence.statuses(schema=current_schema(), user_ids=agents)
    return HumanSideHealth(
        tickets_waiting=Ticket.objects.filter(status=Ticket.Status.OPEN).count(),
        tickets_sla_breached=Ticket.objects.filter(sla_overdue(now)).count(),
        agents_online=sum(1 for status in online.values() if status == "online"),
    )
