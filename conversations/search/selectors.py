"""Reads of the conversation search: the tenant's conversations matching the conversation-side criteria (message
text, customer, agent, state, channel, app, period), and the message of each that a result shows. Labels and the
agents' access rules are applied on top by the human side (tickets/search/selectors.py); the REST API's
conversation list uses the same text match (conversations/api/resource_filters.py), so both always agree.

A message matches a text when its index entry holds every word of it (the GIN index, conversations/search/
terms.py) or, for the messages after the index's watermark (not indexed yet, conversations/search/indexing.py),
when it contains every word as a substring (case-insensitive). Every query runs in the tenant's schema.

Results are ordered by recency (the conversation's latest message first), not by relevance: every result holds
every word already, and agents look for a recent case far more often than for the "best" one; recency also
keeps pages and the CSV export stable while a search is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.search import SearchQuery
from django.db.models import Q, QuerySet

from conversations.models import Conversation, Message, WeComApp
from conversations.search.indexing import indexed_up_to
from conversations.search.models import MessageSearchEntry
from conversations.search.terms import SearchText

ORDERING = ("-last_message_at", "-id")


@dataclass(frozen=True, kw_only=True)
class ConversationCriteria:
    text: SearchText | None = None
    customer: str = ""  # part of the display name or of the UserID / external_userid
    agent_id: int | None = None  # the user who owns (or last owned) the conversation
    state: str = ""
    channel: str = ""  # WeComApp.Kind: app (a self-built app's member) or kf (a 微信客服 customer)
    app_id: int | None = None
    active_from: datetime | None = None  # aware; the conversation had a message at or after it...
    active_until: datetime | None = None  # ...and before this (with text: the matching message did)


def _in_period(field: str, criteria: ConversationCriteria) -> Q:
    period = Q()
    if criteria.active_from is not None:
        period &= Q(**{f"{field}__gte": criteria.active_from})
    if criteria.active_until is not None:
        period &= Q(**{f"{field}__lt": criteria.active_until})
    return period


def _indexed(text: SearchText, period: Q) -> QuerySet[MessageSearchEntry]:
    return MessageSearchEntry.objects.filter(period, vector=SearchQuery(text.tsquery(), config="simple",
                                                                        search_type="raw"))


def _not_indexed(text: SearchText, period: Q, *, watermark: int) -> QuerySet[Message]:
    contains = Q()
    for word in text.words:
        contains &= Q(text__icontains=word)
    return Message.objects.filter(period, contains, pk__gt=watermark)


def with_text(text: SearchText, *, active_from: datetime | None = None,
              active_until: datetime | None = None) -> Q:
    """Conversations (a Q on Conversation) with a message matching `text`, in the period when one is given."""
    criteria = ConversationCriteria(active_from=active_from, active_until=active_until)
    watermark = indexed_up_to()
    return (Q(pk__in=_indexed(text, _in_period("created_at", criteria)).values("conversation_id"))
            | Q(pk__in=_not_indexed(text, _in_period("created_at", criteria), watermark=watermark)
                .values("conversation_id")))


def search_conversations(criteria: ConversationCriteria,
                         conversations: QuerySet[Conversation] | None = None) -> QuerySet[Conversation]:
    """`conversations` (default: all of the tenant's) narrowed to the criteria, latest message first."""
    found = Conversation.objects.all() if conversations is None else conversations
    if criteria.text is not None:
        found = found.filter(with_text(criteria.text, active_from=criteria.active_from,
                                       active_until=criteria.active_until))
    if criteria.customer:
        found = found.filter(Q(contact__display_name__icontains=criteria.customer)
                             | Q(contact__external_id__icontains=criteria.customer))
    if criteria.agent_id is not None:
        found = found.filter(agent_id=criteria.agent_id)
    if criteria.state:
        found = found.filter(state=criteria.state)
    if criteria.channel == WeComApp.Kind.APP:
        found = found.filter(contact__open_kfid="")
    elif criteria.channel == WeComApp.Kind.KF:
        found = found.exclude(contact__open_kfid="")
    if criteria.app_id is not None:
        found = found.filter(contact__app_id=criteria.app_id)
    # Active in the period: started before its end, last message at or after its start.
    if criteria.active_until is not None:
        found = found.filter(started_at__lt=criteria.active_until)
    if criteria.active_from is not None:
        found = found.filter(last_message_at__gte=criteria.active_from)
    return found.order_by(*ORDERING)


def shown_messages(conversation_ids: list[int], criteria: ConversationCriteria) -> dict[int, Message]:
    """{conversation id: the message its result shows}: its latest message matching the text (in the period),
    or without a text its latest message. Two or three queries for any number of conversations."""
    if not conversation_ids:
        return {}
    period = _in_period("created_at", criteria)
    if criteria.text is None:
        latest = (Message.objects.filter(period, conversation_id__in=conversation_ids)
                  .order_by("conversation_id", "-id").distinct("conversation_id").values_list("conversation_id", "id"))
        chosen = dict(latest)
    else:
        watermark = indexed_up_to()
        indexed = (_indexed(criteria.text, period).filter(conversation_id__in=conversation_ids)
                   .order_by("conversation_id", "-message_id").distinct("conversation_id")
                   .values_list("conversation_id", "message_id"))
        recent = (_not_indexed(criteria.text, period, watermark=watermark)
                  .filter(conversation_id__in=conversation_ids)
                  .order_by("conversation_id", "-id").distinct("conversation_id").values_list("conversation_id", "id"))
        chosen = dict(indexed)
        for conversation_id, message_id in recent:  # after the watermark: newer than any indexed one
            chosen[conversation_id] = message_id
    messages = Message.objects.in_bulk(list(chosen.values()))
    return {conversation_id: messages[message_id] for conversation_id, message_id in chosen.items()
            if message_id in messages}
