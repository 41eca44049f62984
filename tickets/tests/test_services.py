"""Agent actions: claim, caps, ticket transitions, hand back, close, reassign, notes, knowledge, SLA."""

from __future__ import annotations

import pytest
from django.utils import timezone, translation
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message, OutboundMessage
from conversations.services.outbound import deliver_for_contact
from kb.models import KnowledgeEntry
from testing.factories import AgentProfileFactory
from tickets import presence
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.schedule import flag_sla_breaches
from tickets.services import (
    ActionRefused,
    add_note,
    change_ticket_status,
    claim_conversation,
    close_conversation,
    hand_back_to_ai,
    promote_to_knowledge,
    reassign_conversation,
    record_delivered_first_responses,
    reoffer_waiting_tickets,
    reply_as_agent,
    set_ticket_status,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Refusal reasons are translated; these tests read the English ones."""
    with translation.override("en"):
        yield
State = Conversation.State


def events(conversation) -> list[str]:
    return list(TicketEvent.objects.filter(ticket__conversation=conversation).values_list("kind", flat=True))


def test_handoff_opens_a_ticket_with_sla_targets_and_tells_the_customer_once_when_nobody_is_online(alpha_app,
                                                                                                  handed_off):
    with schema_context("alpha"):
        conversation = handed_off(alpha_app)
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.status == Ticket.Status.OPEN and ticket.offered_to is None
        assert ticket.first_response_due_at > timezone.now() and ticket.resolution_due_at > ticket.first_response_due_at
        assert events(conversation) == ["opened", "nobody_online"]
        texts = list(OutboundMessage.objects.values_list("content", flat=True))
        assert len(texts) == 1 and "不在线" in texts[0]
        conversation.refresh_from_db()
        assert conversation.waiting_notice_sent


def test_handoff_is_offered_to_the_least_loaded_online_agent(alpha_app, handed_off):
    with schema_context("alpha"):
        busy, free, away = (AgentProfileFactory(user__username=name) for name in ("busy", "free", "away"))
        for agent in (busy, free, away):
            presence.touch(schema="alpha", user_id=agent.user_id, socket=f"s-{agent.user_id}")
        presence.set_away(schema="alpha", user_id=away.user_id, away=True)
        claim_conversation(conversation_id=handed_off(alpha_app, "c1").pk, profile=busy)
        conversation = handed_off(alpha_app, "c2")
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.offered_to_id == free.user_id
        assert "nobody_online" not in events(conversation)
        presence.set_away(schema="alpha", user_id=away.user_id, away=False)


def test_claim_reply_hand_back_resolve_close(alpha_app, handed_off, sandbox):
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        conversation = handed_off(alpha_app)
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        conversation.refresh_from_db()
        assert (conversation.state, conversation.agent_id) == (State.HUMAN, agent.user_id)

        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="您好，我来帮您处理")
        row = OutboundMessage.objects.get(author=Message.Author.AGENT)
        assert row.content == "您好，我来帮您处理" and row.idempotency_key.startswith("agent:")
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.first_responded_at is None and ticket.status == Ticket.Status.ASSIGNED  # not delivered yet
        deliver_for_contact(conversation.contact_id)
        assert record_delivered_first_responses() == 1
        ticket.refresh_from_db()
        assert ticket.first_responded_at == OutboundMessage.objects.get(author=Message.Author.AGENT).sent_at

        set_ticket_status(conversation_id=conversation.pk, profile=agent, to=Ticket.Status.PENDING_CUSTOMER)
        hand_back_to_ai(conversation_id=conversation.pk, profile=agent)
        conversation.refresh_from_db()
        assert (conversation.state, conversation.agent_id) == (State.BOT, None)
        set_ticket_status(conversation_id=conversation.pk, profile=agent, to=Ticket.Status.RESOLVED)
        close_conversation(conversation_id=conversation.pk, profile=agent)
        conversation.refresh_from_db()
        ticket.refresh_from_db()
        assert conversation.state == State.CLOSED and ticket.status == Ticket.Status.CLOSED
        assert events(conversation) == ["opened", "nobody_online", "status", "claimed", "agent_reply",
                                        "first_response_delivered", "status", "handed_back", "status", "status"]


def test_a_second_claim_is_told_who_has_it(alpha_app, handed_off):
    with schema_context("alpha"):
        first, second = AgentProfileFactory(user__username="first"), AgentProfileFactory(user__username="second")
        conversation = handed_off(alpha_app)
        claim_conversation(conversation_id=conversation.pk, profile=first)
        with pytest.raises(ActionRefused, match="Already taken by first"):
            claim_conversation(conversation_id=conversation.pk, profile=second)


def test_the_cap_is_enforced(alpha_app, handed_off):
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="capped", max_concurrent=1)
        claim_conversation(conversation_id=handed_off(alpha_app, "c1").pk, profile=agent)
        with pytest.raises(ActionRefused, match="limit"):
            claim_conversation(conversation_id=handed_off(alpha_app, "c2").pk, profile=agent)


def test_only_the_owner_or_a_supervisor_acts(alpha_app, handed_off):
    with schema_context("alpha"):
        owner, other = AgentProfileFactory(user__username="owner"), AgentProfileFactory(user__username="other")
        boss = AgentProfileFactory(user__username="boss", role=AgentProfile.Role.SUPERVISOR)
        conversation = handed_off(alpha_app)
        with pytest.raises(ActionRefused, match="claim it first"):
            reply_as_agent(conversation_id=conversation.pk, profile=owner, text="hi")
        claim_conversation(conversation_id=conversation.pk, profile=owner)
        with pytest.raises(ActionRefused, match="claim it first"):
            reply_as_agent(conversation_id=conversation.pk, profile=other, text="hi")
        with pytest.raises(ActionRefused, match="supervisor"):
            reassign_conversation(conversation_id=conversation.pk, to=other, by=owner)
        reassign_conversation(conversation_id=conversation.pk, to=other, by=boss)
        conversation.refresh_from_db()
        assert conversation.agent_id == other.user_id
        assert TicketEvent.objects.filter(kind="reassigned", actor=boss.user).exists()


def test_a_supervisor_cannot_hand_back_what_the_ai_already_answers(alpha_app, handed_off):
    with schema_context("alpha"):
        boss = AgentProfileFactory(user__username="boss", role=AgentProfile.Role.SUPERVISOR)
        conversation = handed_off(alpha_app)
        hand_back_to_ai(conversation_id=conversation.pk, profile=boss)
        with pytest.raises(ActionRefused, match="not with humans") as refused:  # a refusal, not a crash
            hand_back_to_ai(conversation_id=conversation.pk, profile=boss)
        assert refused.value.code == "not_with_humans"
        assert events(conversation).count("handed_back") == 1


def test_illegal_ticket_steps_are_refused(alpha_app, handed_off):
    with schema_context("alpha"):
        ticket = Ticket.objects.get(conversation=handed_off(alpha_app))
        with pytest.raises(ActionRefused):
            change_ticket_status(ticket=ticket, to=Ticket.Status.PENDING_CUSTOMER, actor=None)
        change_ticket_status(ticket=ticket, to=Ticket.Status.CLOSED, actor=None)
        for to in Ticket.Status.values:
            with pytest.raises(ActionRefused):
                change_ticket_status(ticket=ticket, to=to, actor=None)


def test_notes_and_promote_to_knowledge(alpha_app, handed_off):
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        conversation = handed_off(alpha_app)
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        add_note(conversation_id=conversation.pk, profile=agent, text="VIP 客户")
        with pytest.raises(ActionRefused):
            add_note(conversation_id=conversation.pk, profile=agent, text="  ")
        entry = promote_to_knowledge(conversation_id=conversation.pk, profile=agent,
                                     question="可以改收货地址吗？", answer="发货前可以在订单页修改地址。")
        assert KnowledgeEntry.objects.get(pk=entry.pk).answer == "发货前可以在订单页修改地址。"
        with pytest.raises(ActionRefused):
            promote_to_knowledge(conversation_id=conversation.pk, profile=agent, question="", answer="x")
        assert TicketEvent.objects.filter(kind="note", detail__text="VIP 客户").exists()


def test_sla_breaches_are_flagged_once(alpha_app, handed_off):
    with schema_context("alpha"):
        ticket = Ticket.objects.get(conversation=handed_off(alpha_app))
        Ticket.objects.filter(pk=ticket.pk).update(first_response_due_at=timezone.now() - timezone.timedelta(minutes=1))
        flag_sla_breaches()
        flag_sla_breaches()
        ticket.refresh_from_db()
        assert ticket.first_response_breached and not ticket.resolution_breached
        assert list(ticket.events.filter(kind="sla_breached").values_list("detail__target", flat=True)) == [
            "first_response"]


def test_waiting_tickets_are_offered_when_an_agent_comes_online(alpha_app, handed_off):
    with schema_context("alpha"):
        conversation = handed_off(alpha_app)
        assert reoffer_waiting_tickets() == 0  # still nobody online
        assert events(conversation).count("nobody_online") == 1
        agent = AgentProfileFactory(user__username="latecomer")
        presence.touch(schema="alpha", user_id=agent.user_id, socket="s1")
        assert reoffer_waiting_tickets() == 1
        assert Ticket.objects.get(conversation=conversation).offered_to_id == agent.user_id
        assert reoffer_waiting_tickets() == 0  # already offered to someone online
