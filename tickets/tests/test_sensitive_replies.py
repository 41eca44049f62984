"""An agent's reply containing a sensitive word (conversations/services/sensitive_words.py) is never sent: the
agent is told which words, the ticket's timeline keeps the refusal, nothing reaches the ledger; the same reply
without the word goes out."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import Message, OutboundMessage
from conversations.services import sensitive_words
from testing.factories import AgentProfileFactory
from tickets.models import TicketEvent
from tickets.services import ActionRefused, claim_conversation, reply_as_agent

pytestmark = pytest.mark.django_db


def test_an_agents_reply_with_a_sensitive_word_is_refused_with_the_words_named(
        alpha_app, handed_off, redis_client, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True):
            sensitive_words.add_words(["内部价"])
        agent = AgentProfileFactory(user__username="agent1")
        conversation = handed_off(alpha_app)
        claim_conversation(conversation_id=conversation.pk, profile=agent)

        with pytest.raises(ActionRefused) as refused:
            reply_as_agent(conversation_id=conversation.pk, profile=agent, text="给您内部价，私下刷单返现")

        assert refused.value.code == "sensitive_words"
        assert str(refused.value) == "未发送：回复中含有敏感词（内部价、刷单）。"
        assert not OutboundMessage.objects.filter(author=Message.Author.AGENT).exists()
        assert not Message.objects.filter(author=Message.Author.AGENT).exists()
        event = TicketEvent.objects.get(kind="reply_refused_sensitive")
        assert (event.actor_id, event.detail) == (agent.user_id, {"words": ["内部价", "刷单"]})

        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="给您申请一个优惠")
        assert OutboundMessage.objects.get(author=Message.Author.AGENT).content == "给您申请一个优惠"
