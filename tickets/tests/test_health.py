"""The human side's health gauges, per tenant: tickets waiting, tickets past their SLA, agents online."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants.redis import redis_client
from testing.factories import AgentProfileFactory, TicketFactory
from tickets import presence
from tickets.health import human_side_health
from tickets.metrics import AGENTS_ONLINE, TICKETS_SLA_BREACHED, TICKETS_WAITING
from tickets.models import Ticket
from tickets.schedule import measure_human_side

pytestmark = pytest.mark.django_db


@pytest.fixture
def presence_keys():
    """Presence written by the test is removed afterwards (Redis outlives the rolled-back rows)."""
    yield
    for schema in ("alpha", "beta"):
        keys = [*redis_client().scan_iter(f"{schema}:presence:*"), f"{schema}:presence-away"]
        redis_client().delete(*keys)


def online(schema: str, count: int, *, away: int = 0, offline: int = 0) -> None:
    for number in range(count + away + offline):
        agent = AgentProfileFactory()
        if number < count + away:
            presence.touch(schema=schema, user_id=agent.user_id, socket=f"socket-{number}")
        if count <= number < count + away:
            presence.set_away(schema=schema, user_id=agent.user_id, away=True)


def test_each_tenant_counts_its_own_tickets_and_agents(tenants_world, presence_keys):
    past, future = timezone.now() - timedelta(minutes=5), timezone.now() + timedelta(hours=1)
    with schema_context("alpha"):
        TicketFactory.create_batch(2)  # waiting, within SLA
        TicketFactory(first_response_due_at=past)  # waiting, first response overdue
        TicketFactory(status=Ticket.Status.ASSIGNED, resolution_due_at=past)  # taken, resolution overdue
        TicketFactory(status=Ticket.Status.ASSIGNED, first_response_due_at=past,
                      first_responded_at=past - timedelta(minutes=1), resolution_due_at=future)  # answered in time
        TicketFactory(status=Ticket.Status.CLOSED, resolution_due_at=past)  # over: no longer counts
        online("alpha", 2, away=1, offline=1)
        alpha = human_side_health()
    with schema_context("beta"):
        TicketFactory()
        online("beta", 0, offline=1)
        beta = human_side_health()

    assert (alpha.tickets_waiting, alpha.tickets_sla_breached, alpha.agents_online) == (3, 2, 2)
    assert (beta.tickets_waiting, beta.tickets_sla_breached, beta.agents_online) == (1, 0, 0)


def test_the_scheduler_job_publishes_both_tenants(tenants_world, presence_keys):
    with schema_context("alpha"):
        TicketFactory.create_batch(2)
        online("alpha", 1)
    with schema_context("beta"):
        TicketFactory(first_response_due_at=timezone.now() - timedelta(seconds=1))

    measure_human_side()

    assert (TICKETS_WAITING.values[("alpha",)], TICKETS_WAITING.values[("beta",)]) == (2, 1)
    assert (TICKETS_SLA_BREACHED.values[("alpha",)], TICKETS_SLA_BREACHED.values[("beta",)]) == (0, 1)
    assert (AGENTS_ONLINE.values[("alpha",)], AGENTS_ONLINE.values[("beta",)]) == (1, 0)
