"""The satisfaction survey on the agent screen (a real browser against the live server): the agent who closed a
conversation sees the survey go out in the ticket card and the timeline, and the customer's answer appear there
live when it arrives through the message path."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.services.answering import answer_pending
from testing.browser import expect
from testing.vectors import AGENT_ID
from testing.wecom import customer_says
from tickets.csat_models import CsatSettings, Survey
from tickets.models import Ticket
from tickets.services import claim_conversation, close_conversation, reply_as_agent

from .test_browser_agent import add_session, staff_agent  # noqa: F401  (a fixture)

pytestmark = pytest.mark.live
CUSTOMER = "kehu-csat"


@pytest.fixture
def surveys_on(committed_db, redis_client):
    with schema_context("alpha"):
        CsatSettings.objects.update_or_create(pk=1, defaults={"enabled": True})
    yield
    with schema_context("alpha"):
        CsatSettings.objects.filter(pk=1).update(enabled=False)
    for key in redis_client.scan_iter("alpha:csat-pending:*"):
        redis_client.delete(key)


def test_the_ticket_card_shows_the_survey_and_the_customers_answer_live(
        page, staff_agent, surveys_on, committed_app, handed_off, live_server_url, tenant_a):  # noqa: F811
    app = committed_app("alpha", agent_id=AGENT_ID + 9)
    with schema_context("alpha"):
        conversation = handed_off(app, user=CUSTOMER)
        claim_conversation(conversation_id=conversation.pk, profile=staff_agent)
        reply_as_agent(conversation_id=conversation.pk, profile=staff_agent, text="已为您处理好了")
        close_conversation(conversation_id=conversation.pk, profile=staff_agent)
        ticket = Ticket.objects.get(conversation=conversation)
        assert Survey.objects.get(ticket=ticket).status == Survey.Status.SENT

    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", tenant_a.staff_email)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    card = page.locator("#ticket-csat")
    expect(card).to_have_attribute("data-status", "sent")
    expect(card).to_have_text("已发送，尚未评价")
    expect(page.locator("#timeline li[data-kind=csat_sent]")).to_contain_text("已发送满意度评价")

    # The customer replies "1" (满意): the round stores it on the ticket, the open screen follows.
    with schema_context("alpha"):
        customer_says(app, "1", user=CUSTOMER)
        assert answer_pending(deliver=False) is None
    expect(card).to_have_attribute("data-status", "answered")
    expect(card.locator("[data-score='3']")).to_have_text("满意（3/3）")
    expect(page.locator("#timeline li[data-kind=csat_answered]")).to_contain_text("客户评价：满意（3/3）")
