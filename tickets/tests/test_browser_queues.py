"""Queues in a real browser (live): a supervisor sets up the team 售后 in the admin with alice as its member; a
customer who wrote about a refund hands off; alice, online on the queue page, gets the offer with the team shown,
and bob, online but of no team, sees it offered to someone else."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings
from conversations.services.handoff import hand_off_to_human
from testing.broker import flush_test_broker
from testing.browser import expect
from testing.factories import AgentProfileFactory, ConversationFactory, MessageFactory
from testing.waiting import wait_until
from tickets import presence
from tickets.models import AgentProfile, Ticket
from tickets.teams.models import Team
from tickets.tests.test_browser_agent import add_session, new_page

pytestmark = pytest.mark.live
TEAM = "售后"


@pytest.fixture
def agents(committed_db):
    """The supervisor (staff, allowed the teams' admin pages), alice and bob, committed agents of alpha; removed
    (with the team the test makes) afterwards."""
    with schema_context("alpha"):
        supervisor = AgentProfileFactory(user__username="boss-queues", display_name="boss",
                                         role=AgentProfile.Role.SUPERVISOR)
        supervisor.user.user_permissions.set(Permission.objects.filter(
            content_type__app_label="tickets", codename__in=["add_team", "change_team", "view_team"]))
        made = {name: AgentProfileFactory(user__username=f"{name}-queues", display_name=name)
                for name in ("alice", "bob")}
    yield {"supervisor": supervisor, **made}
    with schema_context("alpha"):
        Team.objects.filter(name=TEAM).delete()
        user_ids = [agent.user_id for agent in (supervisor, *made.values())]
        AgentProfile.objects.filter(user_id__in=user_ids).delete()
        get_user_model().objects.filter(pk__in=user_ids).delete()


def test_a_team_set_up_in_the_admin_gets_its_customers_offered_to_its_member(
        page, browser, agents, committed_app, live_server_url):
    # The supervisor, in the admin: a team with a keyword and alice as its member.
    supervisor = agents.pop("supervisor")
    add_session(page.context, live_server_url, "alpha", supervisor.user.username)
    page.goto(f"{live_server_url}/t/alpha/admin/tickets/team/add/")
    page.fill("#id_name", TEAM)
    page.fill("#id_keywords", "退款\n退货")
    page.locator("#id_members_from option", has_text="alice").dblclick()  # the two-box widget: into "chosen"
    expect(page.locator("#id_members_to option", has_text="alice")).to_have_count(1)
    page.click("input[name=_save]")
    expect(page.locator("#result_list")).to_contain_text("退款、退货")
    with schema_context("alpha"):
        team = Team.objects.get(name=TEAM)
        assert [m.name for m in team.members.all()] == ["alice"]

    # Both agents online on their queue pages (their sockets keep them online).
    screens = {}
    for name, agent in agents.items():
        context, screen = new_page(browser, locale="zh-CN")
        add_session(context, live_server_url, "alpha", agent.user.username)
        screen.goto(f"{live_server_url}/t/alpha/agent/")
        screens[name] = (context, screen)
    for agent in agents.values():
        wait_until(lambda agent=agent: presence.status(schema="alpha", user_id=agent.user_id) == "online",
                   timeout=15, message=f"{agent.name} online")

    try:
        app = committed_app("alpha")
        with schema_context("alpha"):
            conversation = ConversationFactory(contact__app=app, contact__external_id="kehu-refund")
            MessageFactory(conversation=conversation, text="我想退款，怎么办？")
            with transaction.atomic():
                locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
                hand_off_to_human(conversation=locked, reason=Ticket.Reason.CUSTOMER_ASKED,
                                  desk=DeskSettings.current())
            ticket = Ticket.objects.get(conversation=conversation)
            assert (ticket.team_id, ticket.offered_to_id) == (team.pk, agents["alice"].user_id)

        row = f"#waiting tr[data-conversation='{conversation.pk}']"
        alice = screens["alice"][1]
        expect(alice.locator(row)).to_have_class("offered")
        expect(alice.locator(f"{row} td.team")).to_have_text(TEAM)
        expect(alice.locator(f"{row} .badge.offer")).to_be_visible()
        bob = screens["bob"][1]
        expect(bob.locator(f"{row} .badge.muted-badge")).to_be_visible()  # offered to another agent
        # The team filter: alice's own teams hold the customer; "no team" does not.
        alice.select_option("#team-filter", value="mine")
        expect(alice.locator(row)).to_be_visible()
        alice.select_option("#team-filter", value="none")
        expect(alice.locator(row)).to_have_count(0)
    finally:
        for context, _screen in screens.values():
            context.close()
        flush_test_broker()  # the handoff message's delivery job, which no worker runs here
