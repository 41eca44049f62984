"""Reads of the conversation search on the human side: the conversation-side search (conversations/search/)
within what the reader may see (tickets.selectors.visible_conversations: supervisors everything, agents the
queue, their own and those whose ticket they hold; the REST API's callers the whole tenant, like its
conversation list), narrowed to a label, and the rows a result shows."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation, Message
from conversations.search.selectors import ConversationCriteria, search_conversations, shown_messages
from conversations.search.terms import Snippet, snippet
from tickets.labels.models import Label
from tickets.models import AgentProfile
from tickets.selectors import visible_conversations

# The agent screens' words for the states (templates/agent/_strings.html), not the model's technical ones.
STATE_LABELS = {
    Conversation.State.BOT: _("With the AI"),
    Conversation.State.WAITING_HUMAN: _("Waiting for an agent"),
    Conversation.State.HUMAN: _("With an agent"),
    Conversation.State.CLOSED: _("Closed"),
}
# ...and for the transcript's authors.
AUTHOR_LABELS = {
    Message.Author.CUSTOMER: _("Customer"),
    Message.Author.AI: _("AI"),
    Message.Author.KNOWLEDGE: _("Knowledge base"),
    Message.Author.FALLBACK: _("Fallback script"),
    Message.Author.NOTICE: _("Notice"),
    Message.Author.HANDOFF: _("Handoff"),
    Message.Author.AGENT: _("Agent"),
    Message.Author.API: _("Integration (API)"),
}


@dataclass(frozen=True, kw_only=True)
class SearchCriteria:
    conversation: ConversationCriteria
    label_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    conversation: Conversation
    customer_name: str
    customer_id: str  # the UserID or external_userid
    agent_name: str  # "" when nobody owns it
    labels: list[Label]
    message: Message | None  # the matching message shown (without a text: the latest one)
    snippet: Snippet

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS.get(self.conversation.state, self.conversation.state))

    @property
    def url(self) -> str:
        """The conversation on the agent screens (relative to the tenant)."""
        return reverse("agent-conversation", args=[self.conversation.pk])


def search(criteria: SearchCriteria, *, profile: AgentProfile | None) -> QuerySet[Conversation]:
    """The conversations matching `criteria` that `profile` may see (None: the whole tenant, for the API),
    latest message first."""
    conversations = Conversation.objects.all() if profile is None else visible_conversations(profile=profile)
    if criteria.label_id is not None:
        conversations = conversations.filter(labels__id=criteria.label_id)  # one label: one row per conversation
    return search_conversations(criteria.conversation, conversations)


def with_result_relations(conversations: QuerySet[Conversation]) -> QuerySet[Conversation]:
    return conversations.select_related("contact__app", "agent__agent_profile").prefetch_related("labels")


def agent_name(conversation: Conversation) -> str:
    if conversation.agent is None:
        return ""
    try:
        return conversation.agent.agent_profile.name
    except AgentProfile.DoesNotExist:  # an admin who is no agent took it over through the API
        return conversation.agent.get_username()


def results(conversations: list[Conversation], criteria: SearchCriteria) -> list[SearchResult]:
    """The rows of these conversations (loaded with_result_relations), each with its shown message."""
    shown = shown_messages([c.pk for c in conversations], criteria.conversation)
    words = criteria.conversation.text.words if criteria.conversation.text else ()
    found = []
    for conversation in conversations:
        message = shown.get(conversation.pk)
        found.append(SearchResult(
            conversation=conversation, customer_name=conversation.contact.display_name,
            customer_id=conversation.contact.external_id, agent_name=agent_name(conversation),
            labels=list(conversation.labels.all()), message=message,
            snippet=snippet(message.text if message else "", words)))
    return found
