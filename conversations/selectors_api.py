"""Reads of the REST API's resources (conversations/api/resources.py and friends): the tenant's contacts,
conversations, transcript lines, inbound messages and WeCom apps. The schema is the tenant, so every query
here sees only the current tenant's rows; an `access_*` gives the same None for missing and for another
tenant's id, so ids cannot be probed across tenants."""

from __future__ import annotations

from django.db.models import Case, CharField, OuterRef, QuerySet, Subquery, Value, When

from conversations.models import Contact, Conversation, InboundMessage, Message, WeComApp
from conversations.selectors import message_deliveries, message_media, serialize_message

BIGINT_MAX = 2**63 - 1
LATEST_MESSAGES = 20  # transcript lines a conversation's detail carries (the rest: its messages endpoint)


def _channel(open_kfid: str) -> Case:
    """`kf` for a 微信客服 customer (the contact has an open_kfid), `app` for a self-built app's member."""
    return Case(When(**{open_kfid: ""}, then=Value(WeComApp.Kind.APP.value)), default=Value(WeComApp.Kind.KF.value),
                output_field=CharField())


def contacts() -> QuerySet[Contact]:
    """Contacts with their app, channel and the id of their open conversation (null when none is open)."""
    open_conversation = (Conversation.objects.filter(contact=OuterRef("pk"))
                         .exclude(state=Conversation.State.CLOSED).values("pk")[:1])
    return Contact.objects.select_related("app").annotate(open_conversation_id=Subquery(open_conversation),
                                                          channel=_channel("open_kfid"))


def access_contact(pk) -> Contact | None:
    return _access(contacts(), pk)


def conversations() -> QuerySet[Conversation]:
    return Conversation.objects.select_related("contact__app", "agent").annotate(
        channel=_channel("contact__open_kfid"))


def transcript(conversation_id: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id)


def inbound_messages() -> QuerySet[InboundMessage]:
    return InboundMessage.objects.select_related("app")


def wecom_apps() -> QuerySet[WeComApp]:
    return WeComApp.objects.all()


def _access(queryset: QuerySet, pk):
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    if not 0 < pk <= BIGINT_MAX:
        return None
    return queryset.filter(pk=pk).first()


def access_conversation(pk) -> Conversation | None:
    return _access(conversations(), pk)


def transcript_lines(messages) -> list[dict]:
    """Transcript lines as the agent screens show them (delivery state, media), plus their conversation;
    three queries for any number of lines."""
    messages = list(messages)
    deliveries = message_deliveries(m.pk for m in messages)
    media = message_media(messages)
    return [{**serialize_message(m, deliveries, media), "conversation": m.conversation_id} for m in messages]


def latest_lines(conversation: Conversation, *, n: int = LATEST_MESSAGES) -> list[dict]:
    """The conversation's last `n` transcript lines, oldest first."""
    return transcript_lines(reversed(transcript(conversation.pk).order_by("-id")[:n]))
