"""WeCom servicers mode (docs/KF_SESSIONS.md): the company's staff answer in the WeCom client. A handoff
delivers the handoff message first and only then moves the WeCom session to the servicer mapped to the
offered agent (3) or to WeCom's pool (2); the agent screens only watch; the servicers' messages join the
transcript; the ticket follows WeCom's session_status_change events. Accounts without the mode are
covered unchanged by test_kf_state.py."""

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, InboundMessage, Message, OutboundMessage, WeComApp
from conversations.services.handoff import hand_off_to_human, handoff_delivered
from conversations.services.inbound import record_kf_message
from conversations.services.kf_events import handle_kf_event
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.outbound import deliver_for_contact
from testing.accounts import login_cookie
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import AgentProfileFactory, ConversationFactory, InboundMessageFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.selectors import conversation_summary
from tickets.services import ActionRefused, claim_conversation, reply_as_agent

pytestmark = pytest.mark.django_db
CUSTOMER = "wmServicers7"
HANDED_OFF = "conversations.kf_handoff_delivered"


def wecom_session(sandbox) -> dict:
    return sandbox.kf_session(CORP_ID, OPEN_KFID, CUSTOMER)


@pytest.fixture
def servicers_conversation(tenant_a, sandbox):
    """hand_off(servicer=...): a servicers-mode conversation handed off, offered to an agent with that
    WeCom UserID (none: offered to nobody); the handoff message not yet delivered."""
    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, CUSTOMER, "转人工", notify=False)  # opens the WeCom session
    flush_test_broker()  # jobs an earlier test left on the queues are not this test's

    def hand_off(servicer: str | None = None) -> tuple[Conversation, Ticket]:
        app = WeComAppFactory(kind="kf", servicers_mode=True)
        conversation = ConversationFactory(contact__app=app, contact__external_id=CUSTOMER)
        InboundMessageFactory(app=app, sender=CUSTOMER, open_kfid=OPEN_KFID, origin=3, content="转人工",
                              sent_at=timezone.now(), status=InboundMessage.Status.PROCESSED)
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        ticket = Ticket.objects.get(conversation=conversation)
        if servicer is not None:
            agent = AgentProfileFactory(user__username=f"agent-{servicer}", wecom_userid=servicer)
            Ticket.objects.filter(pk=ticket.pk).update(offered_to=agent.user)
        return conversation, ticket

    with schema_context("alpha"):
        yield hand_off


def test_the_handoff_message_goes_out_first_then_the_session_goes_to_the_mapped_servicer(
        servicers_conversation, sandbox, django_capture_on_commit_callbacks):
    sandbox.set_kf_servicers(CORP_ID, OPEN_KFID, {"lisi": True})  # a servicer of the account, receiving
    conversation, ticket = servicers_conversation(servicer="lisi")
    assert not queued_jobs("outbound", actor_name=HANDED_OFF)  # nothing moves before the message is out
    with django_capture_on_commit_callbacks(execute=True):
        deliver_for_contact(conversation.contact_id)
    handoff_row = OutboundMessage.objects.get(conversation=conversation, author=Message.Author.HANDOFF)
    assert handoff_row.status == OutboundMessage.Status.SENT
    assert sandbox.received_texts(CUSTOMER)[-1].startswith(DeskSettings.current().handoff_message)
    assert wecom_session(sandbox)["service_state"] in (0, 1)  # still with the API while it was sent
    assert len(queued_jobs("outbound", actor_name=HANDED_OFF)) == 1

    handoff_delivered(conversation_id=conversation.pk)  # what the job runs
    assert (wecom_session(sandbox)["service_state"], wecom_session(sandbox)["servicer_userid"]) == (3, "lisi")
    moved = TicketEvent.objects.get(ticket=ticket, kind="kf_transferred")
    assert moved.detail == {"state": 3, "servicer": "lisi"}

    handoff_delivered(conversation_id=conversation.pk)  # redelivered job: no second transfer
    assert TicketEvent.objects.filter(ticket=ticket, kind="kf_transferred").count() == 1


def test_without_a_mapped_servicer_the_session_goes_to_the_pool(servicers_conversation, sandbox):
    conversation, ticket = servicers_conversation()
    deliver_for_contact(conversation.contact_id)
    handoff_delivered(conversation_id=conversation.pk)
    assert wecom_session(sandbox)["service_state"] == 2
    assert TicketEvent.objects.get(ticket=ticket, kind="kf_transferred").detail == {"state": 2, "servicer": ""}


@pytest.mark.parametrize(("servicers", "errcode"), [
    ({}, 95014),  # wangwu is no servicer of the account
    ({"wangwu": False}, 95019),  # a servicer, but not receiving
    ({"wangwu": True}, 95016),  # WeCom refuses the step itself (the session moved meanwhile): a fault
])
def test_a_refused_servicer_falls_back_to_the_pool_and_the_timeline_says_why(servicers_conversation, sandbox,
                                                                            servicers, errcode):
    sandbox.set_kf_servicers(CORP_ID, OPEN_KFID, servicers)
    conversation, ticket = servicers_conversation(servicer="wangwu")
    deliver_for_contact(conversation.contact_id)
    if errcode == 95016:
        sandbox.inject_fault("kf/service_state/trans", corp_id=CORP_ID, errcode=errcode)
    handoff_delivered(conversation_id=conversation.pk)
    assert wecom_session(sandbox)["service_state"] == 2
    refused = TicketEvent.objects.get(ticket=ticket, kind="kf_state_failed")
    assert (refused.detail["state"], refused.detail["servicer"], refused.detail["errcode"]) == (3, "wangwu", errcode)
    assert TicketEvent.objects.get(ticket=ticket, kind="kf_transferred").detail["state"] == 2


def test_an_account_without_the_mode_never_leaves_the_api(tenant_a, sandbox, handed_off,
                                                           django_capture_on_commit_callbacks):
    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, CUSTOMER, "转人工", notify=False)
    flush_test_broker()
    with schema_context("alpha"):
        conversation = handed_off(WeComAppFactory(kind="kf"), user=CUSTOMER)
        InboundMessageFactory(app=conversation.contact.app, sender=CUSTOMER, open_kfid=OPEN_KFID, origin=3,
                              sent_at=timezone.now(), status=InboundMessage.Status.PROCESSED)
        with django_capture_on_commit_callbacks(execute=True):
            deliver_for_contact(conversation.contact_id)
        assert not queued_jobs("outbound", actor_name=HANDED_OFF)
        handoff_delivered(conversation_id=conversation.pk)  # even if called: not in the mode, nothing moves
        assert wecom_session(sandbox)["service_state"] in (0, 1)
        assert conversation_summary(conversation)["servicers_mode"] is False


def test_the_agent_screens_are_read_only_with_the_reason(servicers_conversation):
    conversation, _ = servicers_conversation(servicer="lisi")
    agent = AgentProfileFactory(user__username="alice", role=AgentProfile.Role.SUPERVISOR)
    with pytest.raises(ActionRefused, match="企业微信中接待"):
        claim_conversation(conversation_id=conversation.pk, profile=agent)
    with pytest.raises(ActionRefused, match="企业微信中接待"):
        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="在吗")
    assert conversation_summary(conversation)["servicers_mode"] is True


def test_the_screen_api_refuses_claim_and_reply_in_zh_hans(servicers_conversation, client):
    conversation, _ = servicers_conversation()
    AgentProfileFactory(user__username="alice", role=AgentProfile.Role.SUPERVISOR)
    client.cookies["sessionid"] = login_cookie("alpha", "alice")
    base = f"/t/alpha/agent/api/conversations/{conversation.pk}"
    claim = client.post(f"{base}/claim/")
    reply = client.post(f"{base}/reply/", {"text": "在吗"}, content_type="application/json")
    for refused in (claim, reply):
        assert refused.status_code == 409
        assert refused.json() == {"detail": "此会话由企业微信客服人员在企业微信中接待，这里只能查看，不能接入或回复。"}
    assert Conversation.objects.get(pk=conversation.pk).state == Conversation.State.WAITING_HUMAN
    assert not OutboundMessage.objects.filter(author=Message.Author.AGENT).exists()


def test_a_servicers_message_from_the_wecom_client_joins_the_transcript(servicers_conversation, sandbox):
    conversation, _ = servicers_conversation()
    app = conversation.contact.app
    sandbox.queue_kf_messages(CORP_ID, OPEN_KFID, [{"external_userid": CUSTOMER, "msgtype": "text", "origin": 5,
                                                    "servicer_userid": "lisi", "text": {"content": "我是李四"}}],
                              notify=False)
    pull_kf_messages(app=app, open_kfid=OPEN_KFID)
    line = Message.objects.get(conversation=conversation, text="我是李四")
    assert line.author == Message.Author.AGENT
    assert line.inbound.origin == 5 and line.inbound.payload["servicer_userid"] == "lisi"
    assert line.inbound.status == InboundMessage.Status.RECORDED  # never answered by the AI


def session_event(app: WeComApp, msgid: str, change_type: int, new: str = "", old: str = "") -> InboundMessage:
    """A pulled session_status_change (origin 4), stored and handled as the pull and the worker do."""
    recorded = record_kf_message(app=app, message={
        "msgid": msgid, "msgtype": "event", "origin": 4, "send_time": int(timezone.now().timestamp()),
        "event": {"event_type": "session_status_change", "open_kfid": OPEN_KFID, "external_userid": CUSTOMER,
                  "change_type": change_type, "old_servicer_userid": old, "new_servicer_userid": new,
                  "msg_code": "MSG_CODE"}})
    handle_kf_event(inbound_id=recorded.inbound.pk)
    recorded.inbound.refresh_from_db()
    return recorded.inbound


def test_a_servicer_taking_the_session_assigns_the_ticket_and_ending_it_closes_both(servicers_conversation,
                                                                                    sandbox):
    conversation, ticket = servicers_conversation()
    agent = AgentProfileFactory(user__username="lisi-agent", wecom_userid="lisi")
    app = conversation.contact.app

    assert session_event(app, "sess-1", 1, new="lisi").status == InboundMessage.Status.PROCESSED
    ticket.refresh_from_db()
    conversation.refresh_from_db()
    assert (ticket.status, ticket.assignee_id) == (Ticket.Status.ASSIGNED, agent.user_id)
    assert (conversation.state, conversation.agent_id) == (Conversation.State.HUMAN, agent.user_id)
    assert TicketEvent.objects.get(ticket=ticket, kind="kf_servicer_took").detail["servicer"] == "lisi"

    session_event(app, "sess-2", 3, old="lisi")
    ticket.refresh_from_db()
    conversation.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED and conversation.state == Conversation.State.CLOSED
    assert TicketEvent.objects.filter(ticket=ticket, kind="kf_session_ended").exists()
    assert not OutboundMessage.objects.filter(idempotency_key__startswith="closing:").exists()  # WeCom's own flow


def test_a_servicer_taking_a_session_whose_ticket_was_closed_opens_a_new_ticket(servicers_conversation):
    conversation, ticket = servicers_conversation()
    agent = AgentProfileFactory(user__username="lisi-agent", wecom_userid="lisi")
    Ticket.objects.filter(pk=ticket.pk).update(status=Ticket.Status.CLOSED)  # closed on our side meanwhile

    assert session_event(conversation.contact.app, "sess-5", 4, new="lisi").status == InboundMessage.Status.PROCESSED
    newest = Ticket.objects.filter(conversation=conversation).order_by("-id").first()
    assert newest.pk != ticket.pk and (newest.status, newest.assignee_id) == (Ticket.Status.ASSIGNED, agent.user_id)


def test_an_unknown_servicer_leaves_the_ticket_open_and_named_in_the_timeline(servicers_conversation):
    conversation, ticket = servicers_conversation()
    session_event(conversation.contact.app, "sess-3", 1, new="zhaoliu")
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN and ticket.assignee_id is None
    took = TicketEvent.objects.get(ticket=ticket, kind="kf_servicer_took")
    assert took.detail["servicer"] == "zhaoliu" and took.detail["agent"] is None


def test_without_the_mode_a_session_event_is_only_recorded(tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        recorded = record_kf_message(app=app, message={
            "msgid": "sess-4", "msgtype": "event", "origin": 4,
            "event": {"event_type": "session_status_change", "open_kfid": OPEN_KFID, "external_userid": CUSTOMER,
                      "change_type": 1, "new_servicer_userid": "lisi"}})
        assert recorded.inbound.status == InboundMessage.Status.RECORDED
