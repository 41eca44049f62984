"""Business hours on the desk: a customer handed to humans outside the hours gets the off-hours message (through
the ledger, to the WeCom sandbox, 微信客服 too), the ticket waits unoffered without "nobody online" noise
until the opening, when the sweep offers it; SLAs count business time only; a second tenant with other hours
is unaffected; the admin page and the API validate the same way."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation, DeskSettings, Message, OutboundMessage
from conversations.services.answering import answer_contact
from conversations.services.api_keys import create_api_key
from conversations.services.outbound import deliver_for_contact
from testing.accounts import api_client
from testing.factories import AgentProfileFactory, ConversationFactory, FallbackScriptFactory, WeComAppFactory
from testing.wecom import customer_says
from tickets import presence
from tickets.business_hours_models import DEFAULT_OFF_HOURS_MESSAGE, BusinessHours
from tickets.business_hours_services import update_business_hours
from tickets.models import Ticket, TicketEvent, TicketSettings
from tickets.services import receive_handoff, reoffer_waiting_tickets

pytestmark = pytest.mark.django_db
SHANGHAI = ZoneInfo("Asia/Shanghai")
URL = "/t/{schema}/api/business-hours/"
ADMIN = "/t/alpha/admin/tickets/businesshours/"
EVERY_DAY = {day: "09:00-18:00" for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                            "sunday")}


def today() -> date:
    return timezone.now().astimezone(SHANGHAI).date()


def closed_today() -> datetime:
    """Business hours every day 09:00-18:00 in Shanghai, today a holiday: closed now, whatever the time;
    returns the opening (tomorrow 09:00)."""
    update_business_hours(changes={"enabled": True, **EVERY_DAY, "holidays": [today()]})
    return datetime.combine(today() + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=9)


def kinds(conversation) -> list[str]:
    return list(TicketEvent.objects.filter(ticket__conversation=conversation).values_list("kind", flat=True))


@pytest.fixture
def desk(alpha_app, sandbox, settings):
    """Knowledge-only answering (no model), so "转人工" is the customer's handoff."""
    settings.KB_EMBEDDINGS = "off"
    with schema_context("alpha"):
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
    return alpha_app


def test_outside_hours_the_customer_gets_the_off_hours_message_and_the_ticket_waits_for_the_opening(desk, sandbox):
    with schema_context("alpha"):
        opening = closed_today()
        agent = AgentProfileFactory(user__username="early-bird")
        presence.touch(schema="alpha", user_id=agent.user_id, socket="s1")  # online, still not offered
        customer_says(desk, "转人工", user="night-owl")
        contact = Contact.objects.get(app=desk, external_id="night-owl")
        answer_contact(contact)
        deliver_for_contact(contact.pk)

        conversation = Conversation.objects.get(contact=contact)
        assert conversation.state == Conversation.State.WAITING_HUMAN
        received = sandbox.received_texts("night-owl")
        assert received[-1] == f"{DeskSettings.current().handoff_message}\n{DEFAULT_OFF_HOURS_MESSAGE}"
        assert TicketSettings.current().waiting_message not in received[-1]
        assert OutboundMessage.objects.get(conversation=conversation).status == OutboundMessage.Status.SENT
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.offered_to_id is None and ticket.status == Ticket.Status.OPEN
        assert kinds(conversation) == ["opened", "off_hours"]
        assert TicketEvent.objects.get(ticket=ticket, kind="off_hours").detail == {"opens_at": opening.isoformat()}
        # The first response is due 5 minutes of business time after the handoff: 09:05 tomorrow.
        assert ticket.first_response_due_at == opening + timedelta(minutes=5)
        assert ticket.resolution_due_at == opening + timedelta(minutes=240)

        assert reoffer_waiting_tickets() == 0  # the periodic sweep, now: still closed, no noise
        customer_says(desk, "有人吗", user="night-owl")  # asks again while waiting: the message is not repeated
        answer_contact(contact)
        assert kinds(conversation) == ["opened", "off_hours"]

        assert reoffer_waiting_tickets(now=opening) == 1  # the first sweep after the opening offers it
        ticket.refresh_from_db()
        assert ticket.offered_to_id == agent.user_id
        assert kinds(conversation) == ["opened", "off_hours", "offered"]


def test_the_off_hours_message_reaches_a_wechat_customer_too(tenant_a, kf_handed_off, sandbox):
    with schema_context("alpha"):
        closed_today()
        update_business_hours(changes={"off_hours_message": "下班啦，明早九点回复您。"})
        conversation = kf_handed_off("wmNightOwl")
        assert sandbox.received_texts("wmNightOwl")[-1] == (
            f"{DeskSettings.current().handoff_message}\n下班啦，明早九点回复您。")
        assert Message.objects.filter(conversation=conversation, author=Message.Author.HANDOFF).count() == 1
        assert Ticket.objects.get(conversation=conversation).offered_to_id is None


def test_sla_due_times_count_business_hours_only(alpha_app):
    with schema_context("alpha"):
        update_business_hours(changes={"enabled": True, "saturday": "", "sunday": ""})  # Mon-Fri 09:00-18:00
        TicketSettings.objects.update_or_create(pk=1, defaults={"first_response_minutes": 30,
                                                                "resolution_minutes": 600})
        conversation = ConversationFactory(contact__app=alpha_app)
        friday_evening = datetime(2026, 12, 4, 20, 0, tzinfo=SHANGHAI)
        receipt = receive_handoff(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, subject="",
                                  now=friday_evening)
        ticket = Ticket.objects.get(pk=receipt.ticket_id)
        assert ticket.first_response_due_at == datetime(2026, 12, 7, 9, 30, tzinfo=SHANGHAI)  # Monday
        assert ticket.resolution_due_at == datetime(2026, 12, 8, 10, 0, tzinfo=SHANGHAI)  # 9 h Monday, 1 Tuesday
        assert not receipt.offered and receipt.waiting_notice == DEFAULT_OFF_HOURS_MESSAGE

        within = ConversationFactory(contact__app=alpha_app, contact__external_id="daytime")
        receipt = receive_handoff(conversation=within, reason=Ticket.Reason.CUSTOMER_ASKED, subject="",
                                  now=datetime(2026, 12, 7, 17, 50, tzinfo=SHANGHAI))
        assert receipt.waiting_notice == TicketSettings.current().waiting_message  # open, nobody online
        assert Ticket.objects.get(pk=receipt.ticket_id).first_response_due_at == datetime(
            2026, 12, 8, 9, 20, tzinfo=SHANGHAI)
        assert "nobody_online" in kinds(within)


def test_a_second_tenant_with_other_hours_is_unaffected(alpha_app, tenant_b, handed_off):
    with schema_context("alpha"):
        closed_today()
    with schema_context("beta"):
        assert not BusinessHours.current().enabled  # beta never set business hours: always open
        agent = AgentProfileFactory(user__username="beta-agent")
        presence.touch(schema="beta", user_id=agent.user_id, socket="s1")
        before = timezone.now()
        conversation = handed_off(WeComAppFactory())
        ticket = Ticket.objects.get(conversation=conversation)
        assert ticket.offered_to_id == agent.user_id
        assert "off_hours" not in kinds(conversation)
        assert before + timedelta(minutes=5) <= ticket.first_response_due_at <= timezone.now() + timedelta(minutes=5)
    with schema_context("alpha"):
        assert BusinessHours.current().holidays == [today()]


def test_the_admin_page_validates_and_says_whether_the_desk_is_open(admin_client, tenant_a):
    with schema_context("alpha"):
        closed_today()
        hours = BusinessHours.current()
    page = admin_client.get(f"{ADMIN}{hours.pk}/change/")
    assert page.status_code == 200
    opening = (today() + timedelta(days=1)).isoformat()
    assert f"{opening} 09:00" in page.content.decode()
    form = {"enabled": "on", "time_zone": "Asia/Shanghai", **EVERY_DAY, "monday": "09:00-12:00, 11:00-18:00",
            "holidays": "2026-10-01, 2026-10-02", "extra_workdays": "2026-10-02\n2026-13-01",
            "extra_workday_hours_of": "0", "off_hours_message": "下班了"}
    refused = admin_client.post(f"{ADMIN}{hours.pk}/change/", {**form, "time_zone": "Mars/Base"})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"monday", "extra_workdays", "time_zone"}
    assert "overlap" in errors["monday"][0] or "重叠" in errors["monday"][0]
    both = admin_client.post(f"{ADMIN}{hours.pk}/change/", {**form, "monday": "09:00-18:00",
                                                            "extra_workdays": "2026-10-02"})
    assert set(both.context["adminform"].form.errors) == {"extra_workdays"}
    saved = admin_client.post(f"{ADMIN}{hours.pk}/change/", {**form, "monday": "13:30-18:00，09:00-12:00",
                                                             "extra_workdays": "2026-10-10"})
    assert saved.status_code == 302
    with schema_context("alpha"):
        hours.refresh_from_db()
        assert (hours.monday, hours.holidays, hours.extra_workdays, hours.off_hours_message) == (
            "13:30-18:00，09:00-12:00", [date(2026, 10, 1), date(2026, 10, 2)], [date(2026, 10, 10)], "下班了")


def test_the_api_reads_and_edits_with_the_same_validation_per_tenant(api_keys):
    alpha, beta = api_client(api_keys["alpha"]), api_client(api_keys["beta"])
    body = alpha.get(URL.format(schema="alpha")).json()
    assert (body["enabled"], body["time_zone"], body["monday"], body["sunday"], body["open_now"]) == (
        False, "Asia/Shanghai", "09:00-18:00", "", True)
    assert body["off_hours_message"] == DEFAULT_OFF_HOURS_MESSAGE

    refused = alpha.patch(URL.format(schema="alpha"), {"enabled": True, "time_zone": "Asia/Nowhere",
                                                       "tuesday": "18:00-09:00", "holidays": ["2026-10-01"],
                                                       "extra_workdays": ["2026-10-01"]},
                          content_type="application/json")
    assert refused.status_code == 400
    assert set(refused.json()["errors"]) == {"time_zone", "tuesday", "extra_workdays"}
    assert alpha.patch(URL.format(schema="alpha"), {"holidays": ["not a date"]},
                       content_type="application/json").status_code == 400
    sunday_hours = alpha.patch(URL.format(schema="alpha"), {"extra_workdays": ["2026-10-10"],
                                                             "extra_workday_hours_of": 6},
                               content_type="application/json")  # Sunday has no hours to lend
    assert (sunday_hours.status_code, set(sunday_hours.json()["errors"])) == (400, {"extra_workday_hours_of"})

    changed = alpha.patch(URL.format(schema="alpha"), {
        "enabled": True, **EVERY_DAY, "holidays": [today().isoformat(), today().isoformat()]},
        content_type="application/json")
    assert changed.status_code == 200, changed.json()
    body = changed.json()
    assert body["open_now"] is False and body["holidays"] == [today().isoformat()]
    assert datetime.fromisoformat(body["next_opening"]) == datetime.combine(
        today() + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=9)

    assert beta.get(URL.format(schema="beta")).json()["enabled"] is False  # beta's own, unchanged


def test_the_api_needs_the_settings_scope(tenant_a):
    with schema_context("alpha"):
        _, reader = create_api_key(name="settings-reader", scopes=["settings:read"])
        _, tickets_only = create_api_key(name="tickets-only", scopes=["tickets:read", "tickets:write"])
    assert api_client(reader).get(URL.format(schema="alpha")).status_code == 200
    refused = api_client(reader).patch(URL.format(schema="alpha"), {"enabled": True}, content_type="application/json")
    assert refused.status_code == 403 and "settings:write" in refused.json()["detail"]
    assert api_client(tickets_only).get(URL.format(schema="alpha")).status_code == 403
    with schema_context("alpha"):
        assert not BusinessHours.current().enabled
