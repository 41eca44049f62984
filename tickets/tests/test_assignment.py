"""Round-robin assignment (tickets/teams/assignment.py): fair rotation among a team's online agents under their
capacity, kept in Postgres; a team with nobody online waits; simultaneous handoffs never break the rotation."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings
from conversations.services.handoff import hand_off_to_human
from testing.broker import flush_test_broker
from testing.factories import AgentProfileFactory, ConversationFactory, MessageFactory
from testing.threads import run_in_threads
from tickets import presence
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.services import claim_conversation, reoffer_waiting_tickets
from tickets.teams.models import Team

db = pytest.mark.django_db


def online(*agents: AgentProfile, schema: str = "alpha") -> None:
    for agent in agents:
        presence.touch(schema=schema, user_id=agent.user_id, socket=f"s-{agent.user_id}")


def offline(*agents: AgentProfile, schema: str = "alpha") -> None:
    for agent in agents:
        presence.drop(schema=schema, user_id=agent.user_id, socket=f"s-{agent.user_id}")


def team_of(name: str, *members: AgentProfile, keywords=("退款",)) -> Team:
    team = Team.objects.create(name=name, keywords=list(keywords))
    team.members.set(members)
    return team


def hand_off(app, text: str = "我要退款") -> Ticket:
    conversation = ConversationFactory(contact__app=app)
    MessageFactory(conversation=conversation, text=text)
    receipt = hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED,
                                desk=DeskSettings.current())
    return Ticket.objects.get(pk=receipt.ticket_id)


@db
def test_offers_rotate_through_the_teams_online_agents_in_turn(alpha_app):
    with schema_context("alpha"):
        a, b, c = (AgentProfileFactory(user__username=name, max_concurrent=10) for name in ("a", "b", "c"))
        outsider = AgentProfileFactory(user__username="outsider")
        team_of("售后", a, b, c)
        online(a, b, c, outsider)
        offered = [hand_off(alpha_app).offered_to_id for _ in range(9)]
        assert offered == [a.user_id, b.user_id, c.user_id] * 3  # never the agent outside the team
        # A claim is work too: the claimer goes to the back of the rotation.
        claim_conversation(conversation_id=hand_off(alpha_app, "退款 again").conversation_id, profile=b)
        assert [hand_off(alpha_app).offered_to_id for _ in range(2)] == [c.user_id, a.user_id]
        offline(a, b, c, outsider)


@db
def test_capacity_counts_owned_conversations_and_pending_offers(alpha_app):
    with schema_context("alpha"):
        small = AgentProfileFactory(user__username="small", max_concurrent=1)
        large = AgentProfileFactory(user__username="large", max_concurrent=2)
        team_of("售后", small, large)
        online(small, large)
        offered = [hand_off(alpha_app).offered_to_id for _ in range(4)]
        assert offered == [small.user_id, large.user_id, large.user_id, None]
        last = Ticket.objects.order_by("-id").first()
        assert list(last.events.values_list("kind", "detail")) == [
            ("opened", {"reason": "customer_asked"}), ("routed", last.events.get(kind="routed").detail),
            ("nobody_online", {"team": "售后"})]
        offline(small, large)


@db
def test_a_team_with_nobody_online_waits_for_its_members_not_for_other_agents(alpha_app):
    with schema_context("alpha"):
        member = AgentProfileFactory(user__username="member")
        outsider = AgentProfileFactory(user__username="outsider")
        team_of("售后", member)
        online(outsider)
        ticket = hand_off(alpha_app)
        assert ticket.offered_to_id is None
        assert reoffer_waiting_tickets() == 0  # the outsider is online, but not of the team
        online(member)
        assert reoffer_waiting_tickets() == 1
        ticket.refresh_from_db()
        assert ticket.offered_to_id == member.user_id
        offline(member, outsider)


@db
def test_a_team_without_members_is_offered_to_every_agent(alpha_app):
    with schema_context("alpha"):
        anyone = AgentProfileFactory(user__username="anyone")
        AgentProfileFactory(user__username="gone", is_active=False).teams.add(team_of("售后"))
        online(anyone)
        ticket = hand_off(alpha_app)
        assert ticket.team.name == "售后" and ticket.offered_to_id == anyone.user_id
        offline(anyone)


@db
def test_the_rotation_is_the_tenants_own(alpha_app, tenant_b):
    with schema_context("beta"):
        beta_agent = AgentProfileFactory(user__username="beta-agent")
        online(beta_agent, schema="beta")
    with schema_context("alpha"):
        alpha_agent = AgentProfileFactory(user__username="alpha-agent")
        online(alpha_agent)
        assert hand_off(alpha_app).offered_to_id == alpha_agent.user_id
        offline(alpha_agent)
        assert hand_off(alpha_app).offered_to_id is None  # beta's online agent is nobody here
    with schema_context("beta"):
        beta_agent.refresh_from_db()
        assert beta_agent.last_offered_at is None and not Ticket.objects.exists()
        offline(beta_agent, schema="beta")


def test_simultaneous_handoffs_in_separate_transactions_keep_the_rotation_fair(committed_app):
    """Six handoffs at the same moment, each in its own transaction and connection (as in six worker threads):
    the advisory lock makes each see the others' offers, so three agents get two each."""
    app = committed_app("alpha", agent_id=7171)
    with schema_context("alpha"):
        agents = [AgentProfileFactory(user__username=f"rr-{n}", max_concurrent=10) for n in range(3)]
        team = team_of("并发", *agents, keywords=("并发测试",))
        conversations = []
        for n in range(6):
            conversation = ConversationFactory(contact__app=app, contact__external_id=f"rr-customer-{n}")
            MessageFactory(conversation=conversation, text="并发测试")
            conversations.append(conversation.pk)
        online(*agents)
    barrier = threading.Barrier(len(conversations))

    def hand_off_one(conversation_id: int):
        def run() -> int:
            with schema_context("alpha"):
                barrier.wait(timeout=10)
                with transaction.atomic():
                    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
                    return hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED,
                                             desk=DeskSettings.current()).ticket_id
        return run

    try:
        ticket_ids = run_in_threads(*(hand_off_one(pk) for pk in conversations), timeout=60)
        with schema_context("alpha"):
            offers = Counter(Ticket.objects.filter(pk__in=ticket_ids).values_list("offered_to_id", flat=True))
            assert offers == {agent.user_id: 2 for agent in agents}
            assert set(Ticket.objects.filter(pk__in=ticket_ids).values_list("team_id", flat=True)) == {team.pk}
    finally:
        with schema_context("alpha"):
            offline(*agents)
            TicketEvent.objects.filter(ticket__conversation__contact__app=app).delete()
            team.delete()
            user_ids = [agent.user_id for agent in agents]
            AgentProfile.objects.filter(user_id__in=user_ids).delete()
            get_user_model().objects.filter(pk__in=user_ids).delete()
        flush_test_broker()  # the handoff messages' delivery jobs, which no worker runs here
