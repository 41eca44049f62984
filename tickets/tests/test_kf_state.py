"""微信客服 session state follows the humans: take → 3 (with the servicer), hand back → 1, close → 4;
a transition WeCom refuses (95016) is shown in the timeline and on the screen, not ignored."""

import pytest
from django_tenants.utils import schema_context

from conversations.models import DeskSettings
from conversations.services.handoff import hand_off_to_human
from testing.factories import AgentProfileFactory, ConversationFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from tickets.actors import sync_kf_session_state
from tickets.models import Ticket, TicketEvent
from tickets.services import KF_STATE_AI, KF_STATE_ENDED, KF_STATE_HUMAN

pytestmark = pytest.mark.django_db
CUSTOMER = "wmCustomer42"


@pytest.fixture
def kf_conversation(tenant_a, sandbox):
    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, CUSTOMER, "我要找人工", notify=False)  # opens the WeCom session
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=WeComAppFactory(kind="kf"), contact__external_id=CUSTOMER)
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        yield conversation, Ticket.objects.get(conversation=conversation)


def wecom_state(sandbox) -> dict:
    return sandbox.kf_session(CORP_ID, OPEN_KFID, CUSTOMER)


def test_session_state_follows_take_hand_back_and_close(kf_conversation, sandbox):
    conversation, ticket = kf_conversation
    with schema_context("alpha"):
        AgentProfileFactory(user__username="servicer")
        sync_kf_session_state(conversation.pk, ticket.pk, KF_STATE_HUMAN, "servicer1")
        state = wecom_state(sandbox)
        assert (state["service_state"], state["servicer_userid"]) == (3, "servicer1")
        sync_kf_session_state(conversation.pk, ticket.pk, KF_STATE_ENDED, "")
        assert wecom_state(sandbox)["service_state"] == 4
        kinds = list(TicketEvent.objects.filter(ticket=ticket).values_list("kind", "detail__state"))
        assert ("kf_state", 3) in kinds and ("kf_state", 4) in kinds


def test_a_refused_transition_is_recorded_and_shown(kf_conversation, sandbox):
    conversation, ticket = kf_conversation
    with schema_context("alpha"):
        sync_kf_session_state(conversation.pk, ticket.pk, KF_STATE_ENDED, "")
        sync_kf_session_state(conversation.pk, ticket.pk, KF_STATE_AI, "")  # 4 -> 1 is not allowed
        failed = TicketEvent.objects.get(ticket=ticket, kind="kf_state_failed")
        assert failed.detail["errcode"] == 95016 and failed.detail["state"] == KF_STATE_AI
    assert wecom_state(sandbox)["service_state"] == 4
