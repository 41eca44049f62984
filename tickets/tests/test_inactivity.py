"""Inactivity auto-close (tickets/inactivity.py): a customer who stops answering an agent is warned once, after
the tenant's minutes of silence; a reply starts the silence afresh; after more minutes without a reply the
conversation is closed as an agent closes it (ticket closed, goodbye; 微信客服: the session ended first). Never a
warning outside WeCom's 48-hour window. Time is passed in as `now`; the sandbox receives what is sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.admin import DeskSettingsForm
from conversations.models import Conversation, DeskSettings, InboundMessage, Message, OutboundMessage
from conversations.services.conversations import record_message
from conversations.services.inactivity import MAX_TOTAL_MINUTES
from conversations.services.outbound import deliver_for_contact
from tenants.scheduling import REGISTRY, run_for_each_tenant
from testing.accounts import api_client
from testing.factories import AgentProfileFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from tickets import schedule  # noqa: F401 - registers the periodic jobs, as the scheduler's autodiscovery does
from tickets.inactivity import sweep_inactive
from tickets.models import Ticket, TicketEvent
from tickets.services import claim_conversation, end_kf_session, reply_as_agent

pytestmark = pytest.mark.django_db
ZWSP = "\u200b"
WARNING = "您好，请问还有其他问题吗？如无回复，本次会话将在 10 分钟后自动结束。"
KF_CUSTOMER = "wmSilent42"


def turn_on(**changes) -> DeskSettings:
    desk = DeskSettings.current()
    DeskSettings.objects.filter(pk=desk.pk).update(inactivity_close=True, **changes)
    return DeskSettings.current()


def texts(sandbox, user: str) -> list[str]:
    return [text.rstrip(ZWSP) for text in sandbox.received_texts(user)]


def warnings_of(conversation) -> list[OutboundMessage]:
    return list(OutboundMessage.objects.filter(conversation=conversation, idempotency_key__startswith="inactivity:"))


def agent_answered(conversation, text: str = "您的订单已经退款，请查收。"):
    agent = AgentProfileFactory(user__username=f"agent{conversation.pk}")
    claim_conversation(conversation_id=conversation.pk, profile=agent)
    reply_as_agent(conversation_id=conversation.pk, profile=agent, text=text)
    deliver_for_contact(conversation.contact_id)
    return agent


def test_a_silent_customer_is_warned_once_then_the_conversation_closes_with_the_goodbye(alpha_app, handed_off,
                                                                                     sandbox):
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        conversation = handed_off(alpha_app)
        deliver_for_contact(conversation.contact_id)
        start = timezone.now()
        # Waiting for a human: the customer waits for us, their silence closes nothing.
        assert sweep_inactive(now=start + timedelta(hours=5)).warned == []

        agent_answered(conversation)
        assert sweep_inactive(now=start + timedelta(minutes=29)).warned == []
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == [conversation.pk]
        assert sweep_inactive(now=start + timedelta(minutes=35)).warned == []  # once per silence
        [warning] = warnings_of(conversation)
        assert (warning.content, warning.author) == (WARNING, Message.Author.NOTICE)
        deliver_for_contact(conversation.contact_id)
        warning.refresh_from_db()
        assert warning.status == OutboundMessage.Status.SENT  # not cancelled for being a notice in a human's chat
        assert texts(sandbox, "zhangsan")[-1] == WARNING

        assert sweep_inactive(now=start + timedelta(minutes=40)).closed == []
        assert sweep_inactive(now=start + timedelta(minutes=42)).closed == [conversation.pk]
        assert sweep_inactive(now=start + timedelta(minutes=43)).closed == []

        conversation.refresh_from_db()
        ticket = Ticket.objects.get(conversation=conversation)
        assert (conversation.state, ticket.status) == (Conversation.State.CLOSED, Ticket.Status.CLOSED)
        kinds = list(ticket.events.values_list("kind", flat=True))
        assert (kinds.count("inactivity_warned"), kinds.count("inactivity_closed")) == (1, 1)
        assert ticket.events.get(kind="inactivity_closed").detail == {"reason": "silent_after_warning"}
        assert ticket.events.get(kind="status", detail__to="closed").detail.get("by") == "auto-close:inactivity"
        deliver_for_contact(conversation.contact_id)
        assert texts(sandbox, "zhangsan")[-1] == DeskSettings.current().closing_message
        assert texts(sandbox, "zhangsan").count(WARNING) == 1


def test_a_customer_reply_starts_the_silence_afresh(alpha_app, handed_off, sandbox):
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        conversation = handed_off(alpha_app)
        agent = agent_answered(conversation)
        start = timezone.now()
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == [conversation.pk]

        record_message(conversation=conversation, author=Message.Author.CUSTOMER, text="还在，稍等我查一下")
        # The customer answered: no close, however long the agent now takes (the agent owes the reply).
        assert sweep_inactive(now=start + timedelta(hours=3)).closed == []
        assert sweep_inactive(now=start + timedelta(hours=3)).warned == []

        reply_as_agent(conversation_id=conversation.pk, profile=agent, text="好的，有问题随时联系。")
        again = timezone.now()
        assert sweep_inactive(now=again + timedelta(minutes=29)).warned == []
        assert sweep_inactive(now=again + timedelta(minutes=31)).warned == [conversation.pk]
        assert len(warnings_of(conversation)) == 2  # one per silence
        conversation.refresh_from_db()
        assert conversation.state == Conversation.State.HUMAN


@pytest.fixture
def kf_answered(kf_handed_off):
    with schema_context("alpha"):
        conversation = kf_handed_off(KF_CUSTOMER)
        agent_answered(conversation)
        yield conversation


def test_kf_warning_and_close_end_the_wecom_session_with_the_goodbye(kf_answered, sandbox):
    conversation = kf_answered
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        start = timezone.now()
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == [conversation.pk]
        deliver_for_contact(conversation.contact_id)
        assert texts(sandbox, KF_CUSTOMER)[-1] == WARNING  # kf/send_msg: within the window and the 5 replies

        assert sweep_inactive(now=start + timedelta(minutes=45)).closed == [conversation.pk]
        ticket = Ticket.objects.get(conversation=conversation)
        end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)  # what the enqueued job runs
        deliver_for_contact(conversation.contact_id)
        assert sandbox.kf_session(CORP_ID, OPEN_KFID, KF_CUSTOMER)["service_state"] == 4
        goodbye = OutboundMessage.objects.get(idempotency_key=f"closing:{ticket.pk}:1")
        assert goodbye.event_code and goodbye.status == OutboundMessage.Status.SENT
        assert texts(sandbox, KF_CUSTOMER)[-1] == DeskSettings.current().closing_message


def customer_wrote(conversation, ago: timedelta) -> None:
    """The customer's message (WeCom's send time and our transcript line) was `ago` ago."""
    contact = conversation.contact
    at = timezone.now() - ago
    inbound = InboundMessage.objects.get(app=contact.app, sender=contact.external_id, open_kfid=contact.open_kfid)
    inbound.sent_at = at
    inbound.save(update_fields=["sent_at"])
    line = record_message(conversation=conversation, author=Message.Author.CUSTOMER, text=inbound.content,
                          inbound=inbound)
    Message.objects.filter(pk=line.pk).update(created_at=at)


def test_kf_warning_comes_early_when_the_48_hour_window_would_close_first(kf_handed_off, sandbox):
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        conversation = kf_handed_off(KF_CUSTOMER)
        customer_wrote(conversation, timedelta(hours=47, minutes=40))  # the window closes in 20 minutes
        agent_answered(conversation)
        start = timezone.now()
        assert sweep_inactive(now=start + timedelta(minutes=3)).warned == []
        # The close (10 min after) must fit before the window closes, with a margin: warn now, not in 30 min.
        assert sweep_inactive(now=start + timedelta(minutes=6)).warned == [conversation.pk]
        deliver_for_contact(conversation.contact_id)
        assert texts(sandbox, KF_CUSTOMER)[-1] == WARNING
        assert sweep_inactive(now=start + timedelta(minutes=17)).closed == [conversation.pk]


def test_nothing_is_sent_outside_the_48_hour_window(kf_handed_off, sandbox):
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        conversation = kf_handed_off(KF_CUSTOMER)
        customer_wrote(conversation, timedelta(hours=47, minutes=50))
        agent_answered(conversation)
        start = timezone.now()
        # The window closes in 10 minutes: too late for a warning and a close after it; closed without one.
        assert sweep_inactive(now=start + timedelta(minutes=31)).closed == [conversation.pk]
        assert warnings_of(conversation) == []
        assert not Message.objects.filter(conversation=conversation, text=WARNING).exists()
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.events.get(kind="inactivity_closed").detail == {"reason": "window_closing"}


def test_a_customer_with_no_replies_left_is_not_warned_but_still_closed(kf_answered, sandbox):
    conversation = kf_answered
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        for number in range(4):  # the handoff message and the first reply used 2 of the 5
            OutboundMessage.objects.create(contact=conversation.contact, conversation=conversation,
                                           idempotency_key=f"filler:{number}", author=Message.Author.AGENT,
                                           content="…", status=OutboundMessage.Status.SENT)
        start = timezone.now()
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == [conversation.pk]
        assert warnings_of(conversation) == []
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.events.get(kind="inactivity_warned").detail == {"sent": False, "refusal": "no_replies_left"}
        assert sweep_inactive(now=start + timedelta(minutes=42)).closed == [conversation.pk]


def test_each_tenant_follows_its_own_settings(alpha_app, handed_off, tenant_b, sandbox):
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        alpha_conversation = handed_off(alpha_app)
        agent_answered(alpha_conversation)
    with schema_context("beta"):
        beta_conversation = handed_off(WeComAppFactory())
        agent_answered(beta_conversation)
        start = timezone.now()
        assert sweep_inactive(now=start + timedelta(hours=5)).warned == []  # beta has it off
        turn_on(inactivity_warn_minutes=120, inactivity_close_minutes=20, inactivity_warning="还在吗？")
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == []
        assert sweep_inactive(now=start + timedelta(minutes=121)).warned == [beta_conversation.pk]
        assert [row.content for row in warnings_of(beta_conversation)] == ["还在吗？"]
    with schema_context("alpha"):
        assert warnings_of(alpha_conversation) == []  # beta's sweep never touched alpha
        assert sweep_inactive(now=start + timedelta(minutes=31)).warned == [alpha_conversation.pk]
        assert [row.content for row in warnings_of(alpha_conversation)] == [WARNING]
    with schema_context("beta"):
        assert len(warnings_of(beta_conversation)) == 1
        assert not TicketEvent.objects.filter(kind="inactivity_closed").exists()


def form_data(**changes) -> dict:
    data = {field: value for field, value in DeskSettings.current().__dict__.items() if not field.startswith("_")}
    data["handoff_keywords"] = "\n".join(data["handoff_keywords"])
    data["feedback_helpful_keywords"] = "\n".join(data["feedback_helpful_keywords"])
    data["feedback_unhelpful_keywords"] = "\n".join(data["feedback_unhelpful_keywords"])
    data["welcome_menu"] = ""
    return {**data, **changes}


def test_the_admin_refuses_settings_that_cannot_fit_wecoms_window(tenant_a):
    with schema_context("alpha"):
        desk = DeskSettings.current()
        form = DeskSettingsForm(instance=desk, data=form_data(inactivity_close=True, inactivity_warn_minutes=47 * 60,
                                                              inactivity_close_minutes=60))
        assert not form.is_valid()
        assert "48-hour" in form.errors["inactivity_close_minutes"][0]
        form = DeskSettingsForm(instance=desk, data=form_data(inactivity_close=True, inactivity_warning="  ",
                                                              inactivity_close_minutes=0))
        assert not form.is_valid()
        assert set(form.errors) >= {"inactivity_warning", "inactivity_close_minutes"}
        form = DeskSettingsForm(instance=desk, data=form_data(inactivity_close=True, inactivity_warn_minutes=60,
                                                              inactivity_close_minutes=15))
        assert form.is_valid(), form.errors
        form.save()
        assert (DeskSettings.current().inactivity_close, DeskSettings.current().inactivity_warn_minutes) == (True, 60)


def test_the_api_reads_and_validates_the_settings(api_keys):
    url = "/t/alpha/api/desk-settings/"
    api = api_client(api_keys["alpha"])
    body = api.get(url).json()
    assert (body["inactivity_close"], body["inactivity_warn_minutes"], body["inactivity_close_minutes"]) == (
        False, 30, 10)
    assert body["inactivity_warning"] == WARNING
    too_long = api.patch(url + "update/", {"inactivity_warn_minutes": MAX_TOTAL_MINUTES},
                         content_type="application/json")
    assert too_long.status_code == 400
    empty = api.patch(url + "update/", {"inactivity_close": True, "inactivity_warning": ""},
                      content_type="application/json")
    assert empty.status_code == 400
    ok = api.patch(url + "update/", {"inactivity_close": True, "inactivity_warn_minutes": 45},
                   content_type="application/json")
    assert ok.status_code == 200, ok.json()
    assert (ok.json()["inactivity_close"], ok.json()["inactivity_warn_minutes"]) == (True, 45)
    with schema_context("beta"):
        assert DeskSettings.current().inactivity_close is False  # alpha's key changed alpha's settings only


def test_the_scheduler_runs_the_sweep_in_every_tenant_with_its_own_settings(alpha_app, handed_off, tenant_b,
                                                                            sandbox):
    silent_since = timezone.now() - timedelta(minutes=31)
    with schema_context("alpha"):
        turn_on(inactivity_warn_minutes=30, inactivity_close_minutes=10)
        alpha_conversation = handed_off(alpha_app)
        agent_answered(alpha_conversation)
        Conversation.objects.filter(pk=alpha_conversation.pk).update(last_message_at=silent_since)
    with schema_context("beta"):  # off in beta: the same silence there is left alone
        beta_conversation = handed_off(WeComAppFactory())
        agent_answered(beta_conversation)
        Conversation.objects.filter(pk=beta_conversation.pk).update(last_message_at=silent_since)

    job = REGISTRY["tickets.schedule.close_inactive_conversations"]
    assert job.seconds == 60 and job.per_tenant
    assert run_for_each_tenant(job) >= 2
    assert run_for_each_tenant(job) >= 2  # a second tick (or a second scheduler) warns nobody twice
    with schema_context("alpha"):
        assert len(warnings_of(alpha_conversation)) == 1
    with schema_context("beta"):
        assert warnings_of(beta_conversation) == []
