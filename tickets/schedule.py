"""Periodic jobs of the human side: SLA breaches enter the timeline and the agents' queue."""

from django.db.models import Q
from django.utils import timezone

from tenants.scheduling import periodic
from tickets import realtime
from tickets.models import Ticket, TicketEvent
from tickets.selectors import ACTIVE_TICKET
from tickets.services import record_delivered_first_responses, reoffer_waiting_tickets


@periodic(seconds=5)
def record_first_responses() -> None:
    """A first response counts from its delivery (the ledger says when), recorded here."""
    record_delivered_first_responses()


@periodic(seconds=30)
def flag_sla_breaches() -> None:
    record_delivered_first_responses()  # a reply delivered just now is no breach
    now = timezone.now()
    overdue = Ticket.objects.filter(status__in=ACTIVE_TICKET).filter(
        Q(first_responded_at__isnull=True, first_response_due_at__lt=now) | Q(resolution_due_at__lt=now))
    for ticket in overdue:
        for target, breached in (("first_response", ticket.first_response_breached),
                                 ("resolution", ticket.resolution_breached)):
            if breached and not ticket.events.filter(kind="sla_breached", detail__target=target).exists():
                TicketEvent.objects.create(ticket=ticket, kind="sla_breached", detail={"target": target})
                realtime.queue_changed(conversation=ticket.conversation_id, change="sla_breached")


@periodic(seconds=10)
def reoffer_waiting() -> None:
    """A queue that waited for agents to come online is offered as soon as one is."""
    reoffer_waiting_tickets()
