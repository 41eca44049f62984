"""Putting a label on a conversation and taking it off (agents on the conversation screen, integrators through
the API). The conversation and its active ticket carry the same labels; a change lands in the ticket's timeline
and reaches the screens watching the conversation and the queues, the way the other actions' changes do."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from conversations.models import Conversation
from conversations.realtime import conversation_changed
from tickets import realtime
from tickets.labels.models import Label
from tickets.models import AgentProfile, Ticket
from tickets.selectors import ACTIVE_TICKET
from tickets.services import ActionRefused, Actor
from tickets.services import _event as record_event

# More than this many labels on one conversation is clutter, not triage: refused.
MAX_LABELS_PER_CONVERSATION = 20


def label_conversation(*, conversation_id: int, label_id, by: Actor, origin: str = "") -> bool:
    """Put the label on the conversation and its active ticket; False when it was there already (no event)."""
    return _change(conversation_id=conversation_id, label_id=label_id, by=by, origin=origin, add=True)


def unlabel_conversation(*, conversation_id: int, label_id, by: Actor, origin: str = "") -> bool:
    """Take the label off the conversation and its active ticket; False when it was not on it (no event)."""
    return _change(conversation_id=conversation_id, label_id=label_id, by=by, origin=origin, add=False)


def _change(*, conversation_id: int, label_id, by: Actor, origin: str, add: bool) -> bool:
    label = _label(label_id)
    with transaction.atomic():
        # The services' lock order: the conversation, then its ticket.
        conversation = Conversation.objects.select_for_update(of=("self",)).filter(pk=conversation_id).first()
        if conversation is None:
            raise ActionRefused(_("Conversation not found."), code="not_found")
        ticket = Ticket.objects.select_for_update().filter(conversation=conversation,
                                                           status__in=ACTIVE_TICKET).first()
        on_conversation = label.conversations.filter(pk=conversation.pk).exists()
        if add == on_conversation:
            if ticket is not None:  # a ticket opened after the label was put on keeps in step, silently
                (label.tickets.add if add else label.tickets.remove)(ticket)
            return False
        if add:
            if conversation.labels.count() >= MAX_LABELS_PER_CONVERSATION:
                raise ActionRefused(_("A conversation carries at most %(n)d labels.")
                                    % {"n": MAX_LABELS_PER_CONVERSATION}, code="too_many_labels")
            label.conversations.add(conversation)
        else:
            label.conversations.remove(conversation)
        if ticket is not None:
            (label.tickets.add if add else label.tickets.remove)(ticket)
            record_event(ticket, by.user if isinstance(by, AgentProfile) else by,
                         "label_added" if add else "label_removed", label=label.name, color=label.color)
        conversation_changed(conversation.pk, {"type": "labels"}, origin=origin)
        realtime.queue_changed(conversation=conversation.pk, change="labels", origin=origin)
    return True


def _label(label_id) -> Label:
    try:
        label = Label.objects.filter(pk=int(label_id)).first()
    except (TypeError, ValueError):
        label = None
    if label is None:
        raise ActionRefused(_("No such label."), code="no_such_label")
    return label
