"""微信客服 session rules with our own agents: the WeCom session stays with the API (state 0/1) while
the agent screens handle the conversation, so every agent reply goes out through kf/send_msg;
handing back needs no transition; closing ends the session (4) and says goodbye with WeCom's code.
The sandbox refuses exactly what WeCom refuses (95018 for sends in 2/3/4, 95016 for illegal steps)."""

import pytest
from django_tenants.utils import schema_context

from conversations.models import DeskSettings, Message, OutboundMessage
from conversations.services.outbound import deliver_for_contact
from testing.factories import AgentProfileFactory
from testing.vectors import CORP_ID, OPEN_KFID
from tickets.models import Ticket, TicketEvent
from tickets.services import (
    ActionRefused,
    claim_conversation,
    close_conversation,
    end_kf_session,
    hand_back_to_ai,
    reply_as_agent,
)

pytestmark = pytest.mark.django_db
CUSTOMER = "wmCustomer42"
Status = OutboundMessage.Status


@pytest.fixture
def kf_conversation(kf_handed_off):
    with schema_context("alpha"):
        conversation = kf_handed_off(CUSTOMER)
        yield conversation, Ticket.objects.get(conversation=conversation)


def wecom_state(sandbox) -> int:
    return sandbox.kf_session(CORP_ID, OPEN_KFID, CUSTOMER)["service_state"]


def received(sandbox) -> list[str]:
    return sandbox.received_texts(CUSTOMER)


def test_the_agents_reply_reaches_the_customer_and_the_session_stays_with_the_api(kf_conversation, sandbox):
    conversation, ticket = kf_conversation
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="您好，我是客服小王")
        deliver_for_contact(conversation.contact_id)

        row = OutboundMessage.objects.get(author=Message.Author.AGENT)
        assert (row.status, row.last_errcode) == (Status.SENT, None)
        assert received(sandbox)[-1] == "您好，我是客服小王"
        assert wecom_state(sandbox) in (0, 1)  # never moved to the pool (2) or a WeCom servicer (3)

        hand_back_to_ai(conversation_id=conversation.pk, profile=agent)
        assert wecom_state(sandbox) in (0, 1)
        assert not TicketEvent.objects.filter(ticket=ticket, kind="kf_state_failed").exists()


def test_closing_ends_the_session_and_says_goodbye_with_the_code_wecom_returns(kf_conversation, sandbox):
    conversation, ticket = kf_conversation
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        close_conversation(conversation_id=conversation.pk, profile=agent)
        # Not in the close itself: kf/send_msg is refused once the session ends; the job ends it and
        # sends the goodbye with the code WeCom returns for that.
        assert not OutboundMessage.objects.filter(idempotency_key__startswith="closing:").exists()

        end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)  # what the job runs
        deliver_for_contact(conversation.contact_id)

        assert wecom_state(sandbox) == 4
        goodbye = OutboundMessage.objects.get(idempotency_key=f"closing:{ticket.pk}:1")
        assert goodbye.event_code and goodbye.status == Status.SENT
        assert received(sandbox)[-1] == DeskSettings.current().closing_message

        end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)  # redelivered: nothing twice
        assert OutboundMessage.objects.filter(idempotency_key__startswith="closing:").count() == 1
        assert TicketEvent.objects.filter(ticket=ticket, kind="kf_session_ended").count() == 1


def test_wecom_refusing_to_end_the_session_is_recorded_and_nothing_is_sent(kf_conversation, sandbox):
    conversation, ticket = kf_conversation
    sandbox.set_kf_session(CORP_ID, OPEN_KFID, CUSTOMER, service_state=4)  # WeCom ended it already (48 h)
    with schema_context("alpha"):
        end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)
        failed = TicketEvent.objects.get(ticket=ticket, kind="kf_state_failed")
        assert failed.detail["errcode"] == 95016 and failed.detail["state"] == 4
        assert not OutboundMessage.objects.filter(idempotency_key__startswith="closing:").exists()


def test_the_sandbox_refuses_sends_while_a_wecom_servicer_holds_the_session(kf_conversation, sandbox):
    # What went wrong before: the handoff moved the session to the pool (2), so every reply died with 95018.
    conversation, _ = kf_conversation
    sandbox.set_kf_session(CORP_ID, OPEN_KFID, CUSTOMER, service_state=2)
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="在吗")
        deliver_for_contact(conversation.contact_id)
        row = OutboundMessage.objects.get(author=Message.Author.AGENT)
        assert (row.status, row.last_errcode) == (Status.DEAD, 95018)


def test_a_reply_wecom_would_refuse_is_refused_up_front_with_the_reason(kf_conversation, sandbox):
    conversation, _ = kf_conversation
    with schema_context("alpha"):
        agent = AgentProfileFactory(user__username="agent1")
        claim_conversation(conversation_id=conversation.pk, profile=agent)
        for _ in range(4):  # with the handoff message, the customer's 5 replies are used up
            reply_as_agent(conversation_id=conversation.pk, profile=agent, text="好的")
        before = OutboundMessage.objects.count()
        with pytest.raises(ActionRefused, match="最多允许回复 5 条"):
            reply_as_agent(conversation_id=conversation.pk, profile=agent, text="还有一条")
        assert OutboundMessage.objects.count() == before
        assert not Message.objects.filter(text="还有一条").exists()
