"""Issue 14's "done when", walked through in a real browser against the live stack of test_browser_agent.py
(uvicorn, a real worker, the WeCom sandbox and its fake model): a supervisor sets business hours, a team and a
canned reply in the admin; a customer the bot answers from the knowledge base, another who wants a human about a
return and is queued for the team; the team's agent answers with the canned reply on the conversation screen and
closes the conversation there; the customer gets the satisfaction survey and answers it; the supervisor's
reports page then shows the figures of this traffic, each checked against the rows it was computed from, and
its CSV file holds them."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message, OutboundMessage, TraceEvent
from conversations.vocabulary import Outcome, Stage
from testing.browser import VIEWPORT, expect
from testing.factories import AgentProfileFactory
from testing.waiting import wait_until
from testing.wecom import sender_for
from tickets.business_hours_models import BusinessHours
from tickets.canned.models import CannedReply
from tickets.csat_models import CsatSettings, Survey
from tickets.models import AgentProfile, Ticket
from tickets.operations.figures import duration
from tickets.services import claim_conversation
from tickets.teams.models import Team
from tickets.tests.test_browser_agent import (  # noqa: F401  (fixtures: the live stack and its agent)
    ASKED,
    KNOWLEDGE,
    add_session,
    received,
    screenshot_dir,
    snap,
    stack,
    staff_agent,
)

pytestmark = pytest.mark.live
SHANGHAI = ZoneInfo("Asia/Shanghai")
ASKER, RETURNER = "kehu-report-bot", "kehu-report"
CANNED = "{customer_name}您好，我是{agent_name}。质量问题退货的运费由我们承担。"
FILLED = f"{RETURNER}您好，我是小李。质量问题退货的运费由我们承担。"
QUESTION = "请您对本次服务进行评价"


# What the supervisor may change in the admin (the walk's own user: the shared staff user keeps its rights).
SUPERVISOR_PERMISSIONS = ["view_businesshours", "change_businesshours", "view_team", "add_team", "change_team",
                          "view_cannedreply", "add_cannedreply", "change_cannedreply"]


@pytest.fixture
def walk(staff_agent, redis_client):  # noqa: F811
    """The supervisor 老周 (staff, allowed the three admin pages), the team's agent 小李, surveys on; what the walk
    creates in the admin is removed afterwards (staff_agent: the live stack needs it)."""
    with schema_context("alpha"):
        supervisor = AgentProfileFactory(display_name="老周", role=AgentProfile.Role.SUPERVISOR,
                                         user__username="laozhou@alpha.test")
        supervisor.user.user_permissions.set(Permission.objects.filter(content_type__app_label="tickets",
                                                                       codename__in=SUPERVISOR_PERMISSIONS))
        agent = AgentProfileFactory(display_name="小李", user__username="xiaoli@alpha.test")
        CsatSettings.objects.update_or_create(pk=1, defaults={"enabled": True, "question": QUESTION})
    yield supervisor, agent
    with schema_context("alpha"):
        CsatSettings.objects.filter(pk=1).update(enabled=False)
        BusinessHours.objects.all().delete()
        CannedReply.objects.filter(shortcode="tuihuo").delete()
        Team.objects.filter(name="售后").delete()
        get_user_model().objects.filter(pk__in=[supervisor.user_id, agent.user_id]).delete()
    for key in redis_client.scan_iter("alpha:csat-pending:*"):
        redis_client.delete(key)


def admin_sets_up_the_desk(page, base: str) -> None:
    """Business hours (open around the clock, in Shanghai), the team 售后 with 小李, the shared canned reply."""
    page.goto(f"{base}/admin/tickets/businesshours/")
    page.locator("#id_enabled").check()
    page.locator("#id_time_zone").fill("Asia/Shanghai")
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"):
        page.locator(f"#id_{day}").fill("00:00-24:00")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.goto(f"{base}/admin/tickets/team/add/")
    page.locator("#id_name").fill("售后")
    page.locator("#id_keywords").fill("退货")
    page.locator("#id_members_from option", has_text="小李").dblclick()  # the two-box widget: into "chosen"
    expect(page.locator("#id_members_to option", has_text="小李")).to_have_count(1)
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    page.goto(f"{base}/admin/tickets/cannedreply/add/")
    page.locator("#id_shortcode").fill("tuihuo")
    page.locator("#id_title").fill("退货运费")
    page.locator("#id_text").fill(CANNED)
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()


def cells(page, table: str, first: str) -> list[str]:
    row = page.locator(f"#table-{table} tbody tr", has=page.locator("td:first-child", has_text=first))
    expect(row).to_have_count(1)
    return [text.strip() for text in row.locator("td").all_inner_texts()]


@pytest.mark.timeout(300)  # the whole feature in one walk: admin, two customers, the agent screen, the reports
def test_a_supervisor_sets_up_the_desk_and_the_reports_show_the_walks_figures(
        browser, page, stack, walk, sandbox, live_server_url, tmp_path):  # noqa: F811
    app, worker = stack
    supervisor, agent = walk
    shots = screenshot_dir(tmp_path)
    base = f"{live_server_url}/t/alpha"
    sender = sender_for(app, f"{base}/wecom/callback/{app.callback_id}/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", supervisor.user.username)

    # The supervisor sets up the desk in the admin.
    admin_sets_up_the_desk(page, base)
    with schema_context("alpha"):
        hours = BusinessHours.objects.get()
        assert (hours.enabled, hours.time_zone, hours.sunday) == (True, "Asia/Shanghai", "00:00-24:00")
        team = Team.objects.get(name="售后")
        assert list(team.members.all()) == [agent]
        assert CannedReply.objects.get(shortcode="tuihuo").owner is None  # shared

    # Traffic: the bot answers one customer from the knowledge base; another wants a human about a return.
    wait_until(lambda: "ready for action" in worker.output(), timeout=30, message=worker.output)
    assert sender.send_text(from_user=ASKER, content=ASKED).delivered
    wait_until(lambda: any(KNOWLEDGE[0][1] in text for text in received(sandbox, ASKER)), timeout=30,
               message=lambda: f"the bot's answer, got {received(sandbox, ASKER)}\n{worker.output()[-3000:]}")
    assert sender.send_text(from_user=RETURNER, content="我要退货，转人工").delivered
    with schema_context("alpha"):
        wait_until(lambda: Ticket.objects.filter(conversation__contact__external_id=RETURNER).exists(), timeout=15,
                   message=lambda: worker.output()[-2000:])
        ticket = Ticket.objects.get(conversation__contact__external_id=RETURNER)
        assert ticket.team_id == team.pk  # queued for the team by its keyword
        claim_conversation(conversation_id=ticket.conversation_id, profile=agent)

    # The team's agent answers with the canned reply on the conversation screen, then closes.
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(10_000)
    context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(context, live_server_url, "alpha", agent.user.username)
    screen = context.new_page()
    try:
        screen.goto(f"{base}/agent/c/{ticket.conversation_id}/")
        expect(screen.locator("#connection")).to_have_attribute("data-state", "live")
        expect(screen.locator("#reports-link")).to_have_count(0)  # agents have no reports
        box = screen.locator("#reply-text")
        box.press_sequentially("/tuihuo")
        expect(screen.locator("#canned-list [role=option]").first).to_contain_text("退货运费")
        box.press("Enter")
        expect(box).to_have_value(FILLED)
        screen.get_by_role("button", name="发送").click()
        wait_until(lambda: FILLED in received(sandbox, RETURNER), timeout=15,
                   message=lambda: f"the canned reply, got {received(sandbox, RETURNER)}")
        screen.get_by_role("button", name="关闭", exact=True).click()
        expect(screen.locator("#state")).to_have_text("已关闭")
        snap(screen, shots / "reports-agent.png")
    finally:
        context.close()

    # The customer gets the survey after the closing message and answers 1 (满意).
    wait_until(lambda: any(QUESTION in text for text in received(sandbox, RETURNER)), timeout=15,
               message=lambda: f"the survey, got {received(sandbox, RETURNER)}")
    assert sender.send_text(from_user=RETURNER, content="1").delivered
    with schema_context("alpha"):
        wait_until(lambda: Survey.objects.filter(ticket=ticket, status=Survey.Status.ANSWERED).exists(), timeout=15,
                   message=lambda: worker.output()[-2000:])

    # The supervisor's reports: the header links them; each figure against the rows.
    page.goto(f"{base}/agent/")
    page.locator("#reports-link").click()
    expect(page).to_have_url(f"{base}/agent/reports/")
    expect(page.get_by_role("heading", name="数据报表", exact=True)).to_be_visible()
    snap(page, shots / "reports.png")
    now = timezone.now()
    with schema_context("alpha"):
        ticket.refresh_from_db()
        survey = Survey.objects.get(ticket=ticket)
        first_reply = (OutboundMessage.objects.filter(conversation_id=ticket.conversation_id, status="sent",
                                                      author=Message.Author.AGENT).order_by("sent_at").first())
        assert (ticket.assignee_id, ticket.status, survey.score, survey.label) == (agent.user_id, "closed", 3, "满意")
        first_response = duration((first_reply.sent_at - ticket.created_at).total_seconds())
        resolution = duration((ticket.resolved_at - ticket.created_at).total_seconds())
        # The bot's figures over the page's period (the last 7 local days of Shanghai), from the rows.
        start = datetime.combine(now.astimezone(SHANGHAI).date() - timedelta(days=6), datetime.min.time(),
                                 tzinfo=SHANGHAI)
        customer = Message.objects.filter(author=Message.Author.CUSTOMER, created_at__gte=start)
        handoff = TraceEvent.objects.filter(inbound=OuterRef("inbound_id"), stage=Stage.PROCESSED,
                                            detail__outcome=Outcome.HANDOFF.value)
        hit = OutboundMessage.objects.filter(inbound=OuterRef("inbound_id"), message__knowledge_entry__isnull=False)
        messages = customer.count()
        conversations = customer.values("conversation_id").distinct().count()
        transferred = customer.filter(Exists(handoff)).values("conversation_id").distinct().count()
        hits = customer.filter(Exists(hit)).count()
        asker = Conversation.objects.get(contact__external_id=ASKER)
        assert customer.filter(conversation=asker, inbound__isnull=False).filter(Exists(hit)).count() == 1
    # 小李's row and the team's: one ticket, answered, resolved, surveyed and rated 满意.
    expected = ["1", "1", "1", "100.0%", first_response, "1", resolution, "1", "1", "100.0%", "100.0%", "0.0%",
                "0.0%"]
    assert cells(page, "agents", "小李") == ["小李", *expected]
    assert cells(page, "teams", "售后") == ["售后", *expected]
    bot = page.locator("#bot-total")
    expect(bot.locator("[data-key=customer_msg_cnt] .rep-value")).to_have_text(str(messages))
    expect(bot.locator("[data-key=session_cnt] .rep-value")).to_have_text(str(conversations))
    expect(bot.locator("[data-key=ai_transfer_cnt] .rep-value")).to_have_text(str(transferred))
    expect(bot.locator("[data-key=ai_knowledge_hit_cnt] .rep-value")).to_have_text(str(hits))
    # Today's bar of the daily tickets chart holds the handled ticket(s); eight charts in all.
    expect(page.locator("svg.chart")).to_have_count(8)
    today = now.astimezone(SHANGHAI).strftime("%m-%d")
    expect(page.locator("#chart-daily-tickets rect.bar[data-series=handled] title")).to_contain_text([today])

    # The agents' CSV: UTF-8 with a BOM, 小李's row with the same figures (raw: seconds and fractions).
    download = page.request.get(f"{base}/agent/reports/agents.csv")
    assert download.status == 200 and download.body().startswith(b"\xef\xbb\xbf")
    rows = {row[0]: row for row in csv.reader(io.StringIO(download.body().decode("utf-8-sig")))}
    assert rows["小李"][1:5] == ["1", "1", "1", "1.0"]
    assert float(rows["小李"][5]) == round((first_reply.sent_at - ticket.created_at).total_seconds(), 1)
