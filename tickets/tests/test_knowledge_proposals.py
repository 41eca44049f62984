"""Knowledge proposals (tickets.knowledge_proposals): an agent's answer on a resolved ticket proposed as an
entry, from the real flow (customer message, answering, handoff, claim, reply, resolve); the operator's
approve (the entry is created and found by search), edit, reject, and tenant isolation."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation, DeskSettings
from conversations.services.answering import answer_contact
from kb.models import KnowledgeEntry
from kb.selectors import search_knowledge
from testing.accounts import staff_client
from testing.factories import AgentProfileFactory, FallbackScriptFactory, KnowledgeEntryFactory, WeComAppFactory
from testing.wecom import customer_says
from tickets.models import KnowledgeProposal, Ticket, TicketEvent
from tickets.services import (
    change_ticket_status,
    claim_conversation,
    close_conversation,
    promote_to_knowledge,
    reply_as_agent,
    set_ticket_status,
)

pytestmark = pytest.mark.django_db
Status = KnowledgeProposal.Status
PROPOSALS = "/t/alpha/admin/tickets/knowledgeproposal/"
QUESTION = "积分可以换手机吗"
REPLY = "积分暂时不能兑换手机，可以在会员中心兑换优惠券。"


@pytest.fixture
def desk(alpha_app, sandbox, settings):
    """Knowledge-only answering (no model) with a default fallback script."""
    settings.KB_EMBEDDINGS = "off"
    with schema_context("alpha"):
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
    return alpha_app


def says(app, text: str, user: str = "zhangsan") -> Conversation:
    """The customer writes and the pipeline answers (a fallback here, or a handoff)."""
    customer_says(app, text, user=user)
    assert answer_contact(Contact.objects.get(app=app, external_id=user)) is None
    return Conversation.objects.filter(contact__external_id=user).latest("pk")


def handed_off_after_asking(app, user: str = "zhangsan") -> Conversation:
    says(app, QUESTION, user)  # no entry: a fallback
    conversation = says(app, "转人工", user)  # the customer asks for a human
    assert conversation.state == Conversation.State.WAITING_HUMAN
    return conversation


def test_resolving_proposes_the_agents_replies_to_the_question_that_led_to_the_handoff(desk):
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        conversation = handed_off_after_asking(desk)
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text=REPLY)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="还有其他问题吗？")
        assert not KnowledgeProposal.objects.exists()

        set_ticket_status(conversation_id=conversation.pk, profile=agent, to=Ticket.Status.RESOLVED)

        proposal = KnowledgeProposal.objects.get()
        assert (proposal.question, proposal.answer) == (QUESTION, f"{REPLY}\n还有其他问题吗？")
        assert (proposal.status, proposal.agent_id, proposal.ticket.conversation_id) == (
            Status.PROPOSED, agent.user_id, conversation.pk)


def test_the_handed_off_message_is_the_question_when_it_asks_something_and_closing_proposes_too(desk):
    with schema_context("alpha"):
        DeskSettings.objects.update_or_create(pk=1, defaults={"max_consecutive_fallbacks": 1})
        agent = AgentProfileFactory(user__username="agent1")
        conversation = says(desk, "发票抬头写错了怎么办")  # its fallback is the first in a row: a handoff
        assert Ticket.objects.get(conversation=conversation).reason == Ticket.Reason.REPEATED_FALLBACKS
        says(desk, "人工")  # said while waiting: no question
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="可以在订单页重新申请开票。")

        close_conversation(conversation_id=conversation.pk, profile=agent)

        proposal = KnowledgeProposal.objects.get()
        assert (proposal.question, proposal.answer) == ("发票抬头写错了怎么办", "可以在订单页重新申请开票。")


def test_no_proposal_without_an_agent_reply_after_a_promotion_or_twice_for_one_ticket(desk):
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        silent = handed_off_after_asking(desk, "silent")
        claim_conversation(conversation_id=silent.pk, profile=agent)
        set_ticket_status(conversation_id=silent.pk, profile=agent, to=Ticket.Status.RESOLVED)

        promoted = handed_off_after_asking(desk, "promoted")
        claim_conversation(conversation_id=promoted.pk, profile=agent)
        reply_as_agent(conversation_id=promoted.pk, profile=agent, text=REPLY)
        promote_to_knowledge(conversation_id=promoted.pk, profile=agent, question=QUESTION, answer=REPLY)
        set_ticket_status(conversation_id=promoted.pk, profile=agent, to=Ticket.Status.RESOLVED)
        assert not KnowledgeProposal.objects.exists()

        twice = handed_off_after_asking(desk, "twice")
        claim_conversation(conversation_id=twice.pk, profile=agent)
        reply_as_agent(conversation_id=twice.pk, profile=agent, text=REPLY)
        ticket = Ticket.objects.get(conversation=twice)
        set_ticket_status(conversation_id=twice.pk, profile=agent, to=Ticket.Status.RESOLVED)
        change_ticket_status(ticket=Ticket.objects.get(pk=ticket.pk), to=Ticket.Status.ASSIGNED, actor=agent.user)
        set_ticket_status(conversation_id=twice.pk, profile=agent, to=Ticket.Status.RESOLVED)
        close_conversation(conversation_id=twice.pk, profile=agent)
        assert list(KnowledgeProposal.objects.values_list("ticket_id", flat=True)) == [ticket.pk]


@pytest.fixture
def proposed(desk):
    """A proposal from the real flow, in alpha."""
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        conversation = handed_off_after_asking(desk)
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text=REPLY)
        set_ticket_status(conversation_id=conversation.pk, profile=agent, to=Ticket.Status.RESOLVED)
        return KnowledgeProposal.objects.get()


@pytest.fixture
def admin_alpha(tenant_a):
    return staff_client("alpha")


def test_the_operator_edits_and_approves_and_search_finds_the_entry(proposed, admin_alpha):
    assert QUESTION in admin_alpha.get(PROPOSALS).text
    page = admin_alpha.get(f"{PROPOSALS}{proposed.pk}/change/")
    assert page.status_code == 200 and 'name="_approve"' in page.text

    response = admin_alpha.post(f"{PROPOSALS}{proposed.pk}/change/", {
        "question": "积分能兑换手机吗？", "answer": REPLY, "tags": "积分, 兑换", "_approve": "1"})

    assert response.status_code == 302 and response["Location"] == PROPOSALS
    with schema_context("alpha"):
        proposed.refresh_from_db()
        entry = KnowledgeEntry.objects.get()
        assert (entry.question, entry.answer, entry.tags) == ("积分能兑换手机吗？", REPLY, ["积分", "兑换"])
        assert (proposed.status, proposed.entry_id, proposed.question) == (Status.APPROVED, entry.pk, entry.question)
        assert proposed.decided_by.username == "kb-admin@alpha.test" and proposed.decided_at is not None
        assert TicketEvent.objects.filter(ticket=proposed.ticket, kind="knowledge_approved",
                                          detail__entry=entry.pk).exists()
        assert search_knowledge("积分怎么换手机")[0].entry == entry
    decided = admin_alpha.get(f"{PROPOSALS}{proposed.pk}/change/").text
    assert 'name="_approve"' not in decided and f"/t/alpha/admin/kb/knowledgeentry/{entry.pk}/change/" in decided


def test_an_invalid_edit_is_shown_in_the_form_and_nothing_is_approved(proposed, admin_alpha):
    response = admin_alpha.post(f"{PROPOSALS}{proposed.pk}/change/", {
        "question": "  ", "answer": REPLY, "tags": "", "_approve": "1"})
    assert response.status_code == 200 and response.context["adminform"].form.errors
    with schema_context("alpha"):
        proposed.refresh_from_db()
        assert proposed.status == Status.PROPOSED and not KnowledgeEntry.objects.exists()


def test_approving_a_question_the_knowledge_has_already_is_refused_with_the_reason(proposed, admin_alpha):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question=QUESTION, answer="旧答案")
    response = admin_alpha.post(PROPOSALS, {"action": "approve", "_selected_action": [proposed.pk]}, follow=True)
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    with schema_context("alpha"):
        proposed.refresh_from_db()
        assert proposed.status == Status.PROPOSED and KnowledgeEntry.objects.get().answer == "旧答案"


def test_approve_action_and_reject_action(proposed, admin_alpha):
    admin_alpha.post(PROPOSALS, {"action": "reject", "_selected_action": [proposed.pk]})
    with schema_context("alpha"):
        proposed.refresh_from_db()
        assert (proposed.status, proposed.entry_id) == (Status.REJECTED, None) and proposed.decided_at is not None
    admin_alpha.post(PROPOSALS, {"action": "approve", "_selected_action": [proposed.pk]})  # decided already
    with schema_context("alpha"):
        assert proposed.__class__.objects.get(pk=proposed.pk).status == Status.REJECTED
        assert not KnowledgeEntry.objects.exists()
        KnowledgeProposal.objects.filter(pk=proposed.pk).update(status=Status.PROPOSED, decided_at=None)
    admin_alpha.post(PROPOSALS, {"action": "approve", "_selected_action": [proposed.pk]})
    with schema_context("alpha"):
        assert KnowledgeProposal.objects.get(pk=proposed.pk).status == Status.APPROVED
        assert KnowledgeEntry.objects.get().question == QUESTION


def test_a_second_tenants_proposals_are_invisible_and_untouched(proposed, admin_alpha, tenant_b):
    with schema_context("beta"):
        agent = AgentProfileFactory(user__username="agent-b")
        beta_app = WeComAppFactory()
        conversation = handed_off_after_asking(beta_app, "lisi")
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="beta 的回答")
        set_ticket_status(conversation_id=conversation.pk, profile=agent, to=Ticket.Status.RESOLVED)
        beta = KnowledgeProposal.objects.get()

    assert "beta 的回答" not in admin_alpha.get(PROPOSALS).text
    admin_alpha.post(PROPOSALS, {"action": "reject", "_selected_action": [beta.pk]})

    with schema_context("beta"):
        beta.refresh_from_db()
        assert beta.status == Status.PROPOSED and not KnowledgeEntry.objects.exists()
