"""What an integration does through the REST API (tickets/api): the agent screens' own services, acted by an
API key (`tickets.services.Integration`), so the state rules and refusals are the screens'.

The screens act on "the conversation's ticket"; the API names a ticket by its id. Each write here locks the
conversation first (the services' lock order), then checks that the ticket is still its conversation's
current one, and only then calls the service in the same transaction: a ticket superseded by a later
handoff is refused, never silently swapped for the newer one.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from conversations.models import Conversation, DeskSettings
from conversations.services.handoff import HandoffReceipt, hand_off_to_human
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.services import (
    ActionRefused,
    Integration,
    add_note,
    close_conversation,
    move_ticket_to_team,
    reassign_conversation,
    set_ticket_status,
)
from tickets.services import _event as record_event
from tickets.teams.models import Team


def hand_off_conversation(*, conversation_id: int, by: Integration, subject: str = "") -> HandoffReceipt:
    """Hand a conversation the AI answers to humans, the way a customer's "转人工" does: the handoff
    message to the customer, the ticket (reason "manual"), the offer to an online agent or the
    "nobody is online" notice. Refused when humans have it already or it is closed."""
    with transaction.atomic():
        conversation = _lock(conversation_id)
        if conversation.state == Conversation.State.CLOSED:
            raise ActionRefused(_("This conversation is closed."), code="conversation_closed")
        if conversation.human_owned:
            raise ActionRefused(_("This conversation is already with humans."), code="already_with_humans")
        receipt = hand_off_to_human(conversation=conversation, reason=Ticket.Reason.MANUAL,
                                    desk=DeskSettings.current())
        ticket = Ticket.objects.get(pk=receipt.ticket_id)
        if subject and not ticket.subject:
            ticket.subject = subject[:200]
            ticket.save(update_fields=["subject", "updated_at"])
        record_event(ticket, by, "handed_off")
    return receipt


def close(*, conversation_id: int, by: Integration) -> None:
    """Close as the agent screen does (the ticket closed, the closing message once). A conversation that
    closed without humans (idle, no ticket) stays as it is: no ticket is opened just to close it, and the
    customer is not told goodbye long after the fact."""
    with transaction.atomic():
        conversation = _lock(conversation_id)
        if conversation.state == Conversation.State.CLOSED and not conversation.tickets.exists():
            return
        close_conversation(conversation_id=conversation_id, profile=by)


def assign_ticket(*, ticket_id: int, agent: AgentProfile, by: Integration) -> Ticket:
    """Give the ticket's conversation to `agent`, as a supervisor's reassign does (waiting or with another
    agent; neither the agent's presence nor their limit is checked, as for a supervisor)."""
    with transaction.atomic():
        ticket = _current_ticket(ticket_id)
        reassign_conversation(conversation_id=ticket.conversation_id, to=agent, by=by)
        ticket.refresh_from_db()
    return ticket


def change_status(*, ticket_id: int, to: str, by: Integration) -> Ticket:
    """assigned, pending_customer or resolved, along the screens' transitions (closing is the close action)."""
    with transaction.atomic():
        ticket = _current_ticket(ticket_id)
        if to == Ticket.Status.ASSIGNED and ticket.assignee_id is None:
            raise ActionRefused(_("Nobody holds this ticket: assign it to an agent."), code="no_assignee")
        return set_ticket_status(conversation_id=ticket.conversation_id, profile=by, to=to)


def note_ticket(*, ticket_id: int, text: str, by: Integration) -> TicketEvent:
    with transaction.atomic():
        ticket = _current_ticket(ticket_id)
        return add_note(conversation_id=ticket.conversation_id, profile=by, text=text)


def move_to_team(*, ticket_id: int, team: Team | None, by: Integration) -> Ticket:
    """Queue the ticket for another team (None: no team), as a supervisor does on the queue page."""
    with transaction.atomic():
        ticket = _current_ticket(ticket_id)
        return move_ticket_to_team(conversation_id=ticket.conversation_id, team=team, by=by)


def update_ticket(*, ticket_id: int, by: Integration, priority: str | None = None, subject: str | None = None,
                  tags: list[str] | None = None) -> Ticket:
    """Priority, subject and tags (what the admin's ticket form edits), in any status; the timeline
    records each change as [before, after]."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket_id)
        wanted = {"priority": priority, "subject": subject, "tags": tags}
        changes = {field: [getattr(ticket, field), value] for field, value in wanted.items()
                   if value is not None and getattr(ticket, field) != value}
        if changes:
            for field, (_before, after) in changes.items():
                setattr(ticket, field, after)
            ticket.save(update_fields=[*changes, "updated_at"])
            record_event(ticket, by, "updated", **changes)
    return ticket


def _lock(conversation_id: int) -> Conversation:
    # Rows only; tickets.services locks the same way (no join: see its _lock).
    conversation = (Conversation.objects.select_for_update(of=("self",)).select_related("contact__app")
                    .filter(pk=conversation_id).first())
    if conversation is None:
        raise Conversation.DoesNotExist(conversation_id)
    return conversation


def _current_ticket(ticket_id: int) -> Ticket:
    """The ticket, its conversation locked, if it is the one the services act on (the conversation's latest)."""
    conversation_id = Ticket.objects.filter(pk=ticket_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        raise Ticket.DoesNotExist(ticket_id)
    _lock(conversation_id)
    latest = Ticket.objects.filter(conversation_id=conversation_id).order_by("-created_at").first()
    if latest.pk != ticket_id:
        raise ActionRefused(_("A later ticket of this conversation (#%(id)d) is the current one.") % {"id": latest.pk},
                            code="not_current_ticket")
    return latest
