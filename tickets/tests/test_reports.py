"""The reports: every figure computed from rows made here with known times (exact numbers, in the tenant's own
time zone: Europe/Berlin, not the deployment's Asia/Shanghai), the edge cases (no tickets, a reopened ticket,
a conversation crossing local midnight, a survey never answered, one WeCom allowed no message for), beta's rows
never in alpha's figures, the CSV files (BOM, spreadsheet-safe), the API and who may see them."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import timezone, translation
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message, OutboundMessage
from conversations.services.api_keys import create_api_key
from conversations.vocabulary import Outcome, Stage
from testing.accounts import api_client, login_cookie
from testing.factories import (
    AgentProfileFactory,
    ConversationFactory,
    InboundMessageFactory,
    KnowledgeEntryFactory,
    MessageFactory,
    OutboundMessageFactory,
    TicketFactory,
    TraceEventFactory,
)
from tickets.business_hours_models import BusinessHours
from tickets.csat_models import Survey
from tickets.models import AgentProfile, Ticket
from tickets.reports.figures import bot_figures, human_figures, rating_of, report
from tickets.reports.period import Period, PeriodInvalid, parse_period, tenant_zone
from tickets.reports.tables import build, write_csv
from tickets.teams.models import Team

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")
WEEK = Period(first=date(2026, 3, 9), last=date(2026, 3, 15), zone=BERLIN)  # Monday to Sunday
NOW = datetime(2026, 3, 16, 12, 0, tzinfo=BERLIN)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN)


def ticket(created: datetime, *, assignee=None, team=None, status=Ticket.Status.ASSIGNED, first_response=None,
           resolved=None, survey: tuple[str, str, int | None] | None = None) -> Ticket:
    """A ticket handed off at `created`; seconds after it for the first response and the resolution; a survey
    (status, scale, score)."""
    row = TicketFactory(assignee=assignee.user if assignee else None, team=team, status=status)
    Ticket.objects.filter(pk=row.pk).update(
        created_at=created,
        first_responded_at=created + timedelta(seconds=first_response) if first_response is not None else None,
        resolved_at=created + timedelta(seconds=resolved) if resolved is not None else None)
    if survey:
        status, scale, score = survey
        Survey.objects.create(ticket=row, contact_id=row.conversation.contact_id, status=status, scale=scale,
                              score=score, agent=row.assignee)
    row.refresh_from_db()
    return row


def agent_reply(row: Ticket, sent: datetime, status=OutboundMessage.Status.SENT) -> None:
    OutboundMessageFactory(contact=row.conversation.contact, conversation=row.conversation,
                           author=Message.Author.AGENT, status=status, sent_at=sent)


@pytest.fixture
def berlin(tenant_a):
    with schema_context("alpha"):
        BusinessHours.objects.create(pk=1, time_zone="Europe/Berlin")


@pytest.fixture
def human_rows(berlin):
    """alpha's tickets of the week (and around it); returns the agents and the team."""
    with schema_context("alpha"):
        jia = AgentProfileFactory(display_name="甲")
        yi = AgentProfileFactory(display_name="乙", role=AgentProfile.Role.SUPERVISOR)
        after_sales = Team.objects.create(name="售后")
        closed, resolved = Ticket.Status.CLOSED, Ticket.Status.RESOLVED
        ticket(at(9, 10), assignee=jia, team=after_sales, status=closed, first_response=60, resolved=600,
               survey=(Survey.Status.ANSWERED, "3", 3))
        # Handed off at 23:50 on Monday, answered after midnight: Monday's, 20 minutes. The first response is
        # read from the ledger (the scheduler never recorded it); a dead reply before it is none.
        crossing = ticket(at(9, 23, 50), assignee=jia, team=after_sales, status=closed, resolved=40 * 60,
                          survey=(Survey.Status.SENT, "3", None))  # never answered
        agent_reply(crossing, at(10, 0, 5), status=OutboundMessage.Status.DEAD)
        agent_reply(crossing, at(10, 0, 10))
        # Resolved, then reopened: not resolved (its old resolved_at stays on the row).
        ticket(at(10, 9), assignee=yi, status=Ticket.Status.ASSIGNED, first_response=300, resolved=400)
        ticket(at(10, 11), team=after_sales, status=Ticket.Status.OPEN)  # nobody took it
        ticket(at(11, 14), assignee=yi, team=after_sales, status=resolved, first_response=120, resolved=1800,
               survey=(Survey.Status.ANSWERED, "5", 2))  # 不满意
        ticket(at(12, 8), assignee=jia, status=closed, first_response=30, resolved=90,
               survey=(Survey.Status.NOT_SENT, "3", None))
        # Outside the week: Sunday 23:59 before it, the Monday 00:00 after it.
        ticket(at(8, 23, 59), assignee=jia, first_response=1, resolved=1, status=closed)
        ticket(at(16, 0, 0), assignee=jia, first_response=1, resolved=1, status=closed)
    return jia, yi, after_sales


def test_the_tenant_zone_is_the_business_hours_one_and_the_default_period_is_the_last_seven_days(berlin):
    with schema_context("alpha"):
        zone = tenant_zone()
    assert zone == BERLIN
    # 23:30 UTC on the 15th is already the 16th in Berlin.
    period = parse_period(first=None, last=None, zone=zone, now=datetime(2026, 3, 15, 23, 30, tzinfo=ZoneInfo("UTC")))
    assert (period.first, period.last) == (date(2026, 3, 10), date(2026, 3, 16))
    assert period.start == at(10, 0) and period.end == datetime(2026, 3, 17, tzinfo=BERLIN)
    assert parse_period(first="2026-03-09", last="2026-03-15", zone=zone) == WEEK
    assert WEEK.weeks == [date(2026, 3, 9)]
    assert Period(first=date(2026, 3, 8), last=date(2026, 3, 9), zone=BERLIN).weeks == [date(2026, 3, 2),
                                                                                        date(2026, 3, 9)]
    for first, last in (("2026-03-10", "2026-03-09"), ("2026-01-01", "2026-06-30"), ("yesterday", None),
                        (None, "2026-02-30"), ("9999-12-30", "9999-12-31"), (None, "0001-01-02")):
        with pytest.raises(PeriodInvalid):
            parse_period(first=first, last=last, zone=zone)


def test_a_tenant_without_business_hours_reports_in_the_deployments_zone(tenant_a):
    with schema_context("alpha"):
        assert str(tenant_zone()) == "Asia/Shanghai"
        assert not BusinessHours.objects.exists()  # read, not created


def test_per_agent_figures_from_the_rows(human_rows):
    jia, yi, _team = human_rows
    with schema_context("alpha"):
        human = human_figures(WEEK)
    assert [(row.key, row.name) for row in human.agents] == [(yi.user_id, "乙"), (jia.user_id, "甲")]
    by_name = {row.name: row.figures for row in human.agents}
    a = by_name["甲"]
    assert (a.tickets, a.handled, a.customers, a.responded) == (3, 3, 3, 3)
    assert a.first_response_avg_seconds == (60 + 20 * 60 + 30) / 3
    assert a.reply_rate == 1.0
    assert (a.resolved, a.resolution_avg_seconds) == (3, (600 + 40 * 60 + 90) / 3)
    # The not_sent survey is not a survey sent; the unanswered one is.
    assert (a.surveys_sent, a.surveys_answered, a.participation_rate) == (2, 1, 0.5)
    assert (a.satisfied_rate, a.middling_rate, a.dissatisfied_rate) == (1.0, 0.0, 0.0)
    b = by_name["乙"]
    assert (b.handled, b.responded, b.first_response_avg_seconds) == (2, 2, 210.0)
    assert (b.resolved, b.resolution_avg_seconds) == (1, 1800.0)  # the reopened one is not resolved
    assert (b.surveys_sent, b.surveys_answered, b.satisfied_rate, b.dissatisfied_rate) == (1, 1, 0.0, 1.0)


def test_per_team_total_daily_and_weekly_figures_from_the_rows(human_rows):
    _jia, _yi, after_sales = human_rows
    with schema_context("alpha"):
        human = human_figures(WEEK)
    assert [(row.key, row.name) for row in human.teams] == [(after_sales.pk, "售后"), (None, "")]
    team, none = (row.figures for row in human.teams)
    assert (team.tickets, team.handled, team.responded) == (4, 3, 3)
    assert team.first_response_avg_seconds == (60 + 1200 + 120) / 3
    assert team.reply_rate == 1.0
    assert (team.resolved, team.resolution_avg_seconds) == (3, (600 + 2400 + 1800) / 3)
    assert (team.surveys_sent, team.surveys_answered, team.satisfied, team.dissatisfied) == (3, 2, 1, 1)
    assert (none.tickets, none.first_response_avg_seconds, none.resolved, none.surveys_sent) == (2, 165.0, 1, 0)
    assert none.participation_rate is None and none.satisfied_rate is None
    total = human.total
    assert (total.tickets, total.handled, total.customers, total.responded) == (6, 5, 6, 5)
    assert total.reply_rate == 1.0
    assert total.first_response_avg_seconds == (60 + 1200 + 300 + 120 + 30) / 5
    assert (total.resolved, total.resolution_avg_seconds) == (4, (600 + 2400 + 1800 + 90) / 4)
    assert [human.daily[day].tickets for day in WEEK.days] == [2, 2, 1, 1, 0, 0, 0]
    assert human.daily[date(2026, 3, 9)].first_response_avg_seconds == (60 + 1200) / 2
    assert human.daily[date(2026, 3, 14)].first_response_avg_seconds is None
    assert list(human.weekly) == [date(2026, 3, 9)] and human.weekly[date(2026, 3, 9)] == total


def test_no_tickets_gives_zeros_and_no_rates(berlin):
    with schema_context("alpha"):
        human = human_figures(WEEK)
    assert human.agents == [] and human.teams == []
    assert (human.total.tickets, human.total.reply_rate, human.total.first_response_avg_seconds) == (0, None, None)
    assert all(figures.tickets == 0 for figures in human.daily.values())


def test_survey_ratings_split_as_wecoms_three_rates():
    assert [rating_of(scale="3", score=s) for s in (3, 2, 1)] == ["satisfied", "middling", "dissatisfied"]
    assert [rating_of(scale="5", score=s) for s in (5, 4, 3, 2, 1)] == [
        "satisfied", "satisfied", "middling", "dissatisfied", "dissatisfied"]


# --- the bot ---------------------------------------------------------------------------------------------

def customer_message(conversation: Conversation, sent: datetime, outcome: Outcome | None, *,
                     hit: bool = False) -> Message:
    """A customer's message at `sent`, settled with `outcome`; `hit`: the bot's answer drew on a knowledge entry."""
    inbound = InboundMessageFactory(status="processed")
    message = MessageFactory(conversation=conversation, author=Message.Author.CUSTOMER, inbound=inbound)
    Message.objects.filter(pk=message.pk).update(created_at=sent)
    if outcome:
        TraceEventFactory(inbound=inbound, stage=Stage.PROCESSED, detail={"outcome": outcome.value})
    if outcome in (Outcome.AI, Outcome.KNOWLEDGE, Outcome.FALLBACK):
        entry = KnowledgeEntryFactory() if hit else None
        answer = MessageFactory(conversation=conversation, author=Message.Author.AI, knowledge_entry=entry)
        OutboundMessageFactory(contact=conversation.contact, conversation=conversation, inbound=inbound,
                               message=answer, status=OutboundMessage.Status.SENT)
    return message


def conversation(*, last: datetime, closed: datetime | None = None, contact=None) -> Conversation:
    row = ConversationFactory(**({"contact": contact} if contact else {}),
                              state=Conversation.State.CLOSED if closed else Conversation.State.BOT)
    Conversation.objects.filter(pk=row.pk).update(last_message_at=last, closed_at=closed)
    return row


@pytest.fixture
def bot_rows(berlin):
    with schema_context("alpha"):
        resolved = conversation(last=at(9, 10, 1), closed=at(9, 11))
        customer_message(resolved, at(9, 10), Outcome.AI, hit=True)
        customer_message(resolved, at(9, 10, 1), Outcome.AI)
        # Crossing midnight: a fallback on Monday, the handoff on Tuesday (its ticket).
        transferred = conversation(last=at(10, 0, 5))
        customer_message(transferred, at(9, 23, 55), Outcome.FALLBACK)
        customer_message(transferred, at(10, 0, 5), Outcome.HANDOFF)
        TicketFactory(conversation=transferred)
        idle = conversation(last=at(10, 9))  # not closed, idle for days: ended without a human
        customer_message(idle, at(10, 9), Outcome.KNOWLEDGE, hit=True)
        active = conversation(last=NOW - timedelta(minutes=5), contact=resolved.contact)  # still going
        customer_message(active, at(10, 10), Outcome.AI)
        human = conversation(last=at(11, 15))
        customer_message(human, at(11, 15), Outcome.ROUTED_TO_HUMAN)  # a human owned it: not the bot's
        rating = conversation(last=at(11, 16))
        customer_message(rating, at(11, 16), Outcome.RATING)
        customer_message(rating, at(8, 23, 59), Outcome.AI)  # before the week
        MessageFactory(conversation=rating, author=Message.Author.AI)  # not a customer's


def test_bot_figures_from_the_rows(bot_rows):
    with schema_context("alpha"):
        bot = bot_figures(WEEK, now=NOW)
    total = bot.total
    assert (total.customer_messages, total.sessions, total.customers) == (8, 6, 5)
    assert (total.bot_sessions, total.transferred, total.transfer_rate) == (4, 1, 0.25)
    assert (total.ai_resolved, total.ai_resolution_rate) == (2, 0.5)
    assert (total.bot_messages, total.knowledge_hits, total.knowledge_hit_rate) == (6, 2, 2 / 6)
    assert (total.fallbacks, total.fallback_rate) == (1, 1 / 6)
    monday, tuesday, wednesday = (bot.daily[date(2026, 3, d)] for d in (9, 10, 11))
    assert (monday.customer_messages, monday.bot_sessions, monday.transferred, monday.ai_resolved) == (3, 2, 0, 1)
    assert (tuesday.customer_messages, tuesday.bot_sessions, tuesday.transferred, tuesday.ai_resolved) == (3, 3, 1, 1)
    assert (wednesday.sessions, wednesday.bot_sessions, wednesday.transfer_rate) == (2, 0, None)
    assert bot.daily[date(2026, 3, 15)].customer_messages == 0
    # The week counts the midnight-crossing conversation once, as the period does.
    assert bot.weekly[date(2026, 3, 9)] == total


def test_beta_sees_none_of_alphas_rows_and_alpha_none_of_betas(human_rows, bot_rows, tenant_b):
    with schema_context("beta"):
        BusinessHours.objects.create(pk=1, time_zone="Europe/Berlin")
        ticket(at(10, 12), assignee=AgentProfileFactory(display_name="丙"), first_response=5, resolved=5,
               status=Ticket.Status.CLOSED)
        beta_human, beta_bot = human_figures(WEEK), bot_figures(WEEK, now=NOW)
    assert [(row.name, row.figures.tickets) for row in beta_human.agents] == [("丙", 1)]
    assert beta_bot.total.customer_messages == 0
    with schema_context("alpha"):
        alpha_human = human_figures(WEEK)
    assert alpha_human.total.tickets == 6 and "丙" not in [row.name for row in alpha_human.agents]


# --- the page, the CSV files, the API and who sees them ---------------------------------------------------

def client_for(username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie("alpha", username)
    return client


QUERY = "?from=2026-03-09&to=2026-03-15"


def test_supervisors_see_the_page_and_agents_get_403(human_rows):
    jia, yi, _team = human_rows
    page = client_for(yi.user.username).get(f"/t/alpha/agent/reports/{QUERY}", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="reports-link"' in html and "售后" in html and "甲" in html
    assert "平均首次响应" in html  # in Chinese
    assert html.count('<svg class="chart"') == 8
    refused = client_for(jia.user.username).get(f"/t/alpha/agent/reports/{QUERY}")
    assert refused.status_code == 403 and 'id="table-agents"' not in refused.content.decode()
    assert client_for(jia.user.username).get(f"/t/alpha/agent/reports/agents.csv{QUERY}").status_code == 403
    assert 'id="reports-link"' not in client_for(jia.user.username).get("/t/alpha/agent/").content.decode()
    anonymous = Client().get("/t/alpha/agent/reports/")
    assert anonymous.status_code == 302 and "/agent/login/" in anonymous["Location"]


def test_a_bad_period_is_refused_with_the_reason(human_rows):
    _jia, yi, _team = human_rows
    client = client_for(yi.user.username)
    page = client.get("/t/alpha/agent/reports/?from=2026-03-15&to=2026-03-09", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 400
    assert "The period starts (2026-03-15) after it ends (2026-03-09)." in page.content.decode()
    assert client.get("/t/alpha/agent/reports/days.csv?from=nope").status_code == 400
    assert client.get(f"/t/alpha/agent/reports/nothing.csv{QUERY}").status_code == 404


def test_the_csv_files_hold_the_tables_with_a_bom_and_no_formulas(human_rows):
    jia, yi, _team = human_rows
    with schema_context("alpha"):
        AgentProfile.objects.filter(pk=jia.pk).update(display_name='=HYPERLINK("http://x","甲")')
    response = client_for(yi.user.username).get(f"/t/alpha/agent/reports/agents.csv{QUERY}",
                                                HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="report-agents-2026-03-09-2026-03-15.csv"' in response["Content-Disposition"]
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["坐席", "工单", "接入人工会话数"]
    by_name = {row[0]: row for row in rows[1:]}
    assert set(by_name) == {"乙", '\'=HYPERLINK("http://x","甲")'}
    jia_row = by_name['\'=HYPERLINK("http://x","甲")']
    assert jia_row[1:5] == ["3", "3", "3", "1.0"] and jia_row[5] == "430.0"
    days = client_for(yi.user.username).get(f"/t/alpha/agent/reports/days.csv{QUERY}", HTTP_ACCEPT_LANGUAGE="en")
    day_rows = list(csv.reader(io.StringIO(days.content.decode("utf-8-sig"))))
    assert [row[0] for row in day_rows[1:]] == [f"2026-03-{d:02d}" for d in range(9, 16)] + ["All"]
    assert [row[1] for row in day_rows[1:]] == ["2", "2", "1", "1", "0", "0", "0", "6"]
    assert write_csv(["a"], [["-1+1", 5, None, "@x"]]).decode("utf-8-sig").splitlines() == ["a", "'-1+1,5,,'@x"]


def test_the_tables_are_the_figures(human_rows):
    with schema_context("alpha"):
        rep = report(WEEK, now=NOW)
    with translation.override("en"):
        teams, weeks = build(rep, "teams"), build(rep, "weeks")
    assert [row[0] for row in teams.rows] == ["售后", "No team", "All"]
    assert teams.rows[-1][1:3] == [6, 5]
    assert [row[0] for row in weeks.rows] == ["2026-03-09", "All"] and weeks.rows[0][1:] == weeks.rows[1][1:]


@pytest.fixture
def keys(tenant_a, tenant_b):
    with schema_context("alpha"):
        _row, reports = create_api_key(name="bi", scopes=["tickets:read"])
        _row, other = create_api_key(name="settings", scopes=["settings:write", "conversations:write"])
    with schema_context("beta"):
        _row, beta = create_api_key(name="bi", scopes=["tickets:read"])
    return reports, other, beta


def test_the_api_gives_the_same_figures_under_wecoms_names(human_rows, keys):
    reports, other, beta = keys
    response = api_client(reports).get(f"/t/alpha/api/reports/{QUERY}")
    assert response.status_code == 200
    body = response.json()
    assert body["period"] == {"start": "2026-03-09", "end": "2026-03-15", "time_zone": "Europe/Berlin"}
    jia = next(row for row in body["agents"] if row["name"] == "甲")
    assert {k: jia[k] for k in ("session_cnt", "reply_rate", "first_reply_average_sec",
                                "satisfaction_investgate_cnt", "satisfaction_participation_rate",
                                "satisfied_rate", "resolution_average_sec")} == {
        "session_cnt": 3, "reply_rate": 1.0, "first_reply_average_sec": 430.0, "satisfaction_investgate_cnt": 2,
        "satisfaction_participation_rate": 0.5, "satisfied_rate": 1.0, "resolution_average_sec": 1030.0}
    assert body["total"]["tickets_cnt"] == 6 and len(body["days"]) == 7 and len(body["weeks"]) == 1
    assert body["days"][0]["start"] == "2026-03-09" and body["days"][0]["human"]["tickets_cnt"] == 2
    assert set(body["bot"]) >= {"customer_msg_cnt", "ai_session_reply_cnt", "ai_transfer_rate", "ai_knowledge_hit_rate"}
    refused = api_client(other).get(f"/t/alpha/api/reports/{QUERY}")
    assert refused.status_code == 403 and "tickets:read" in refused.json()["detail"]
    bad = api_client(reports).get("/t/alpha/api/reports/?from=2026-13-01")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert api_client(reports).post("/t/alpha/api/reports/").status_code == 403  # tickets:write needed first
    # beta's key reads beta's figures (none), never alpha's.
    beta_body = api_client(beta).get(f"/t/beta/api/reports/{QUERY}").json()
    assert beta_body["agents"] == [] and beta_body["total"]["tickets_cnt"] == 0
    assert api_client(beta).get(f"/t/alpha/api/reports/{QUERY}").status_code in (401, 403)


def test_todays_figures_use_now_by_default(berlin):
    with schema_context("alpha"):
        period = parse_period(first=None, last=None, zone=tenant_zone())
    assert period.last == timezone.now().astimezone(BERLIN).date()
