"""Collision detection in a real browser (two browser contexts, two people of one tenant): agent 小王 opens and
types in a conversation a supervisor is watching; the supervisor's screen says who is viewing and who is
typing, and both go when 小王 leaves. The WebSocket's isolation is tests/test_collision.py."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from testing.browser import expect
from tickets.models import AgentProfile
from tickets.services import claim_conversation
from tickets.tests.test_browser_agent import add_session, new_page, staff_agent, waiting  # noqa: F401 - fixtures

pytestmark = pytest.mark.live


def test_the_supervisor_sees_who_views_and_types_and_it_goes_when_they_leave(
        browser, page, waiting, staff_agent, live_server_url, tenant_a, redis_client):  # noqa: F811 - fixtures above
    conversation = waiting
    for key in redis_client.scan_iter("*:viewers:*"):  # none left by an earlier test's conversation of this id
        redis_client.delete(key)
    with schema_context("alpha"):
        claim_conversation(conversation_id=conversation.pk, profile=staff_agent)  # 小王's conversation
        AgentProfile.objects.filter(user__username="agent2@alpha.test").update(
            role=AgentProfile.Role.SUPERVISOR, display_name="李主管")
    screen = f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/"
    supervisor_context, supervisor = new_page(browser, locale="zh-CN")
    try:
        add_session(supervisor_context, live_server_url, "alpha", "agent2@alpha.test")
        supervisor.goto(screen)
        expect(supervisor.locator("#connection")).to_have_attribute("data-state", "live")
        expect(supervisor.locator("#collision")).to_be_hidden()  # nobody else yet

        add_session(page.context, live_server_url, "alpha", tenant_a.staff_email)
        page.goto(screen)
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        viewing = supervisor.locator("#collision [data-collision=viewing]")
        expect(viewing).to_have_text("小王 正在查看")
        expect(page.locator("#collision [data-collision=viewing]")).to_contain_text("李主管")

        page.locator("#reply-text").press_sequentially("您好，退款已经")
        typing = supervisor.locator("#collision [data-collision=typing]")
        expect(typing).to_have_text("小王 正在输入…")
        expect(page.locator("#collision [data-collision=typing]")).to_have_count(0)  # not our own typing

        page.goto(f"{live_server_url}/t/alpha/agent/")  # 小王 leaves the conversation
        expect(viewing).to_have_count(0)
        expect(typing).to_have_count(0)
        expect(supervisor.locator("#collision")).to_be_hidden()
    finally:
        supervisor_context.close()
