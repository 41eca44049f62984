"""The human side's webhook events: ticket.created and ticket.updated, emitted with the ticket's timeline
event, in the same transaction (conversations/services/webhooks.py owns emitting and delivery)."""

from __future__ import annotations

from conversations.services.webhooks import EventType, contact_data, emit
from tickets.models import Ticket

# Timeline events that are not a change of the ticket itself: who was offered it, replies (message.answered
# tells those, and a reply refused for its sensitive words was never one), SLA bookkeeping and WeCom's answers
# to our session calls; a handoff outside business hours (the ticket waits for the opening).
NOT_AN_UPDATE = frozenset({"offered", "nobody_online", "off_hours", "agent_reply", "first_response_delivered",
                           "kf_state_failed", "promoted_to_knowledge", "reply_refused_sensitive"})
OPENED = "opened"


def ticket_data(ticket: Ticket) -> dict:
    return {"ticket_id": ticket.pk, "conversation_id": ticket.conversation_id,
            "contact": contact_data(ticket.conversation.contact),
            "status": ticket.status, "priority": ticket.priority, "reason": ticket.reason, "subject": ticket.subject,
            "assignee_id": ticket.assignee_id, "tags": list(ticket.tags),
            "created_at": ticket.created_at.isoformat() if ticket.created_at else None}


def emit_ticket_event(*, ticket: Ticket, kind: str, detail: dict) -> None:
    """ticket.created for the timeline's "opened"; ticket.updated with the change (`kind`, its detail)."""
    if kind == OPENED:
        emit(event=EventType.TICKET_CREATED, data=lambda: ticket_data(ticket))
    elif kind not in NOT_AN_UPDATE:
        emit(event=EventType.TICKET_UPDATED, data=lambda: {**ticket_data(ticket), "change": kind,
                                                           "detail": _plain(detail)})


def _plain(detail: dict) -> dict:
    """The timeline's detail as JSON: ids, names, texts and lists of them ([before, after] of an edit) as they
    are; anything else as text."""
    return {str(key): _json_value(value) for key, value in detail.items()}


def _json_value(value):
    if isinstance(value, str | int | float | bool | None):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)
