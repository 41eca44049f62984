"""Contacts and conversations: who is talking, which conversation is current, and its state machine."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.models import Contact, Conversation, DeskSettings, InboundMessage, Message

State = Conversation.State

# The only legal steps; anything else is refused (DESIGN.md: state changes only through services).
TRANSITIONS: dict[str, set[str]] = {
    State.BOT: {State.WAITING_HUMAN, State.CLOSED},
    State.WAITING_HUMAN: {State.HUMAN, State.BOT, State.CLOSED},
    State.HUMAN: {State.BOT, State.CLOSED},
    State.CLOSED: set(),
}


class IllegalTransition(ValueError):
    pass


def contact_for(inbound: InboundMessage) -> Contact:
    """The contact a customer message comes from (created on first contact)."""
    try:
        return Contact.objects.get_or_create(app_id=inbound.app_id, external_id=inbound.sender,
                                             open_kfid=inbound.open_kfid)[0]
    except IntegrityError:  # created concurrently
        return Contact.objects.get(app_id=inbound.app_id, external_id=inbound.sender, open_kfid=inbound.open_kfid)


def change_state(*, conversation: Conversation, to: str) -> Conversation:
    """Move a (locked) conversation to `to`, refusing illegal steps."""
    if to not in TRANSITIONS[conversation.state]:
        raise IllegalTransition(f"conversation {conversation.pk}: {conversation.state} -> {to} is not allowed")
    conversation.state = to
    fields = ["state"]
    if to == State.CLOSED:
        conversation.closed_at = timezone.now()
        fields.append("closed_at")
    if to == State.BOT:
        conversation.consecutive_fallbacks = 0
        fields.append("consecutive_fallbacks")
    conversation.save(update_fields=fields)
    return conversation


def current_conversation(*, contact: Contact, desk: DeskSettings, now=None) -> Conversation:
    """Lock and return the contact's open conversation; a bot conversation idle too long starts afresh.

    Conversations a human owns are never closed by idleness: the customer is waiting for them.
    """
    now = now or timezone.now()
    conversation = (Conversation.objects.select_for_update()
                    .filter(contact=contact).exclude(state=State.CLOSED).first())
    idle_limit = timezone.timedelta(minutes=desk.conversation_idle_minutes)
    if conversation and conversation.state == State.BOT and now - conversation.last_message_at > idle_limit:
        change_state(conversation=conversation, to=State.CLOSED)
        conversation = None
    if conversation is None:
        conversation = Conversation.objects.create(contact=contact)
    return conversation


def record_message(*, conversation: Conversation, author: str, text: str,
                   inbound: InboundMessage | None = None, origin: str = "") -> Message:
    """Add to the transcript; screens watching the conversation see it on commit (not `origin`)."""
    from tickets.realtime import conversation_changed
    from tickets.selectors import serialize_message

    message = Message.objects.create(conversation=conversation, author=author, text=text, inbound=inbound)
    conversation.last_message_at = message.created_at
    conversation.save(update_fields=["last_message_at"])
    conversation_changed(conversation.pk, {"type": "message", "message": serialize_message(message, {})},
                         origin=origin)
    return message


def recent_context(*, conversation: Conversation, turns: int, before: Message | None = None) -> list[dict]:
    """The last `turns` messages of this conversation as chat messages (never another contact's)."""
    messages = Message.objects.filter(conversation=conversation)
    if before is not None:
        messages = messages.filter(id__lt=before.id)
    recent = list(messages.order_by("-id")[:turns])[::-1]
    return [{"role": "user" if m.author == Message.Author.CUSTOMER else "assistant", "content": m.text}
            for m in recent]


@transaction.atomic
def close_conversation(*, conversation_id: int) -> Conversation:
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    return change_state(conversation=conversation, to=State.CLOSED)
