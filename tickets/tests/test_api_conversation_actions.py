"""The human-side actions on conversations through the API (tickets/api): hand off as a customer's "转人工"
does, hand back to the AI, close with the goodbye; the same refusals as on the agent screens (409), and a
second tenant whose conversations are not found and not changed."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, Message, OutboundMessage
from conversations.services.api_keys import create_api_key
from conversations.services.webhooks import create_endpoint
from conversations.webhooks.models import EventType, WebhookEvent
from testing.accounts import api_client
from testing.broker import flush_test_broker
from testing.factories import AgentProfileFactory, ConversationFactory, WeComAppFactory
from tickets import presence
from tickets.models import Ticket, TicketEvent

pytestmark = pytest.mark.django_db

State = Conversation.State
API_ACTOR = "api-key:integration"


def error(response, status: int, code: str) -> dict:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def post(api, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


@pytest.fixture
def api(api_keys):
    return api_client(api_keys["alpha"])


def test_hand_off_opens_a_ticket_and_tells_the_customer_like_a_customer_request(api, alpha_app):
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=alpha_app, contact__external_id="zhangsan")
    response = post(api, f"/t/alpha/api/conversations/{conversation.pk}/hand-off/", {"subject": "订单 42 退款"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["state"], body["agent"], body["offered"]) == (conversation.pk, "waiting_human", None,
                                                                          False)
    assert (body["ticket"]["status"], body["ticket"]["reason"], body["ticket"]["subject"]) == ("open", "manual",
                                                                                               "订单 42 退款")
    with schema_context("alpha"):
        ticket = Ticket.objects.get(conversation=conversation)
        assert list(ticket.events.values_list("kind", "detail")) == [
            ("opened", {"reason": "manual"}), ("nobody_online", {}), ("handed_off", {"by": API_ACTOR})]
        # The handoff message (with "nobody is online"), through the ledger, as for a customer's request.
        handoff = Message.objects.get(conversation=conversation, author=Message.Author.HANDOFF)
        assert handoff.text.startswith(DeskSettings.current().handoff_message)
        assert OutboundMessage.objects.filter(conversation=conversation, author=Message.Author.HANDOFF).count() == 1


def test_hand_off_through_the_api_is_told_to_webhooks_like_any_handoff(api, alpha_app):
    with schema_context("alpha"):
        create_endpoint(url="http://127.0.0.1:9/crm", events=list(EventType.values), description="CRM")
        conversation = ConversationFactory(contact__app=alpha_app, contact__external_id="zhaoliu")
    try:
        post(api, f"/t/alpha/api/conversations/{conversation.pk}/hand-off/", {"subject": "发票"})
        with schema_context("alpha"):
            events = [(event.type, event.payload) for event in WebhookEvent.objects.order_by("id")]
    finally:
        flush_test_broker()  # their delivery jobs, which no worker runs here
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["ticket.created", "conversation.handed_off"] and "ticket.updated" in kinds
    handed_off = dict(events)["conversation.handed_off"]
    assert (handed_off["conversation_id"], handed_off["reason"]) == (conversation.pk, "manual")
    updated = [data for kind, data in events if kind == "ticket.updated" and data["change"] == "handed_off"]
    assert updated[0]["subject"] == "发票" and updated[0]["detail"] == {"by": API_ACTOR}


def test_hand_off_is_offered_to_an_online_agent(api, alpha_app):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        conversation = ConversationFactory(contact__app=alpha_app)
    presence.touch(schema="alpha", user_id=alice.user_id, socket="api-test")
    try:
        body = post(api, f"/t/alpha/api/conversations/{conversation.pk}/hand-off/").json()
    finally:
        presence.drop(schema="alpha", user_id=alice.user_id, socket="api-test")
    assert body["offered"] is True and body["ticket"]["offered_to"]["username"] == "alice"


def test_hand_off_is_refused_when_humans_have_it_or_it_is_closed(api, alpha_app, handed_off):
    with schema_context("alpha"):
        waiting = handed_off(alpha_app, "lisi")
        closed = ConversationFactory(contact__app=alpha_app, state=State.CLOSED)
        outbound = OutboundMessage.objects.count()
    error(post(api, f"/t/alpha/api/conversations/{waiting.pk}/hand-off/"), 409, "already_with_humans")
    error(post(api, f"/t/alpha/api/conversations/{closed.pk}/hand-off/"), 409, "conversation_closed")
    with schema_context("alpha"):
        assert OutboundMessage.objects.count() == outbound  # nothing more said to anyone
        assert not Ticket.objects.filter(conversation=closed).exists()
    body = error(post(api, f"/t/alpha/api/conversations/{waiting.pk}/hand-off/", {"subject": ["x"]}), 400, "invalid")
    assert list(body["errors"]) == ["subject"]


def test_hand_back_gives_the_conversation_to_the_ai(api, alpha_app, handed_off):
    with schema_context("alpha"):
        conversation = handed_off(alpha_app)
        AgentProfileFactory(user__username="alice")
    with schema_context("alpha"):
        ticket_id = Ticket.objects.get(conversation=conversation).pk
    post(api, f"/t/alpha/api/tickets/{ticket_id}/assign/", {"username": "alice"})
    body = post(api, f"/t/alpha/api/conversations/{conversation.pk}/hand-back/").json()
    assert (body["state"], body["agent"], body["ticket"]["status"]) == ("bot", None, "assigned")
    with schema_context("alpha"):
        conversation.refresh_from_db()
        assert (conversation.state, conversation.agent_id, conversation.waiting_notice_sent) == (State.BOT, None,
                                                                                               False)
        assert TicketEvent.objects.filter(ticket_id=ticket_id).last().detail == {"by": API_ACTOR}
    # Already with the AI: nothing to hand back (the screens refuse it the same way), said in zh-hans first.
    url = f"/t/alpha/api/conversations/{conversation.pk}/hand-back/"
    assert error(post(api, url), 409, "not_with_humans")["detail"] == "这个会话不在人工处理中。"
    english = api.post(url, {}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
    assert english.json() == {"detail": "This conversation is not with humans.", "code": "not_with_humans"}


def test_servicers_mode_conversations_are_answered_in_the_wecom_client_not_here(api, tenant_a):
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=WeComAppFactory(kind="kf", servicers_mode=True),
                                           state=State.WAITING_HUMAN)
        ticket = Ticket.objects.create(conversation=conversation, reason=Ticket.Reason.MANUAL)
        AgentProfileFactory(user__username="alice")
    error(post(api, f"/t/alpha/api/conversations/{conversation.pk}/hand-back/"), 409, "answered_in_wecom_client")
    error(post(api, f"/t/alpha/api/tickets/{ticket.pk}/assign/", {"username": "alice"}), 409,
          "answered_in_wecom_client")
    with schema_context("alpha"):
        conversation.refresh_from_db()
        assert (conversation.state, conversation.agent_id) == (State.WAITING_HUMAN, None)


def test_close_says_goodbye_once_and_closing_again_changes_nothing(api, alpha_app, handed_off):
    with schema_context("alpha"):
        conversation = handed_off(alpha_app)
        ticket = Ticket.objects.get(conversation=conversation)
    body = post(api, f"/t/alpha/api/conversations/{conversation.pk}/close/").json()
    assert (body["state"], body["ticket"]["status"]) == ("closed", "closed")
    again = post(api, f"/t/alpha/api/conversations/{conversation.pk}/close/")
    assert again.status_code == 200 and again.json()["state"] == "closed"
    # The conversation resource (conversations/api's router) answers beside these routes under the same prefix.
    assert api.get(f"/t/alpha/api/conversations/{conversation.pk}/").json()["state"] == "closed"
    with schema_context("alpha"):
        goodbye = OutboundMessage.objects.filter(conversation=conversation, author=Message.Author.NOTICE)
        assert list(goodbye.values_list("content", flat=True)) == [DeskSettings.current().closing_message]
        assert TicketEvent.objects.filter(ticket=ticket, kind="status").last().detail == {
            "from": "open", "to": "closed", "by": API_ACTOR}


def test_closing_a_conversation_that_closed_without_humans_changes_nothing(api, alpha_app):
    with schema_context("alpha"):
        idle = ConversationFactory(contact__app=alpha_app, state=State.CLOSED)
    body = post(api, f"/t/alpha/api/conversations/{idle.pk}/close/").json()
    assert (body["state"], body["ticket"]) == ("closed", None)
    with schema_context("alpha"):
        assert not Ticket.objects.filter(conversation=idle).exists()
        assert not OutboundMessage.objects.filter(conversation=idle).exists()


def test_another_tenants_conversations_are_not_found_and_not_changed(api, tenant_b):
    with schema_context("beta"):
        theirs = ConversationFactory(pk=987_654)
        outbound = OutboundMessage.objects.count()
    for action in ("hand-off", "hand-back", "close"):
        error(post(api, f"/t/alpha/api/conversations/{theirs.pk}/{action}/"), 404, "not_found")
    error(post(api, f"/t/alpha/api/conversations/{10**30}/close/"), 404, "not_found")
    error(post(api, "/t/alpha/api/conversations/x/close/"), 404, "not_found")
    with schema_context("beta"):
        theirs.refresh_from_db()
        assert theirs.state == State.BOT and not Ticket.objects.filter(conversation=theirs).exists()
        assert OutboundMessage.objects.count() == outbound


def test_the_actions_need_the_tickets_and_conversations_scopes(tenant_a):
    with schema_context("alpha"):
        conversation = ConversationFactory()
        _, read_only = create_api_key(name="reader", scopes=["conversations:read", "tickets:read"])
    reader = api_client(read_only)
    assert reader.get("/t/alpha/api/tickets/").status_code == 200
    assert reader.get("/t/alpha/api/agents/").status_code == 200
    error(post(reader, f"/t/alpha/api/conversations/{conversation.pk}/hand-off/"), 403, "permission_denied")
    with schema_context("alpha"):
        conversation.refresh_from_db()
        assert conversation.state == State.BOT

