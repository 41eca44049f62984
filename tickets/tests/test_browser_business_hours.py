"""Business hours on the agent screen (live): a conversation handed off outside alpha's business hours waits in
the queue, and its timeline says it is offered at the opening, in Chinese."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from testing.browser import expect
from tickets.business_hours_models import BusinessHours
from tickets.business_hours_services import update_business_hours
from tickets.models import Ticket
from tickets.tests.test_browser_agent import add_session, staff_agent  # noqa: F401  (staff_agent: a fixture)
from tickets.tests.test_business_hours_desk import EVERY_DAY, SHANGHAI

pytestmark = pytest.mark.live


@pytest.fixture
def closed_alpha(committed_db):
    """alpha's business hours, committed: every day 09:00-18:00, today (Shanghai) a holiday; removed after."""
    today = timezone.now().astimezone(SHANGHAI).date()
    with schema_context("alpha"):
        update_business_hours(changes={"enabled": True, **EVERY_DAY, "holidays": [today]})
    yield datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI) + timedelta(hours=9)
    with schema_context("alpha"):
        BusinessHours.objects.all().delete()


def test_a_handoff_outside_business_hours_waits_and_the_timeline_says_until_when(
        page, staff_agent, closed_alpha, committed_app, handed_off, live_server_url):  # noqa: F811
    app = committed_app("alpha")
    with schema_context("alpha"):
        conversation = handed_off(app, user="kehu-night")
        assert Ticket.objects.get(conversation=conversation).offered_to_id is None
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#timeline li[data-kind=off_hours]")).to_contain_text(
        f"非工作时间：将在上班时（{closed_alpha.isoformat()}）分配给客服")
    expect(page.locator("#timeline li[data-kind=nobody_online]")).to_have_count(0)
