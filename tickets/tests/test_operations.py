"""The operations pages: every figure computed from rows made here (exact numbers), beta's rows never in
alpha's figures, the health levels and their reasons, and who may open the tenant and platform pages."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation
from django_tenants.utils import schema_context

from conversations.ai.breaker import call_with_breaker
from conversations.models import InboundMessage, OutboundMessage
from conversations.selectors import NO_OUTCOME
from conversations.vocabulary import Outcome, Stage
from testing.accounts import login_cookie, staff_client
from testing.factories import (
    AgentProfileFactory,
    AIProviderFactory,
    InboundMessageFactory,
    OutboundMessageFactory,
    TicketFactory,
    TraceEventFactory,
    UserFactory,
    WeComAppFactory,
)
from tickets import presence
from tickets.models import Ticket
from tickets.operations.figures import BAD, OK, WARN, health, take_snapshot, traffic, worst

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_breakers")]
TZ = ZoneInfo(settings.TIME_ZONE)
# A fixed "now" in the afternoon, so every row below has a known local hour and day.
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=TZ)
Status = InboundMessage.Status


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def customer_message(received: datetime, outcome: Outcome | None = None, seconds: float | None = None,
                     status: str | None = None, **fields) -> InboundMessage:
    """A stored customer message, settled `seconds` after it arrived with `outcome` as its trace says."""
    if status is None:
        status = Status.RATE_LIMITED if outcome == Outcome.RATE_LIMITED else Status.PROCESSED if outcome else \
            Status.PENDING
    row = InboundMessageFactory(status=status, **fields)
    processed_at = received + timedelta(seconds=seconds) if seconds is not None else None
    InboundMessage.objects.filter(pk=row.pk).update(received_at=received, processed_at=processed_at)
    if outcome and outcome != Outcome.RATE_LIMITED:
        TraceEventFactory(inbound=row, stage=Stage.PROCESSED, detail={"outcome": outcome.value})
    return row


# (received, outcome, seconds to settle) of alpha's customer messages; a pending one has no outcome.
ALPHA_MESSAGES = [
    (at(10, 9, 10), Outcome.AI, 2.0),
    (at(10, 9, 20), Outcome.KNOWLEDGE, 4.0),
    (at(10, 11, 5), Outcome.FALLBACK, 1.0),
    (at(10, 11, 40), Outcome.HANDOFF, 3.0),
    (at(10, 12, 10), Outcome.RATE_LIMITED, 0.5),
    (at(10, 12, 20), None, None),  # still waiting
    (at(9, 20, 0), Outcome.AI, 6.0),  # yesterday, within the last 24 hours
    (at(9, 9, 0), Outcome.ROUTED_TO_HUMAN, 9.0),  # yesterday, before the last 24 hours
    (at(5, 10, 0), Outcome.FALLBACK, 8.0),  # five days ago
]


@pytest.fixture
def alpha_rows(tenant_a):
    """alpha's rows: the messages above, a 微信客服 customer's message, and rows that must not count."""
    with schema_context("alpha"):
        for received, outcome, seconds in ALPHA_MESSAGES:
            customer_message(received, outcome, seconds)
        kf = WeComAppFactory(kind="kf")
        customer_message(at(10, 10, 15), Outcome.AI, 10.0, app=kf, origin=3, source=InboundMessage.Source.KF_PULL)
        # Not customer messages: an event, what a servicer wrote in the WeCom client (origin 5).
        customer_message(at(10, 10, 30), status=Status.PROCESSED, seconds=0.1, msg_type="event", event="enter_agent")
        customer_message(at(10, 10, 40), status=Status.RECORDED, app=kf, origin=5)
        # Outside the windows: eight days ago, and after "now".
        customer_message(at(2, 10, 0), Outcome.AI, 1.0)
        customer_message(at(10, 12, 45), Outcome.AI, 1.0)


@pytest.fixture
def beta_rows(tenant_b):
    """The same kinds of rows in beta: none of them may show in alpha's figures."""
    with schema_context("beta"):
        for _ in range(3):
            customer_message(at(10, 9, 30), Outcome.HANDOFF, 50.0)
        customer_message(at(10, 12, 0), None, None)
        OutboundMessageFactory(status=OutboundMessage.Status.DEAD)
        OutboundMessageFactory(status=OutboundMessage.Status.RETRYING)
        TicketFactory(first_response_due_at=NOW - timedelta(hours=1))


def expected_p95(seconds: list[float]) -> float:
    """percentile_cont(0.95) as PostgreSQL interpolates it (statistics' "inclusive" method)."""
    return statistics.quantiles(seconds, n=20, method="inclusive")[18]


def test_today_counts_and_shares_are_alpha_customer_messages_of_the_local_day(alpha_rows, beta_rows):
    with schema_context("alpha"):
        today = traffic(now=NOW).today

    assert today.start == at(10, 0)
    assert today.counts == {Outcome.AI: 2, Outcome.KNOWLEDGE: 1, Outcome.FALLBACK: 1, Outcome.HANDOFF: 1,
                            Outcome.ROUTED_TO_HUMAN: 0, Outcome.RATE_LIMITED: 1, Outcome.RATING: 0, Outcome.SURVEY: 0,
                            NO_OUTCOME: 1}
    assert (today.total, today.settled) == (7, 6)
    assert today.share(Outcome.AI) == 2 / 6
    assert today.share(Outcome.RATE_LIMITED) == 1 / 6
    assert today.p95_seconds == pytest.approx(expected_p95([2.0, 4.0, 1.0, 3.0, 0.5, 10.0]))


def test_hourly_buckets_cover_the_last_24_hours_by_outcome(alpha_rows, beta_rows):
    with schema_context("alpha"):
        hourly = traffic(now=NOW).hourly

    assert [b.start for b in hourly] == [at(9, 13) + timedelta(hours=n) for n in range(24)]
    by_hour = {b.start: {k: v for k, v in b.counts.items() if v} for b in hourly if b.total}
    assert by_hour == {
        at(9, 20): {Outcome.AI: 1},
        at(10, 9): {Outcome.AI: 1, Outcome.KNOWLEDGE: 1},
        at(10, 10): {Outcome.AI: 1},
        at(10, 11): {Outcome.FALLBACK: 1, Outcome.HANDOFF: 1},
        at(10, 12): {Outcome.RATE_LIMITED: 1, NO_OUTCOME: 1},
    }
    p95 = {b.start: b.p95_seconds for b in hourly if b.p95_seconds is not None}
    assert p95 == pytest.approx({at(9, 20): 6.0, at(10, 9): expected_p95([2.0, 4.0]), at(10, 10): 10.0,
                                 at(10, 11): expected_p95([1.0, 3.0]), at(10, 12): 0.5})


def test_daily_buckets_cover_the_last_7_local_days(alpha_rows, beta_rows):
    with schema_context("alpha"):
        daily = traffic(now=NOW).daily

    assert [b.start for b in daily] == [at(day, 0) for day in range(4, 11)]
    assert [b.total for b in daily] == [0, 1, 0, 0, 0, 2, 7]
    assert daily[5].counts[Outcome.ROUTED_TO_HUMAN] == 1 and daily[5].counts[Outcome.AI] == 1
    assert daily[1].counts[Outcome.FALLBACK] == 1
    assert daily[5].p95_seconds == pytest.approx(expected_p95([6.0, 9.0]))
    assert daily[0].p95_seconds is None and daily[0].share(Outcome.AI) is None


def test_snapshot_counts_backlog_ledger_tickets_and_agents_of_alpha_only(alpha_rows, beta_rows, redis_client):
    with schema_context("alpha"):
        for status, queued in [(OutboundMessage.Status.PENDING, NOW - timedelta(seconds=90)),
                               (OutboundMessage.Status.RETRYING, NOW - timedelta(seconds=400)),
                               (OutboundMessage.Status.DEAD, NOW - timedelta(hours=3)),
                               (OutboundMessage.Status.DEAD, NOW - timedelta(hours=2)),
                               (OutboundMessage.Status.SENT, NOW - timedelta(hours=5))]:
            row = OutboundMessageFactory(status=status)
            OutboundMessage.objects.filter(pk=row.pk).update(created_at=queued)
        breached = TicketFactory(first_response_due_at=NOW - timedelta(minutes=5))
        answered_late = TicketFactory(status=Ticket.Status.ASSIGNED, first_response_due_at=NOW - timedelta(hours=1),
                                      first_responded_at=NOW - timedelta(minutes=30))
        waiting = TicketFactory(first_response_due_at=NOW + timedelta(minutes=5))
        TicketFactory(status=Ticket.Status.RESOLVED, resolution_due_at=NOW - timedelta(hours=1),
                      resolved_at=NOW - timedelta(minutes=1))  # breached, but no longer open
        Ticket.objects.filter(pk=breached.pk).update(created_at=NOW - timedelta(minutes=20))
        Ticket.objects.filter(pk=waiting.pk).update(created_at=NOW - timedelta(minutes=2))
        online, away = AgentProfileFactory(), AgentProfileFactory()
        AgentProfileFactory()  # offline: no screen open
        for agent in (online, away):
            presence.touch(schema="alpha", user_id=agent.user_id, socket="s1")
        presence.set_away(schema="alpha", user_id=away.user_id, away=True)
        try:
            snapshot = take_snapshot(now=NOW)
        finally:
            for agent in (online, away):
                presence.drop(schema="alpha", user_id=agent.user_id, socket="s1")
            presence.set_away(schema="alpha", user_id=away.user_id, away=False)

    assert (snapshot.inbound_waiting, snapshot.inbound_oldest_seconds) == (1, 600.0)
    assert (snapshot.outbound_pending, snapshot.outbound_retrying, snapshot.outbound_oldest_seconds) == (1, 1, 400.0)
    assert snapshot.dead_letters == 2
    assert (snapshot.tickets_waiting, snapshot.tickets_waiting_oldest_seconds) == (2, 1200.0)
    assert snapshot.sla_breaches == 2 and answered_late.first_response_breached
    assert snapshot.agents_online == 1
    assert (snapshot.ai_enabled, snapshot.breaker) == (False, "closed")


def test_an_empty_tenant_is_healthy_but_for_its_missing_ai_provider(tenant_b):
    with schema_context("beta"):
        AIProviderFactory()
        items = health(take_snapshot(now=NOW))

    assert [(i.key, i.level) for i in items] == [("backlog", OK), ("delivery", OK), ("breaker", OK),
                                                 ("dead_letters", OK), ("sla", OK)]
    assert worst(items) == OK


def test_health_says_what_is_wrong_with_its_number(alpha_rows, tenant_b):
    with schema_context("alpha"):
        provider = AIProviderFactory(breaker_fail_max=1)
        with pytest.raises(RuntimeError):
            call_with_breaker(provider, _provider_down, schema="alpha")
        OutboundMessageFactory(status=OutboundMessage.Status.DEAD)
        OutboundMessageFactory(status=OutboundMessage.Status.RETRYING)
        TicketFactory(first_response_due_at=NOW - timedelta(minutes=5))
        with translation.override("en"):
            items = {i.key: i for i in health(take_snapshot(now=NOW))}
    with schema_context("beta"):
        AIProviderFactory()
        beta = {i.key: i.level for i in health(take_snapshot(now=NOW))}

    assert (items["backlog"].level, items["backlog"].reason) == (
        BAD, "1 message(s) waiting, the oldest for 10 min 0 s.")
    assert items["delivery"].level == WARN and "(1 retrying)" in items["delivery"].reason
    assert items["breaker"].level == BAD and items["breaker"].reason.startswith("Open for ")
    assert (items["dead_letters"].level, items["dead_letters"].reason) == (
        BAD, "1 reply part(s) gave up on, waiting to be re-sent.")
    assert (items["sla"].level, items["sla"].reason) == (BAD, "1 open ticket(s) past their SLA.")
    assert beta == {"backlog": OK, "delivery": OK, "breaker": OK, "dead_letters": OK, "sla": OK}


def _provider_down():
    raise RuntimeError("the provider is down")


# -- the pages ------------------------------------------------------------------------------------------


def test_the_admin_index_shows_the_health_summary_and_links_the_operations_page(tenant_a, alpha_rows):
    with schema_context("alpha"):
        OutboundMessageFactory(status=OutboundMessage.Status.DEAD)
    page = staff_client("alpha", superuser=False).get("/t/alpha/admin/", HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="ops-health"' in html and 'data-level="bad"' in html
    assert "1 reply part(s) gave up on, waiting to be re-sent." in html
    assert 'href="/t/alpha/admin/operations/"' in html


def test_the_operations_page_shows_the_figures_and_four_charts(tenant_a, alpha_rows):
    client = staff_client("alpha", superuser=False)
    page = client.get("/t/alpha/admin/operations/", HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="chart"') == 4
    assert "customer messages today" in html and "What the figures mean" in html
    assert 'href="/t/alpha/admin/conversations/outboundmessage/?status__exact=dead"' in html


def test_the_operations_pages_speak_chinese_first(tenant_a):
    client = staff_client("alpha", superuser=False)
    page = client.get("/t/alpha/admin/operations/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    index = client.get("/t/alpha/admin/", HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert "今日客户消息" in page.content.decode() and "打开运营页面" in index.content.decode()


@pytest.mark.parametrize("path", ["/t/alpha/admin/", "/t/alpha/admin/operations/"])
def test_anonymous_and_non_staff_users_are_sent_to_the_login(tenant_a, path):
    with schema_context("alpha"):
        customer = UserFactory(username="not-staff@alpha.test", is_staff=False)
    not_staff = Client()
    not_staff.cookies["sessionid"] = login_cookie("alpha", customer.username)

    for client in (Client(), not_staff):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/t/alpha/admin/login/")


def test_beta_staff_see_beta_figures_only(tenant_a, tenant_b):
    # Stored just now (the page counts the real day), more of everything in alpha than in beta.
    for schema, messages, dead in (("alpha", 3, 2), ("beta", 2, 1)):
        with schema_context(schema):
            InboundMessageFactory.create_batch(messages)
            OutboundMessageFactory.create_batch(dead, status=OutboundMessage.Status.DEAD)

    page = staff_client("beta", superuser=False).get("/t/beta/admin/operations/", HTTP_ACCEPT_LANGUAGE="en")

    assert page.status_code == 200
    assert (page.context["today"].total, page.context["snapshot"].inbound_waiting) == (2, 2)
    assert page.context["snapshot"].dead_letters == 1


@pytest.fixture
def platform_superuser(tenants_world):
    user = UserFactory(username="root@platform.test", is_superuser=True)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_the_platform_page_lists_every_active_tenant_with_its_figures(platform_superuser, tenant_a, tenant_b):
    # Stored just now (the page counts the real day): two messages in alpha, three and a dead letter in beta.
    for schema, messages in (("alpha", 2), ("beta", 3)):
        with schema_context(schema):
            InboundMessageFactory.create_batch(messages)
    with schema_context("beta"):
        OutboundMessageFactory(status=OutboundMessage.Status.DEAD)

    index = platform_superuser.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    page = platform_superuser.get("/admin/operations/", HTTP_ACCEPT_LANGUAGE="en")

    assert 'href="/admin/operations/"' in index.content.decode()
    assert page.status_code == 200
    rows = {row["tenant"].schema_name: row for row in page.context["rows"]}
    assert set(rows) == {"alpha", "beta"}
    assert (rows["alpha"]["today"].total, rows["beta"]["today"].total) == (2, 3)
    assert (rows["alpha"]["snapshot"].inbound_waiting, rows["beta"]["snapshot"].inbound_waiting) == (2, 3)
    assert (rows["alpha"]["snapshot"].dead_letters, rows["beta"]["snapshot"].dead_letters) == (0, 1)
    assert (rows["alpha"]["health_level"], rows["beta"]["health_level"]) == (WARN, BAD)  # no AI provider; dead
    html = page.content.decode()
    assert 'data-tenant="alpha"' in html and 'data-tenant="beta"' in html


def test_the_platform_page_is_refused_to_staff_who_are_not_superusers(tenants_world, tenant_a):
    staff = UserFactory(username="ops@platform.test", is_superuser=False)
    client = Client(HTTP_HOST="localhost")
    client.force_login(staff)
    # A tenant's staff session means nothing in the public schema: the login page.
    tenant_staff = Client(HTTP_HOST="localhost")
    tenant_staff.cookies["sessionid"] = login_cookie("alpha", tenant_a.staff_email)

    assert client.get("/admin/operations/").status_code == 403
    assert 'id="platform-operations-link"' not in client.get("/admin/").content.decode()
    response = tenant_staff.get("/admin/operations/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
