"""Contacts and conversations: who is talking, which conversation is current, and its state machine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import connection, transaction
from django.utils import timezone

from conversations.models import Contact, Conversation, DeskSettings, InboundMessage, Message, WeComApp
from conversations.realtime import conversation_changed
from conversations.selectors import serialize_message
from conversations.services.bulk import save_fields
from conversations.services.webhooks import EventType, conversation_data, emit

State = Conversation.State

# The only legal steps; anything else is refused (docs/DESIGN_RULES.md: writes go through services).
TRANSITIONS: dict[str, set[str]] = {
    State.BOT: {State.WAITING_HUMAN, State.CLOSED},
    State.WAITING_HUMAN: {State.HUMAN, State.BOT, State.CLOSED},
    State.HUMAN: {State.BOT, State.CLOSED},
    State.CLOSED: set(),
}


class IllegalTransition(ValueError):
    pass


ContactKey = tuple[int, str, str]  # app id, external id, open_kfid (empty for a self-built app)
T = TypeVar("T")


def contact_key(inbound: InboundMessage) -> ContactKey:
    return inbound.app_id, inbound.sender, inbound.open_kfid


def contact_for(inbound: InboundMessage) -> Contact:
    """The contact a customer message comes from (created on first contact)."""
    return contacts_for([inbound])[contact_key(inbound)]


def contacts_for(inbounds: list[InboundMessage]) -> dict[ContactKey, Contact]:
    """The contacts these messages come from, by contact_key, with their apps (created on first contact)."""
    found = _created_if_missing({contact_key(inbound) for inbound in inbounds}, _contacts_by_key)
    apps = WeComApp.objects.in_bulk({contact.app_id for contact in found.values()})
    for contact in found.values():
        contact.app = apps[contact.app_id]
    return found


def contact_ids_for(keys: Iterable[ContactKey]) -> dict[ContactKey, int]:
    """The ids of the contacts with these keys (created on first contact), without building their rows."""
    return _created_if_missing(keys, _contact_ids_by_key)


def _created_if_missing(keys: Iterable[ContactKey], lookup: Callable[[list[ContactKey]], dict[ContactKey, T]]
                        ) -> dict[ContactKey, T]:
    keys = list(dict.fromkeys(keys))
    found = lookup(keys)
    missing = [Contact(app_id=app_id, external_id=external_id, open_kfid=open_kfid)
               for app_id, external_id, open_kfid in keys if (app_id, external_id, open_kfid) not in found]
    if missing:  # first contact; a concurrent creator may win the race, so read them back
        Contact.objects.bulk_create(missing, ignore_conflicts=True)
        found = lookup(keys)
    return found


# One join against the keys as arrays: an OR of a condition per key costs the ORM ~0.1 ms each.
_JOIN_KEYS = (f"FROM {Contact._meta.db_table} c "
              "JOIN unnest(%s::int[], %s::text[], %s::text[]) AS k(app_id, external_id, open_kfid) "
              "ON c.app_id = k.app_id AND c.external_id = k.external_id AND c.open_kfid = k.open_kfid")


def _key_columns(keys: list[ContactKey]) -> list[list]:
    return [list(column) for column in zip(*keys, strict=True)]


def _contacts_by_key(keys: list[ContactKey]) -> dict[ContactKey, Contact]:
    contacts = Contact.objects.raw(f"SELECT c.* {_JOIN_KEYS}", _key_columns(keys))  # noqa: S608 - no input in it
    return {(c.app_id, c.external_id, c.open_kfid): c for c in contacts}


def _contact_ids_by_key(keys: list[ContactKey]) -> dict[ContactKey, int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT c.app_id, c.external_id, c.open_kfid, c.id {_JOIN_KEYS}",  # noqa: S608 - as above
                       _key_columns(keys))
        return {(app_id, external_id, open_kfid): pk for app_id, external_id, open_kfid, pk in cursor.fetchall()}


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
    if to == State.CLOSED:
        emit(event=EventType.CONVERSATION_CLOSED, data=lambda: conversation_data(conversation))
    return conversation


def current_conversation(*, contact: Contact, desk: DeskSettings, now=None) -> Conversation:
    """Lock and return the contact's open conversation (see current_conversations)."""
    return current_conversations(contacts=[contact], desk=desk, now=now)[contact.pk]


def current_conversations(*, contacts: list[Contact], desk: DeskSettings, now=None) -> dict[int, Conversation]:
    """Lock and return each contact's open conversation, by contact id; a bot conversation idle
    too long is closed and the contact starts afresh.

    Conversations a human owns are never closed by idleness: the customer is waiting for them.
    """
    now = now or timezone.now()
    idle_limit = timezone.timedelta(minutes=desk.conversation_idle_minutes)
    found = {conversation.contact_id: conversation for conversation in
             Conversation.objects.select_for_update().filter(contact__in=contacts)
             .exclude(state=State.CLOSED).order_by("contact_id")}
    fresh = []
    for contact in contacts:
        conversation = found.get(contact.pk)
        if conversation and conversation.state == State.BOT and now - conversation.last_message_at > idle_limit:
            change_state(conversation=conversation, to=State.CLOSED)
            conversation = None
        if conversation is None:
            found[contact.pk] = conversation = Conversation(contact=contact)
            fresh.append(conversation)
    Conversation.objects.bulk_create(fresh)
    return found


MEDIA_PLACEHOLDERS = {"image": "[图片]", "voice": "[语音]", "video": "[视频]", "file": "[文件]", "location": "[位置]",
                      "link": "[链接]"}


def customer_text(inbound: InboundMessage) -> str:
    """The text of an inbound message as the transcript shows it (a placeholder for media)."""
    if inbound.msg_type == "text":
        return inbound.content
    return MEDIA_PLACEHOLDERS.get(inbound.msg_type, f"[{inbound.msg_type}]")


@dataclass(frozen=True, kw_only=True)
class TranscriptLine:
    """A message to add to a conversation's transcript (`inbound`: the customer message it records)."""

    conversation: Conversation
    author: Message.Author
    text: str
    inbound: InboundMessage | None = None
    entry_id: int | None = None  # an answer's knowledge entry
    sensitive_words: list[str] = field(default_factory=list)  # a customer's (services/sensitive_words.py)



def record_message(*, conversation: Conversation, author: Message.Author, text: str,
                   inbound: InboundMessage | None = None, origin: str = "") -> Message:
    """Add to the transcript; screens watching the conversation see it on commit (not `origin`)."""
    line = TranscriptLine(conversation=conversation, author=author, text=text, inbound=inbound)
    return record_messages([line], origin=origin)[0]


def record_messages(lines: list[TranscriptLine], *, origin: str = "") -> list[Message]:
    """Add lines to transcripts, one INSERT for all of them."""
    messages = Message.objects.bulk_create([
        Message(conversation=line.conversation, author=line.author, text=line.text, inbound=line.inbound,
                knowledge_entry_id=line.entry_id, sensitive_words=line.sensitive_words)
        for line in lines])
    conversations = {}
    for message, line in zip(messages, lines, strict=True):
        conversation = line.conversation
        conversation.last_message_at = message.created_at
        conversations[conversation.pk] = conversation
        conversation_changed(conversation.pk, lambda message=message: {
            "type": "message", "message": serialize_message(message, {})}, origin=origin)
    save_fields(conversations.values(), ["last_message_at"])
    return messages


def recent_context(*, conversation: Conversation, turns: int, before: Message | None = None) -> list[dict]:
    """The last `turns` messages of this conversation as chat messages (never another contact's)."""
    messages = Message.objects.filter(conversation=conversation)
    if before is not None:
        messages = messages.filter(id__lt=before.id)
    recent = list(messages.order_by("-id")[:turns])[::-1]
    return [{"role": "user" if m.author == Message.Author.CUSTOMER else "assistant", "content": m.text}
            for m in recent]


_RECENT_SQL = """
SELECT id, conversation_id, author, text FROM (
    SELECT m.id, m.conversation_id, m.author, m.text,
           row_number() OVER (PARTITION BY m.conversation_id ORDER BY m.id DESC) AS recency
    FROM {table} m
    JOIN unnest(%s::bigint[], %s::bigint[]) AS b(conversation_id, before_id)
      ON m.conversation_id = b.conversation_id AND m.id < b.before_id
) recent
WHERE recency <= %s
ORDER BY id
"""


def recent_contexts(*, turns: int, before: list[Message]) -> dict[int, list[dict]]:
    """recent_context() for many conversations in one query, by the id of the message each precedes."""
    by_conversation: dict[int, list[dict]] = {message.conversation_id: [] for message in before}
    if turns and before:
        # The (conversation, message) pairs as arrays: an OR of a condition per pair cost the ORM more
        # to compile than the query takes to run.
        recent = Message.objects.raw(_RECENT_SQL.format(table=Message._meta.db_table),
                                     [[m.conversation_id for m in before], [m.pk for m in before], turns])
        for m in recent:
            by_conversation[m.conversation_id].append(
                {"role": "user" if m.author == Message.Author.CUSTOMER else "assistant", "content": m.text})
    return {message.pk: by_conversation[message.conversation_id] for message in before}


@transaction.atomic
def close_conversation(*, conversation_id: int) -> Conversation:
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    return change_state(conversation=conversation, to=State.CLOSED)
