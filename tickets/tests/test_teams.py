"""Teams (技能组): routing a handoff to a team (menu choice, keywords, default, none), moving a ticket to another
team, and the admin that sets teams up (validated), per tenant."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import translation
from django_tenants.utils import schema_context

from conversations.models import DeskSettings, InboundMessage
from conversations.services.handoff import hand_off_to_human
from testing.accounts import api_client, login_cookie
from testing.factories import AgentProfileFactory, ConversationFactory, InboundMessageFactory, MessageFactory
from tickets import presence
from tickets.models import AgentProfile, Ticket, TicketEvent, TicketSettings
from tickets.services import ActionRefused, move_ticket_to_team
from tickets.teams.models import Team

pytestmark = pytest.mark.django_db
ADMIN = "/t/alpha/admin/tickets/team/"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def make_team(name: str, **fields) -> Team:
    members = fields.pop("members", [])
    team = Team.objects.create(name=name, **fields)
    team.members.set(members)
    return team


def customer_wrote(conversation, *texts: str, click: str | None = None) -> None:
    """The customer's messages, oldest first; `click` is the menu item id of the last one (a 微信客服 menu click)."""
    for number, text in enumerate(texts, start=1):
        inbound = None
        if click and number == len(texts):
            inbound = InboundMessageFactory(app=conversation.contact.app, content=text,
                                            status=InboundMessage.Status.PROCESSED,
                                            payload={"text": {"content": text, "menu_id": click}})
        MessageFactory(conversation=conversation, text=text, inbound=inbound)


def hand_off(conversation) -> Ticket:
    receipt = hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED,
                                desk=DeskSettings.current())
    return Ticket.objects.get(pk=receipt.ticket_id)


def routed(ticket: Ticket) -> dict | None:
    event = TicketEvent.objects.filter(ticket=ticket, kind="routed").first()
    return event.detail if event else None


def test_a_keyword_in_the_recent_messages_routes_to_the_first_team_in_order(alpha_app):
    with schema_context("alpha"):
        make_team("账单", keywords=["发票", "扣费"], priority=20)
        after_sales = make_team("售后", keywords=["退款", "退货"], priority=10)
        make_team("通用", is_default=True, priority=30)
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "我想退款，顺便开张发票", "转人工")
        ticket = hand_off(conversation)
        assert ticket.team == after_sales  # both teams match: 售后 comes first (priority 10)
        assert routed(ticket) == {"team": "售后", "team_id": after_sales.pk, "by": "keyword", "matched": "退款"}


def test_the_customers_menu_choice_wins_over_keywords(alpha_app):
    with schema_context("alpha"):
        make_team("售后", keywords=["退款"], priority=10)
        billing = make_team("账单", menu_choice="账单问题", priority=20)
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "退款怎么办", "账单问题", click="billing")
        ticket = hand_off(conversation)
        assert ticket.team == billing
        assert routed(ticket)["by"] == "menu" and routed(ticket)["matched"] == "账单问题"


def test_the_same_words_typed_are_no_menu_choice(alpha_app):
    """Only a click on the menu item is the customer's choice; typed text is matched by keywords only."""
    with schema_context("alpha"):
        make_team("账单", menu_choice="账单问题")
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "账单问题")
        ticket = hand_off(conversation)
        assert ticket.team is None and routed(ticket) is None


def test_without_a_match_the_default_team_else_no_team(alpha_app):
    with schema_context("alpha"):
        make_team("售后", keywords=["退款"])
        first = ConversationFactory(contact__app=alpha_app)
        customer_wrote(first, "你好")
        ticket = hand_off(first)
        assert ticket.team is None and routed(ticket) is None
        assert list(ticket.events.values_list("kind", flat=True)) == ["opened", "nobody_online"]
        general = make_team("通用", is_default=True)
        second = ConversationFactory(contact__app=alpha_app)
        customer_wrote(second, "你好")
        assert hand_off(second).team == general


def test_only_the_latest_messages_count(alpha_app):
    with schema_context("alpha"):
        make_team("售后", keywords=["退款"])
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "退款", "一", "二", "三", "四", "五")  # 退款 is the sixth newest
        assert hand_off(conversation).team is None


def test_a_second_tenants_teams_route_nothing_here(alpha_app, tenant_b):
    with schema_context("beta"):
        make_team("售后", keywords=["退款"], is_default=True)
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "我要退款")
        assert hand_off(conversation).team is None
    with schema_context("beta"):
        assert not Ticket.objects.exists()


def test_a_supervisor_moves_a_waiting_ticket_to_another_team_and_it_is_offered_there(alpha_app, handed_off):
    with schema_context("alpha"):
        supervisor = AgentProfileFactory(role=AgentProfile.Role.SUPERVISOR)
        alice, bob = AgentProfileFactory(user__username="alice"), AgentProfileFactory(user__username="bob")
        sales = make_team("售后", keywords=["退款"], members=[alice])
        billing = make_team("账单", members=[bob])
        for agent in (alice, bob):
            presence.touch(schema="alpha", user_id=agent.user_id, socket=f"s-{agent.user_id}")
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "退款")
        ticket = hand_off(conversation)
        assert (ticket.team, ticket.offered_to_id) == (sales, alice.user_id)
        with pytest.raises(ActionRefused, match="Only a supervisor"):
            move_ticket_to_team(conversation_id=conversation.pk, team=billing, by=alice)
        moved = move_ticket_to_team(conversation_id=conversation.pk, team=billing, by=supervisor)
        assert (moved.team, moved.offered_to_id) == (billing, bob.user_id)
        change = TicketEvent.objects.get(ticket=ticket, kind="team_changed")
        assert change.detail == {"from": "售后", "to": "账单", "team_id": billing.pk}
        assert change.actor == supervisor.user


# --- admin ---------------------------------------------------------------------------------------------------

def team_form(**fields) -> dict:
    return {"name": "售后", "keywords": "退款\n退货", "menu_choice": "", "priority": "10", "members": [], **fields}


def test_the_admin_creates_a_team_with_members_and_refuses_what_routing_could_not_use(admin_client, tenant_a):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        make_team("账单", keywords=["发票"], menu_choice="账单问题", is_default=True)
    refused = admin_client.post(f"{ADMIN}add/", team_form(keywords="退款\n 发票 ", menu_choice="账单问题",
                                                          is_default="on"))
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"keywords", "menu_choice", "is_default"}
    assert "账单" in errors["keywords"][0] and "账单" in errors["is_default"][0]
    twice = admin_client.post(f"{ADMIN}add/", team_form(keywords="退款\n退款"))
    assert twice.context["adminform"].form.errors["keywords"] == ["“退款”重复了。"]  # the admin speaks zh-hans
    with schema_context("alpha"):
        assert list(Team.objects.values_list("name", flat=True)) == ["账单"]
    saved = admin_client.post(f"{ADMIN}add/", team_form(keywords=" 退款 \n\n退货", members=[alice.pk]))
    assert saved.status_code == 302
    with schema_context("alpha"):
        team = Team.objects.get(name="售后")
        assert team.keywords == ["退款", "退货"] and list(team.members.all()) == [alice]
    agents = admin_client.get("/t/alpha/admin/tickets/agentprofile/").content.decode()
    assert "售后" in agents
    teams = admin_client.get(ADMIN).content.decode()
    assert "退款、退货" in teams


def test_the_queue_message_must_say_the_place(admin_client, tenant_a):
    with schema_context("alpha"):
        settings = TicketSettings.current()
    url = f"/t/alpha/admin/tickets/ticketsettings/{settings.pk}/change/"
    form = {"first_response_minutes": "5", "resolution_minutes": "240", "waiting_message": "稍等",
            "queue_position_notices": "on", "queue_position_step": "2", "queue_position_interval_minutes": "3"}
    refused = admin_client.post(url, {**form, "queue_position_message": "请稍候"})
    assert "{position}" in refused.context["adminform"].form.errors["queue_position_message"][0]
    assert admin_client.post(url, {**form, "queue_position_message": "前面还有 {position} 位"}).status_code == 302
    with schema_context("alpha"):
        settings.refresh_from_db()
        assert (settings.queue_position_message, settings.queue_position_step) == ("前面还有 {position} 位", 2)


# --- the queue page and the REST API -------------------------------------------------------------------------

def client_for(schema: str, username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


def beta_only_team() -> Team:
    """A team of beta whose id no team of alpha has (each schema counts its own ids)."""
    with schema_context("alpha"):
        taken = set(Team.objects.values_list("pk", flat=True))
    with schema_context("beta"):
        team = make_team("别家")
        while team.pk in taken:
            team = make_team(f"别家 {team.pk}")
    return team


def test_the_queue_shows_teams_and_a_supervisor_moves_a_customer_between_them(alpha_app, tenant_b):
    with schema_context("alpha"):
        AgentProfileFactory(user__username="boss", role=AgentProfile.Role.SUPERVISOR)
        alice = AgentProfileFactory(user__username="alice")
        sales = make_team("售后", keywords=["退款"], members=[alice])
        billing = make_team("账单", keywords=["发票"])
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "我要退款")
        ticket = hand_off(conversation)
    beta_team = beta_only_team()
    boss, agent = client_for("alpha", "boss"), client_for("alpha", "alice")
    queue = agent.get("/t/alpha/agent/api/queue/").json()
    assert queue["teams"] == [{"id": sales.pk, "name": "售后"}, {"id": billing.pk, "name": "账单"}]
    assert queue["me"]["teams"] == [sales.pk]
    assert queue["waiting"][0]["team"] == {"id": sales.pk, "name": "售后"}
    url = f"/t/alpha/agent/api/conversations/{conversation.pk}/team/"
    refused = agent.post(url, {"team": billing.pk}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
    assert (refused.status_code, refused.json()) == (409, {"detail": "Only a supervisor can move a ticket to "
                                                                     "another team."})
    in_chinese = agent.post(url, {"team": billing.pk}, content_type="application/json")  # zh-hans by default
    assert in_chinese.json() == {"detail": "只有主管可以把工单转到其他技能组。"}
    for bad in (beta_team.pk, "1", True, 2**70, -1):
        answer = boss.post(url, {"team": bad}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en")
        assert (answer.status_code, answer.json()) == (409, {"detail": "No such team."}), bad
    with schema_context("alpha"):
        assert Ticket.objects.get(pk=ticket.pk).team == sales
    moved = boss.post(url, {"team": billing.pk}, content_type="application/json").json()
    assert moved["ticket"]["team"] == {"id": billing.pk, "name": "账单"}
    assert moved["ticket"]["events"][-1]["kind"] == "team_changed"
    assert boss.post(url, {"team": None}, content_type="application/json").json()["ticket"]["team"] is None


def test_the_rest_api_shows_filters_and_moves_a_tickets_team(api_keys, alpha_app, tenant_b):
    with schema_context("alpha"):
        sales = make_team("售后", keywords=["退款"])
        billing = make_team("账单")
        conversation = ConversationFactory(contact__app=alpha_app)
        customer_wrote(conversation, "我要退款")
        ticket = hand_off(conversation)
        other = hand_off(ConversationFactory(contact__app=alpha_app))
    beta_team = beta_only_team()
    api = api_client(api_keys["alpha"])
    body = api.get(f"/t/alpha/api/tickets/{ticket.pk}/").json()
    assert body["team"] == {"id": sales.pk, "name": "售后"}
    assert [t["id"] for t in api.get(f"/t/alpha/api/tickets/?team={sales.pk}").json()["results"]] == [ticket.pk]
    assert [t["id"] for t in api.get("/t/alpha/api/tickets/?has_team=false").json()["results"]] == [other.pk]
    url = f"/t/alpha/api/tickets/{ticket.pk}/team/"
    for bad in ({"team_id": beta_team.pk}, {"team_id": "x"}, {}, {"team_id": 2**40}):
        answer = api.post(url, bad, content_type="application/json")
        assert answer.status_code == 400 and "team_id" in answer.json()["errors"], bad
    moved = api.post(url, {"team_id": billing.pk}, content_type="application/json").json()
    assert moved["team"] == {"id": billing.pk, "name": "账单"}
    assert moved["events"][-1]["kind"] == "team_changed" and moved["events"][-1]["actor"] == "api-key:integration"
    assert api.post(url, {"team_id": None}, content_type="application/json").json()["team"] is None
    assert api_client(api_keys["beta"]).post(f"/t/beta/api/tickets/{ticket.pk}/team/", {"team_id": None},
                                             content_type="application/json").status_code == 404
    assert api.post(f"/t/alpha/api/conversations/{other.conversation_id}/close/").status_code == 200
    closed = api.post(f"/t/alpha/api/tickets/{other.pk}/team/", {"team_id": billing.pk},
                      content_type="application/json")
    assert (closed.status_code, closed.json()["code"]) == (409, "ticket_not_active")
    with schema_context("alpha"):
        assert Ticket.objects.get(pk=other.pk).team is None
