"""The agent screens in a real browser against a live stack: uvicorn, a real worker, the WeCom sandbox
and its fake model. A customer asks for a human, an agent takes over, answers through WeCom, hands back
to the AI, resolves and closes; two agents race for one claim; a supervisor assigns; WeCom refusing a
微信客服 step shows on the screen; another tenant's agent sees nothing.

AGENT_SCREENSHOTS=<dir> keeps the screenshots the tests take (to look at the pages)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.ai.models import AIProvider
from conversations.models import Conversation, DeskSettings, Message
from conversations.services.conversations import TranscriptLine, record_messages
from kb.models import KnowledgeEntry
from testing.accounts import STAFF_PASSWORD, login_cookie
from testing.browser import VIEWPORT, expect
from testing.factories import APP_SECRET, KF_SECRET, AgentProfileFactory, AIProviderFactory, KnowledgeEntryFactory
from testing.vectors import AES_KEY, AGENT_ID, CORP_ID, OPEN_KFID, TOKEN
from testing.waiting import wait_until
from testing.wecom import sender_for
from tickets import presence
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.services import claim_conversation, end_kf_session

pytestmark = pytest.mark.live
ZWSP = "\u200b"
CUSTOMER = "kehu-li"
APP_AGENT_ID = AGENT_ID + 7  # not the id other tests of alpha use
KNOWLEDGE = [
    ("退货的运费谁承担？", "质量问题退货的运费由我们承担，其他情况由买家承担。"),
    ("退款多久到账？", "退款审核通过后 1-3 个工作日原路退回。"),
]
ASKED = "请问退货的运费由谁承担？"  # close to a knowledge entry, not the same question
# A real 1x1 PNG, so the browser can decode what the screen shows.
PICTURE = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                        "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")
INVOICE = b"%PDF-1.4 refund instructions for the customer"


def screenshot_dir(tmp_path: Path) -> Path:
    """AGENT_SCREENSHOTS=<dir> keeps the screenshots for a look; otherwise they go to tmp_path."""
    target = Path(os.environ.get("AGENT_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def snap(page, path: Path) -> None:
    page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar stays on top of a full-page shot
    page.screenshot(path=path, full_page=True)


def received(sandbox, user: str) -> list[str]:
    return [text.rstrip(ZWSP) for text in sandbox.received_texts(user)]


def picture_shown_and_file_received(page, sandbox, customer: str) -> None:
    """The customer's picture decodes inline on the screen; the agent's attached file reaches the
    customer byte for byte (uploaded to WeCom, sent by media_id)."""
    picture = page.locator("#messages [data-author=customer] img.media-image")
    expect(picture).to_be_visible(timeout=15_000)
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", picture.element_handle())
    page.locator("#attach-file").set_input_files(files=[{"name": "说明.pdf", "mimeType": "application/pdf",
                                                          "buffer": INVOICE}])
    wait_until(lambda: [m["content"] for m in sandbox.received_media(customer)] == [INVOICE], timeout=15,
               message=lambda: f"the agent's file, got {sandbox.received_media(customer)}")


def timeline(conversation_id: int) -> list[tuple[str, str | None]]:
    with schema_context("alpha"):
        return [(e.kind, e.detail.get("to")) for e in
                TicketEvent.objects.filter(ticket__conversation_id=conversation_id).order_by("id")]


def add_session(context, live_server_url: str, schema: str, username: str) -> None:
    """Sign a browser context in as `username` of `schema` (the cookie is scoped to /t/<schema>/)."""
    host = re.sub(r"^https?://", "", live_server_url).split(":")[0]
    context.add_cookies([{"name": "sessionid", "value": login_cookie(schema, username), "domain": host,
                          "path": f"/t/{schema}/"}])


def new_page(browser, *, locale: str):
    context = browser.new_context(viewport=VIEWPORT, locale=locale)
    context.set_default_timeout(10_000)
    return context, context.new_page()


@pytest.fixture
def staff_agent(tenant_a, committed_db):
    """alpha's staff user as an agent (display name 小王); removed afterwards."""
    with schema_context("alpha"):
        user = get_user_model().objects.get(username=tenant_a.staff_email)
        profile = AgentProfileFactory(user=user, display_name="小王", max_concurrent=5)
    yield profile
    with schema_context("alpha"):
        AgentProfile.objects.filter(pk=profile.pk).delete()


@pytest.fixture
def stack(staff_agent, committed_app, live_server_url, sandbox, sandbox_server, start_worker, redis_client):
    """Committed: an app, the sandbox's fake model as AI provider, two knowledge entries; a real worker."""
    for pattern in ("LIMITS*", "*:rate-notice:*"):
        for key in redis_client.scan_iter(pattern):
            redis_client.delete(key)
    app = committed_app("alpha", agent_id=APP_AGENT_ID)
    with schema_context("alpha"):
        reset_breaker("alpha")
        provider = AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=3)
        entries = [KnowledgeEntryFactory(question=q, answer=a).pk for q, a in KNOWLEDGE]
        desk = DeskSettings.current()
        saved_limit, desk.user_rate_limit = desk.user_rate_limit, 1000
        desk.save()
    callback = {"url": f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/", "token": TOKEN,
                "encoding_aes_key": AES_KEY}
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": APP_AGENT_ID, "secret": APP_SECRET, "callback": callback}])
    # An idle Dramatiq worker polls Redis every 0.5-1 s by default (dramatiq_worker_timeout=1000 ms), which
    # alone can eat the whole second a handoff has to reach the queue; 100 ms keeps pickup well inside it.
    worker = start_worker("inbound", "outbound", "ai", "media", threads=4, TEST_WECOM_API_BASE=sandbox_server,
                          OUTBOUND_RETRY_BASE_SECONDS="0.2", OUTBOUND_RETRY_MAX_SECONDS="1",
                          dramatiq_worker_timeout="100")
    yield app, worker
    with schema_context("alpha"):
        AIProvider.objects.filter(pk=provider.pk).delete()
        KnowledgeEntry.objects.filter(pk__in=entries).delete()
        KnowledgeEntry.objects.filter(question=ASKED).delete()  # promoted by the test
        desk = DeskSettings.current()
        desk.user_rate_limit = saved_limit
        desk.save()
        reset_breaker("alpha")


def test_handoff_claim_reply_live_hand_back_resolve_close(page, stack, sandbox, live_server_url, tenant_a,
                                                          tmp_path):
    app, worker = stack
    shots = screenshot_dir(tmp_path)
    sender = sender_for(app, f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/")
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])

    # Given the agent signed in on the queue page, live (the worker is up meanwhile).
    page.goto(f"{live_server_url}/t/alpha/agent/")
    expect(page).to_have_url(re.compile(r"/t/alpha/agent/login/\?next=/t/alpha/agent/$"))
    expect(page.get_by_role("heading", name="坐席登录")).to_be_visible()
    snap(page, shots / "0-login.png")
    page.get_by_label("用户名").fill(tenant_a.staff_email)
    page.get_by_label("密码").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(f"{live_server_url}/t/alpha/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#presence-online")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#waiting-empty")).to_have_text("当前没有等待的客户。")
    wait_until(lambda: "ready for action" in worker.output(), timeout=30, message=worker.output)

    # When a customer asks for a human, the queue shows it within 1 s of the callback's 200, without a reload.
    page.evaluate("window.sameDocument = true")
    assert sender.send_text(from_user=CUSTOMER, content="转人工").delivered
    acknowledged = time.monotonic()
    row = page.locator("#waiting tbody tr", has_text=CUSTOMER)
    expect(row).to_be_visible(timeout=1_000)
    assert time.monotonic() - acknowledged < 1.0
    assert page.evaluate("window.sameDocument") is True
    expect(row).to_contain_text("转人工")
    expect(row).to_contain_text("已分配给您")  # offered to the only agent online
    snap(page, shots / "1-queue.png")

    # The agent claims it and lands on the conversation: the whole history, each message marked.
    row.get_by_role("button", name="接入").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/agent/c/\d+/$"))
    conversation_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.evaluate("window.sameDocument = true")  # from here on, everything arrives without a reload
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#state")).to_have_text("人工处理中")
    messages = page.locator("#messages")
    expect(messages.locator("[data-author=customer]")).to_have_text([re.compile("客户.*转人工")])
    expect(messages.locator("[data-author=handoff]")).to_contain_text("正在为您转接人工客服")
    expect(messages.locator("[data-author=handoff] .delivery")).to_have_text("已送达")

    # Reply: through the outbound ledger to the customer, with its delivery state next to it.
    reply = "您好，我是客服小王，请问有什么可以帮您？"
    page.locator("#reply-text").fill(reply)
    page.get_by_role("button", name="发送").click()
    mine = messages.locator("[data-author=agent]")
    expect(mine).to_have_count(1)
    expect(mine.locator(".text")).to_have_text(reply)
    expect(mine.locator(".delivery")).to_have_attribute("data-delivery", "sent")
    expect(page.locator("#reply-text")).to_have_value("")
    assert received(sandbox, CUSTOMER)[-1] == reply

    # The member sends a picture (shown inline once the media job stored it); the agent sends a file back.
    sandbox.send_app_media(CORP_ID, APP_AGENT_ID, CUSTOMER, media_type="image", filename="photo.png",
                           content=PICTURE, content_type="image/png")
    picture_shown_and_file_received(page, sandbox, CUSTOMER)

    # The socket drops: the page reconnects by itself (with backoff) and watches the conversation again.
    first_socket = page.evaluate("AgentDesk.socket.id")
    page.evaluate("AgentDesk.socket.ws.close()")
    page.wait_for_function("(old) => AgentDesk.socket.id && AgentDesk.socket.id !== old", arg=first_socket)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # A new customer message appears live, and the AI's suggestion for it; "use it" fills the reply box.
    assert sender.send_text(from_user=CUSTOMER, content=ASKED).delivered
    expect(messages.locator("[data-author=customer]").last).to_contain_text(ASKED)
    expect(page.locator("#suggestion")).to_contain_text(KNOWLEDGE[0][1])
    expect(page.locator("#knowledge li").first).to_contain_text(KNOWLEDGE[0][0])
    page.get_by_role("button", name="使用", exact=True).first.click()
    expect(page.locator("#reply-text")).to_have_value(re.compile(re.escape(KNOWLEDGE[0][1])))
    page.locator("#reply-text").press("Control+Enter")
    expect(mine).to_have_count(3)  # the first reply, the file, this one
    expect(mine.last.locator(".delivery")).to_have_attribute("data-delivery", "sent")
    assert KNOWLEDGE[0][1] in received(sandbox, CUSTOMER)[-1]
    assert page.evaluate("window.sameDocument") is True
    snap(page, shots / "2-conversation.png")

    # Hand back to the AI: the next customer message gets an AI answer, shown live here too.
    page.get_by_role("button", name="交回 AI").click()
    expect(page.locator("#state")).to_have_text("AI 接待中")
    assert sender.send_text(from_user=CUSTOMER, content="退款多久到账？").delivered
    wait_until(lambda: any(KNOWLEDGE[1][1] in text for text in received(sandbox, CUSTOMER)), timeout=10,
               message=lambda: f"an AI answer, got {received(sandbox, CUSTOMER)}\n{worker.output()[-2000:]}")
    expect(messages.locator("[data-author=ai], [data-author=knowledge]").last).to_contain_text(KNOWLEDGE[1][1])

    # Resolve; promote the question and the agent's answer to knowledge in one step; close.
    page.get_by_role("button", name="标记已解决").click()
    expect(page.locator("#ticket-status")).to_have_text("已解决")
    page.locator("#promote-question-pick").select_option(label=ASKED)
    answer = page.locator("#promote-answer-pick option", has_text=KNOWLEDGE[0][1][:12])
    page.locator("#promote-answer-pick").select_option(value=answer.get_attribute("value"))
    page.get_by_role("button", name="加入知识库").click()
    expect(page.locator("#banner")).to_contain_text("已加入知识库")
    page.get_by_role("button", name="关闭", exact=True).click()
    expect(page.locator("#state")).to_have_text("已关闭")
    expect(page.locator("#ticket-status")).to_have_text("已关闭")

    # The timeline shows every step, on the page and in the database.
    for selector in ("[data-kind=claimed]", "[data-kind=handed_back]", "[data-kind=status][data-to=resolved]",
                     "[data-kind=status][data-to=closed]", "[data-kind=promoted_to_knowledge]"):
        expect(page.locator(f"#timeline li{selector}")).to_have_count(1)
    expect(page.locator("#timeline li[data-kind=agent_reply]")).to_have_count(3)
    expect(page.locator("#timeline li[data-kind=claimed]")).to_contain_text("小王 接入")
    snap(page, shots / "3-closed.png")
    kinds = timeline(conversation_id)
    assert [k for k in kinds if k[0] in ("claimed", "agent_reply", "handed_back", "status",
                                         "promoted_to_knowledge")] == [
        ("status", "assigned"), ("claimed", None), ("agent_reply", None), ("agent_reply", None), ("agent_reply", None),
        ("handed_back", None), ("status", "resolved"), ("promoted_to_knowledge", None), ("status", "closed")]
    with schema_context("alpha"):
        assert KnowledgeEntry.objects.get(question=ASKED).answer == KNOWLEDGE[0][1]
        assert Conversation.objects.get(pk=conversation_id).state == Conversation.State.CLOSED
    # What the customer saw, in order: handoff notice, two agent replies, the AI again, and the goodbye.
    with schema_context("alpha"):
        goodbye = DeskSettings.current().closing_message
    wait_until(lambda: received(sandbox, CUSTOMER)[-1:] == [goodbye], timeout=15, message="the closing message")
    got = received(sandbox, CUSTOMER)
    assert got[1:3] == [reply, KNOWLEDGE[0][1]] and KNOWLEDGE[1][1] in got[3] and got[4:] == [goodbye], got

    # The same screen in English, through Django's language switch.
    page.get_by_role("button", name="EN").click()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(page.locator("#state")).to_have_text("Closed")


@pytest.fixture
def waiting(staff_agent, committed_app, handed_off, live_server_url, tenant_b):
    """Committed: a conversation of alpha waiting for a human, a second alpha agent and a beta agent."""
    app = committed_app("alpha", agent_id=APP_AGENT_ID)
    with schema_context("alpha"):
        second = AgentProfileFactory(user__username="agent2@alpha.test")
        conversation = handed_off(app, user="kehu-race")
    with schema_context("beta"):
        stranger = AgentProfileFactory(user__username="agent@beta.test")
    yield conversation
    for schema, profile in (("alpha", second), ("beta", stranger)):
        with schema_context(schema):
            get_user_model().objects.filter(pk=profile.user_id).delete()


def test_two_agents_claim_at_the_same_moment_and_one_wins(browser, page, waiting, live_server_url, tenant_a,
                                                          tmp_path):
    conversation = waiting
    other_context, other = new_page(browser, locale="en-US")
    try:
        pages = {tenant_a.staff_email: page, "agent2@alpha.test": other}
        for username, agent_page in pages.items():
            add_session(agent_page.context, live_server_url, "alpha", username)
            agent_page.goto(f"{live_server_url}/t/alpha/agent/")
            expect(agent_page.locator("#connection")).to_have_attribute("data-state", "live")
            claim = agent_page.locator(f"#waiting tr[data-conversation='{conversation.pk}'] button.claim")
            expect(claim).to_be_enabled()
        expect(other.get_by_role("heading", name="Waiting for an agent")).to_be_visible()  # Accept-Language: en

        # Both click "claim" at the same instant (a timer in each page, on the shared clock).
        at = page.evaluate("Date.now()") + 400
        for agent_page in pages.values():
            agent_page.evaluate("""([at, id]) => setTimeout(() => document.querySelector(
                `#waiting tr[data-conversation='${id}'] button.claim`).click(), at - Date.now())""",
                                [at, conversation.pk])

        def path(agent_page) -> str:  # asks the page, so Playwright processes the navigation meanwhile
            try:
                return agent_page.evaluate("location.pathname")
            except Exception:  # noqa: BLE001 - navigating right now
                return ""

        def winner():
            return [u for u, p in pages.items() if re.search(r"/agent/c/\d+/$", path(p))]

        won = wait_until(winner, timeout=5, message=lambda: f"a claim to win: {[path(p) for p in pages.values()]}")
        assert len(won) == 1
        loser = next(p for u, p in pages.items() if u not in won)
        expect(loser.locator("#banner")).to_contain_text(re.compile(r"Already taken by \S+"))
        assert winner() == won  # both claims are answered by now: the loser was refused, not let in late
        expect(loser.locator(f"#waiting tr[data-conversation='{conversation.pk}']")).to_have_count(0)
        snap(loser, screenshot_dir(tmp_path) / "4-race-loser.png")
        with schema_context("alpha"):
            fresh = Conversation.objects.select_related("agent").get(pk=conversation.pk)
            assert fresh.state == Conversation.State.HUMAN and fresh.agent.get_username() == won[0]
            ticket = Ticket.objects.get(conversation=conversation)
            assert ticket.events.filter(kind="claimed").count() == 1
    finally:
        other_context.close()


def test_a_supervisor_sees_the_agents_with_presence_and_assigns_from_the_queue(page, waiting, staff_agent,
                                                                               live_server_url, tmp_path):
    conversation = waiting
    with schema_context("alpha"):
        AgentProfile.objects.filter(pk=staff_agent.pk).update(role=AgentProfile.Role.SUPERVISOR)
        second = AgentProfile.objects.get(user__username="agent2@alpha.test")
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    agents = page.locator("#agents li")
    me = agents.filter(has_text="小王").locator("[data-presence]")  # listed by display name
    expect(me).to_have_attribute("data-presence", "online")
    expect(agents.filter(has_text="agent2@alpha.test").locator("[data-presence]")).to_have_attribute(
        "data-presence", "offline")

    # Away and back: the toggle, the list and the presence store agree.
    page.locator("#presence-away").click()
    expect(page.locator("#presence-away")).to_have_attribute("aria-pressed", "true")
    expect(me).to_have_attribute("data-presence", "away")
    assert presence.status(schema="alpha", user_id=staff_agent.user_id) == "away"
    page.locator("#presence-online").click()
    expect(me).to_have_attribute("data-presence", "online")

    row = page.locator(f"#waiting tr[data-conversation='{conversation.pk}']")
    row.locator("select").select_option(str(second.user_id))
    snap(page, screenshot_dir(tmp_path) / "5-supervisor-queue.png")
    row.locator(".assign button").click()
    expect(row).to_have_count(0)  # it left the waiting queue, live
    expect(page.locator("#banner")).to_contain_text("Assigned to agent2@alpha.test.")  # English: Accept-Language
    with schema_context("alpha"):
        assert Conversation.objects.get(pk=conversation.pk).agent_id == second.user_id
        assert list(TicketEvent.objects.filter(ticket__conversation=conversation, kind="reassigned")
                    .values_list("actor_id", flat=True)) == [staff_agent.user_id]


def test_a_wecom_refusal_shows_in_the_banner_and_the_timeline(page, staff_agent, committed_app, handed_off,
                                                              sandbox, live_server_url, tmp_path):
    """微信客服: WeCom refusing a session change (95016) reaches the open screen, not just the logs."""
    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, "wm-kf-customer", "我要找人工", notify=False)  # opens the session
    app = committed_app("alpha", kind="kf")
    with schema_context("alpha"):
        conversation = handed_off(app, user="wm-kf-customer")  # a customer of the account OPEN_KFID
        ticket = Ticket.objects.get(conversation=conversation)
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#timeline li[data-kind=opened]")).to_have_count(1)  # watching by now
    with schema_context("alpha"):
        sandbox.set_kf_session(CORP_ID, OPEN_KFID, "wm-kf-customer", service_state=4)  # WeCom ended it (48 h)
        end_kf_session(conversation_id=conversation.pk, ticket_id=ticket.pk)  # 4 -> 4: WeCom says 95016
    expect(page.locator("#banner [data-kind=error]")).to_contain_text("errcode 95016")
    expect(page.locator("#timeline li[data-kind=kf_state_failed]")).to_contain_text(
        "企业微信拒绝了微信客服会话状态变更（errcode 95016）")
    snap(page, screenshot_dir(tmp_path) / "6-wecom-refusal.png")


def test_a_customers_sensitive_words_are_flagged_and_a_reply_with_one_is_refused(
        page, staff_agent, committed_app, handed_off, live_server_url, tmp_path):
    app = committed_app("alpha")
    with schema_context("alpha"):
        conversation = handed_off(app, user="lisi")
        record_messages([TranscriptLine(conversation=conversation, author=Message.Author.CUSTOMER,
                                        text="你们这能网赌吗", sensitive_words=["网赌"])])
        claim_conversation(conversation_id=conversation.pk, profile=staff_agent)
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    customer = page.locator("#messages [data-author=customer]", has_text="你们这能网赌吗")
    expect(customer.locator(".sensitive")).to_have_text("敏感词：网赌")
    page.locator("#reply-text").fill("这里不能网赌哦")
    page.get_by_role("button", name="发送").click()

    expect(page.locator("#banner [data-kind=error]")).to_contain_text("未发送：回复中含有敏感词（网赌）。")
    expect(page.locator("#messages [data-author=agent]")).to_have_count(0)
    snap(page, screenshot_dir(tmp_path) / "7-sensitive-words.png")
    with schema_context("alpha"):
        assert not Message.objects.filter(conversation=conversation, author=Message.Author.AGENT).exists()


def test_an_agent_of_another_tenant_cannot_open_the_conversation(page, waiting, live_server_url):
    conversation = waiting
    with schema_context("beta"):
        assert not Conversation.objects.filter(pk=conversation.pk).exists()
    add_session(page.context, live_server_url, "beta", "agent@beta.test")

    # Under beta's own prefix the forged id is simply not found, page and API alike.
    response = page.goto(f"{live_server_url}/t/beta/agent/c/{conversation.pk}/")
    assert response.status == 404
    api = page.request.get(f"{live_server_url}/t/beta/agent/api/conversations/{conversation.pk}/")
    assert api.status == 404
    # Under alpha's prefix the beta session means nothing: the alpha sign-in page.
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page).to_have_url(re.compile(r"/t/alpha/agent/login/\?next="))
    # Watching it over beta's socket is refused the same way.
    page.goto(f"{live_server_url}/t/beta/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    answer = page.evaluate("""(id) => new Promise((resolve) => {
        const ws = new WebSocket(`ws://${location.host}/t/beta/ws/agent/`);
        ws.onmessage = (frame) => {
            const event = JSON.parse(frame.data);
            if (event.type === "hello") ws.send(JSON.stringify({type: "watch", conversation: id}));
            else if (event.type === "error" || event.type === "watching") { resolve(event); ws.close(); }
        };
    })""", conversation.pk)
    assert answer == {"type": "error", "message": "conversation not found"}
    with schema_context("alpha"):
        assert Conversation.objects.get(pk=conversation.pk).state == Conversation.State.WAITING_HUMAN


# -- the 微信客服 channel ---------------------------------------------------------------------------------
# A WeChat customer asks, the AI answers, the customer asks for a human, the agent claims and replies, and
# the reply REACHES the customer (the sandbox refuses kf/send_msg outside session states 0/1, as WeCom
# does); hand back, the AI answers again; close, and the goodbye goes out with the session's code.

KF_OPEN_KFID = "wkBrowserWalk0001"  # an account of its own: other tests of alpha use the default one
KF_CUSTOMER = "wmBrowserCustomer"
KF_SERVICER = "xiaowang"  # the staff agent's WeCom UserID in servicers mode


@pytest.fixture
def kf_stack(request, staff_agent, committed_app, live_server_url, sandbox, sandbox_server, start_worker,
             redis_client):
    """A committed 微信客服 account with the AI on and a live worker; indirect param True: servicers mode."""
    servicers_mode = getattr(request, "param", False)
    for pattern in ("LIMITS*", "*:rate-notice:*"):
        for key in redis_client.scan_iter(pattern):
            redis_client.delete(key)
    app = committed_app("alpha", kind="kf", open_kfids=[KF_OPEN_KFID], servicers_mode=servicers_mode)
    with schema_context("alpha"):
        reset_breaker("alpha")
        provider = AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=3)
        entry = KnowledgeEntryFactory(question=KNOWLEDGE[1][0], answer=KNOWLEDGE[1][1])
        closing = DeskSettings.current().closing_message
    callback = {"url": f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/", "token": TOKEN,
                "encoding_aes_key": AES_KEY}
    sandbox.create_corp(CORP_ID, kf_accounts=[{"open_kfid": KF_OPEN_KFID, "secret": KF_SECRET,
                                               "callback": callback, "servicers": [KF_SERVICER]}])
    worker = start_worker("inbound", "outbound", "kf_sync", "ai", "media", threads=4,
                          TEST_WECOM_API_BASE=sandbox_server, dramatiq_worker_timeout="100")
    wait_until(lambda: "ready for action" in worker.output(), timeout=30, message=worker.output)
    yield worker, closing
    with schema_context("alpha"):
        AIProvider.objects.filter(pk=provider.pk).delete()
        KnowledgeEntry.objects.filter(pk=entry.pk).delete()
        reset_breaker("alpha")


def kf_customer_says(sandbox, text: str) -> None:
    sandbox.queue_kf_text(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER, text)  # the kf_msg_or_event callback, then our pull


def wait_for_kf_reply(sandbox, worker, expected: str) -> None:
    wait_until(lambda: any(expected in text for text in sandbox.received_texts(KF_CUSTOMER)), timeout=15,
               message=lambda: f"{expected!r} for the customer, got {sandbox.received_texts(KF_CUSTOMER)}\n"
                               f"{worker.output()[-2000:]}")


def test_a_wechat_customer_gets_the_ai_an_agent_and_a_goodbye(page, kf_stack, sandbox, live_server_url,
                                                              staff_agent):
    worker, closing = kf_stack
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # The AI answers from the knowledge base.
    kf_customer_says(sandbox, "请问退款多久到账")
    wait_for_kf_reply(sandbox, worker, KNOWLEDGE[1][1])

    # The customer asks for a human: the handoff message, and the queue shows the customer.
    kf_customer_says(sandbox, "转人工")
    wait_for_kf_reply(sandbox, worker, "正在为您转接人工客服")
    row = page.locator("#waiting tbody tr", has_text=KF_CUSTOMER)
    expect(row).to_be_visible()
    assert sandbox.kf_session(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER)["service_state"] in (0, 1)  # still with the API

    # The agent claims it and replies: the reply is DELIVERED (it used to die with 95018).
    row.get_by_role("button", name="接入").click()
    expect(page).to_have_url(re.compile(r"/t/alpha/agent/c/\d+/$"))
    expect(page.locator("#state")).to_have_text("人工处理中")
    expect(page.locator("#reply-limits")).to_contain_text("48 小时回复窗口")
    expect(page.locator("#reply-limits")).to_contain_text("还可回复")
    reply = "您好，我是客服小王，这就为您查询退款。"
    page.locator("#reply-text").fill(reply)
    page.get_by_role("button", name="发送").click()
    mine = page.locator("#messages [data-author=agent]")
    expect(mine.locator(".delivery")).to_have_attribute("data-delivery", "sent")
    assert sandbox.received_texts(KF_CUSTOMER)[-1] == reply

    # The customer sends a picture (shown inline once the media job stored it); the agent sends a file back.
    sandbox.queue_kf_media(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER, media_type="image", filename="receipt.png",
                           content=PICTURE, content_type="image/png")
    picture_shown_and_file_received(page, sandbox, KF_CUSTOMER)

    # Hand back: no session change is needed, and the AI answers the next question.
    page.get_by_role("button", name="交回 AI").click()
    expect(page.locator("#state")).to_have_text("AI 接待中")
    kf_customer_says(sandbox, "退款多久到账？")
    wait_until(lambda: sandbox.received_texts(KF_CUSTOMER)[-1].endswith(KNOWLEDGE[1][1]), timeout=15,
               message=lambda: f"the AI again, got {sandbox.received_texts(KF_CUSTOMER)}")

    # Close: WeCom's session ends (4) and the customer gets the closing message with its code.
    page.get_by_role("button", name="关闭", exact=True).click()
    expect(page.locator("#state")).to_have_text("已关闭")
    wait_for_kf_reply(sandbox, worker, closing)
    assert sandbox.kf_session(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER)["service_state"] == 4
    expect(page.locator("#timeline li[data-kind=kf_session_ended]")).to_have_count(1)


@pytest.mark.parametrize("kf_stack", [True], indirect=True)
def test_in_servicers_mode_the_screen_watches_what_wecom_servicers_do(page, kf_stack, sandbox, live_server_url,
                                                                       staff_agent):
    worker, _ = kf_stack
    with schema_context("alpha"):
        AgentProfile.objects.filter(pk=staff_agent.pk).update(wecom_userid=KF_SERVICER)
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # The handoff message goes out first, then WeCom's session moves to the agent's own WeCom servicer.
    kf_customer_says(sandbox, "转人工")
    wait_for_kf_reply(sandbox, worker, "正在为您转接人工客服")
    wait_until(lambda: sandbox.kf_session(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER)["service_state"] == 3, timeout=15,
               message=lambda: f"the session with the servicer\n{worker.output()[-2000:]}")
    assert sandbox.kf_session(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER)["servicer_userid"] == KF_SERVICER

    # It is the agent's (their servicer holds it), and the screen only watches: no reply box, and says why.
    def held_by_the_agent() -> Conversation | None:
        with schema_context("alpha"):
            return Conversation.objects.filter(contact__external_id=KF_CUSTOMER, state=Conversation.State.HUMAN,
                                               agent_id=staff_agent.user_id).first()

    wait_until(held_by_the_agent, timeout=10, message="the conversation assigned with the session")
    conversation_id = held_by_the_agent().pk
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation_id}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#state")).to_have_text("人工处理中")
    expect(page.locator("#reply-hint")).to_have_text("此会话由企业微信客服人员在企业微信中接待，这里只能查看。")
    expect(page.locator("#claim")).to_be_hidden()
    expect(page.locator("#reply-text")).to_be_disabled()

    # What the servicer writes in the WeCom client shows up here, live.
    sandbox.queue_kf_messages(CORP_ID, KF_OPEN_KFID, [{"external_userid": KF_CUSTOMER, "origin": 5,
                                                       "servicer_userid": KF_SERVICER, "msgtype": "text",
                                                       "text": {"content": "我是企业微信里的小王"}}])
    expect(page.locator("#messages [data-author=agent] .text")).to_have_text("我是企业微信里的小王",
                                                                              timeout=15_000)

    # The servicer ends the session in WeCom: the conversation and its ticket close here.
    sandbox.set_kf_session(CORP_ID, KF_OPEN_KFID, KF_CUSTOMER, service_state=4)
    sandbox.queue_kf_messages(CORP_ID, KF_OPEN_KFID, [{"msgtype": "event", "event": {
        "event_type": "session_status_change", "external_userid": KF_CUSTOMER, "change_type": 3,
        "old_servicer_userid": KF_SERVICER, "msg_code": "END_CODE"}}])

    def closed() -> bool:
        with schema_context("alpha"):
            return Conversation.objects.get(pk=conversation_id).state == Conversation.State.CLOSED

    wait_until(closed, timeout=15, message=lambda: f"closed by WeCom's event\n{worker.output()[-3000:]}")
    expect(page.locator("#state")).to_have_text("已关闭")
