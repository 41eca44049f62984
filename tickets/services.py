"""Ticket writes. Handoff opens (or reuses) the conversation's active ticket."""

from __future__ import annotations

from tickets.models import Ticket

ACTIVE = (Ticket.Status.OPEN, Ticket.Status.ASSIGNED, Ticket.Status.PENDING_CUSTOMER)


def open_ticket_for_handoff(*, conversation, reason: str, subject: str = "") -> Ticket:
    """Called inside the handoff transaction, with the conversation row locked."""
    ticket = Ticket.objects.filter(conversation=conversation, status__in=ACTIVE).first()
    if ticket is None:
        ticket = Ticket.objects.create(conversation=conversation, reason=reason, subject=subject[:200])
    return ticket
