"""Periodic jobs of the human side: SLA breaches enter the timeline and the agents' queue; health gauges."""

from django.conf import settings
from django.utils import timezone

from tenants.scheduling import collect_for_each_tenant, periodic
from tickets import realtime
from tickets.health import human_side_health, sla_overdue
from tickets.inactivity import sweep_inactive
from tickets.metrics import AGENTS_ONLINE, TICKETS_SLA_BREACHED, TICKETS_WAITING
from tickets.models import Ticket, TicketEvent
from tickets.services import record_delivered_first_responses, reoffer_waiting_tickets
from tickets.teams import position as queue_positions


@periodic(seconds=5)
def record_first_responses() -> None:
    """A first response counts from its delivery (the ledger says when), recorded here."""
    record_delivered_first_responses()


@periodic(seconds=30)
def flag_sla_breaches() -> None:
    record_delivered_first_responses()  # a reply delivered just now is no breach
    for ticket in Ticket.objects.filter(sla_overdue(timezone.now())):
        for target, breached in (("first_response", ticket.first_response_breached),
                                 ("resolution", ticket.resolution_breached)):
            if breached and not ticket.events.filter(kind="sla_breached", detail__target=target).exists():
                TicketEvent.objects.create(ticket=ticket, kind="sla_breached", detail={"target": target})
                realtime.queue_changed(conversation=ticket.conversation_id, change="sla_breached")


@periodic(seconds=10)
def reoffer_waiting() -> None:
    """A queue that waited for agents to come online is offered as soon as one is."""
    reoffer_waiting_tickets()


@periodic(seconds=30)
def tell_queue_positions() -> None:
    """Waiting customers whose place in their team's queue dropped meaningfully are told it, sparingly (on 微信客服
    each notice is one of the 5 replies WeCom allows): tickets/teams/position.py. Each ticket is settled under its
    row lock (skip_locked) and its notice keyed by ticket and place, so a second scheduler tells nothing twice."""
    queue_positions.tell_queue_positions()


@periodic(seconds=60)
def close_inactive_conversations() -> None:
    """Inactivity auto-close: warn customers who stopped answering, close after the warning (tickets/inactivity.py).
    Small writes per due conversation, each under its row lock, so a second scheduler or a retry does nothing twice."""
    sweep_inactive()


@periodic(seconds=settings.METRICS_HEALTH_SECONDS, per_tenant=False)
def measure_human_side() -> None:
    """The human side's health gauges for every tenant at once (docs/OBSERVABILITY.md)."""
    health = collect_for_each_tenant(human_side_health)
    TICKETS_WAITING.publish({schema: h.tickets_waiting for schema, h in health.items()})
    TICKETS_SLA_BREACHED.publish({schema: h.tickets_sla_breached for schema, h in health.items()})
    AGENTS_ONLINE.publish({schema: h.agents_online for schema, h in health.items()})
