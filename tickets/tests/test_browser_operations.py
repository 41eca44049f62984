"""The operations page in a real browser (Chromium) against the live web server: alpha's staff open the
admin in Chinese, see the health summary say what is wrong, follow its link to the operations page and
find today's numbers and the four SVG charts drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, OutboundMessage
from conversations.vocabulary import Outcome, Stage
from testing.accounts import login_cookie
from testing.browser import VIEWPORT, expect
from testing.factories import ContactFactory, InboundMessageFactory, OutboundMessageFactory, TraceEventFactory

pytestmark = pytest.mark.live
# Today's customer messages of alpha, stored just now: two answered by the AI, one fallback, one waiting.
OUTCOMES = [Outcome.AI, Outcome.AI, Outcome.FALLBACK, None]


@pytest.fixture
def alpha_today(committed_app):
    """Committed rows the web server sees; the app and everything hanging off it go afterwards."""
    app = committed_app("alpha", agent_id=4747)
    with schema_context("alpha"):
        for outcome in OUTCOMES:
            row = InboundMessageFactory(app=app, status=InboundMessage.Status.PROCESSED if outcome else
                                        InboundMessage.Status.PENDING)
            if outcome:
                InboundMessage.objects.filter(pk=row.pk).update(processed_at=row.received_at)
                TraceEventFactory(inbound=row, stage=Stage.PROCESSED, detail={"outcome": outcome.value})
        OutboundMessageFactory(contact=ContactFactory(app=app), status=OutboundMessage.Status.DEAD)
    return app


def test_an_operator_sees_the_health_summary_and_the_operations_page(browser, live_server_url, tenant_a,
                                                                     alpha_today, tmp_path: Path):
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(10_000)
    host = re.sub(r"^https?://", "", live_server_url).split(":")[0]
    context.add_cookies([{"name": "sessionid", "value": login_cookie("alpha", tenant_a.staff_email),
                          "domain": host, "path": "/t/alpha/"}])
    page = context.new_page()
    try:
        page.goto(f"{live_server_url}/t/alpha/admin/")
        summary = page.locator("#ops-health")
        expect(summary).to_be_visible()
        expect(summary).to_have_attribute("data-level", "bad")
        expect(summary.locator("li[data-key=dead_letters]")).to_have_attribute("data-level", "bad")
        expect(summary.locator("li[data-key=dead_letters]")).to_contain_text("1 条回复已放弃发送，等待重新发送。")
        expect(summary.locator("li[data-key=backlog]")).to_contain_text("1 条消息等待处理")
        page.screenshot(path=tmp_path / "admin-index.png", full_page=True)

        page.get_by_role("link", name="打开运营页面").click()
        expect(page).to_have_url(f"{live_server_url}/t/alpha/admin/operations/")
        expect(page.locator("#figure-messages .ops-value")).to_have_text(str(len(OUTCOMES)))
        expect(page.locator("#figure-share-ai .ops-value")).to_have_text(f"{2 / 3 * 100:.1f}%")
        expect(page.locator("#figure-dead .ops-value")).to_have_text("1")
        expect(page.locator("#figure-backlog .ops-value")).to_have_text("1")
        expect(page.get_by_text("今日客户消息")).to_be_visible()

        charts = page.locator("svg.chart")
        expect(charts).to_have_count(4)
        for chart in ("#chart-hourly-messages", "#chart-daily-messages"):
            bars = page.locator(f"{chart} rect.bar")
            # This hour's and today's bar: AI, fallback and "no outcome" segments, drawn with a height.
            expect(bars).to_have_count(3)
            assert page.locator(f"{chart} rect.bar[data-series=ai]").bounding_box()["height"] > 0
        expect(page.locator("#chart-hourly-latency circle.point")).to_have_count(1)
        page.screenshot(path=tmp_path / "operations.png", full_page=True)
    finally:
        context.close()
