"""Canned replies on the agent screen, in a real browser against the live stack of test_browser_agent.py
(uvicorn, a real worker, the WeCom sandbox): the agent types "/退", picks a reply with the keyboard, sees its
variables filled, edits nothing, sends it, and the customer receives the text and its picture."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django_tenants.utils import schema_context

from testing.browser import expect
from testing.waiting import wait_until
from tickets.canned.models import CannedReply
from tickets.services import claim_conversation
from tickets.tests.test_browser_agent import (  # noqa: F401  (fixtures: the live stack and its agent)
    PICTURE,
    add_session,
    received,
    screenshot_dir,
    snap,
    stack,
    staff_agent,
)

pytestmark = pytest.mark.live
CUSTOMER = "kehu-canned"
FILLED = "李女士您好，我是小王。质量问题退货的运费由我们承担。"


@pytest.fixture
def canned_replies(staff_agent):  # noqa: F811
    """Committed: two shared replies matching "退" (one with a picture), one that does not, a colleague's own."""
    with schema_context("alpha"):
        with_picture = CannedReply(shortcode="tuihuo", title="退货运费",
                                   text="{customer_name}您好，我是{agent_name}。质量问题退货的运费由我们承担。")
        with_picture.attachment.save("退货地址.png", ContentFile(PICTURE), save=False)
        with_picture.full_clean()
        with_picture.save()
        others = [CannedReply.objects.create(shortcode="tuikuan", title="退款到账", text="退款 1-3 个工作日到账。"),
                  CannedReply.objects.create(shortcode="hi", title="问候", text="您好")]
    yield with_picture
    with schema_context("alpha"):
        CannedReply.objects.filter(pk__in=[with_picture.pk, *(o.pk for o in others)]).delete()


def test_an_agent_picks_a_canned_reply_with_slash_and_the_customer_receives_it(
        page, stack, canned_replies, staff_agent, handed_off, sandbox, live_server_url, tmp_path):  # noqa: F811
    app, _worker = stack
    with schema_context("alpha"):
        conversation = handed_off(app, user=CUSTOMER)
        conversation.contact.display_name = "李女士"
        conversation.contact.save()
        claim_conversation(conversation_id=conversation.pk, profile=staff_agent)
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    box = page.locator("#reply-text")
    box.press_sequentially("/退")
    options = page.locator("#canned-list [role=option]")
    expect(options).to_have_count(2)  # the titles with 退, not 问候
    expect(options.nth(0)).to_contain_text("/tuihuo")
    expect(options.nth(0)).to_contain_text("退货运费")
    expect(options.nth(0)).to_have_attribute("aria-selected", "true")
    box.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    box.press("Escape")
    expect(page.locator("#canned-list")).to_be_hidden()
    box.press_sequentially("h")  # "/退h" matches nothing
    expect(page.locator("#canned-list")).to_contain_text("没有匹配的快捷回复。")
    box.press("Backspace")
    expect(options).to_have_count(2)
    box.press("ArrowDown")
    box.press("ArrowUp")
    snap(page, screenshot_dir(tmp_path) / "canned-1-list.png")
    box.press("Enter")

    # The text with its variables filled, for editing; nothing sent yet; the picture named.
    expect(box).to_have_value(FILLED)
    expect(page.locator("#canned-list")).to_be_hidden()
    expect(page.locator("#canned-attachment")).to_have_text("随此回复发送：退货地址.png")
    expect(page.locator("#messages [data-author=agent]")).to_have_count(0)
    snap(page, screenshot_dir(tmp_path) / "canned-2-filled.png")

    page.get_by_role("button", name="发送").click()
    mine = page.locator("#messages [data-author=agent]")
    expect(mine).to_have_count(2)
    expect(mine.nth(0).locator(".text")).to_have_text(FILLED)
    expect(box).to_have_value("")
    expect(page.locator("#canned-attachment")).to_be_hidden()
    wait_until(lambda: received(sandbox, CUSTOMER)[-1:] == [FILLED], timeout=15,  # after the handoff notice
               message=lambda: f"the canned text, got {received(sandbox, CUSTOMER)}")
    wait_until(lambda: [m["content"] for m in sandbox.received_media(CUSTOMER)] == [PICTURE], timeout=15,
               message=lambda: f"the canned picture, got {sandbox.received_media(CUSTOMER)}")
    with schema_context("alpha"):
        canned_replies.refresh_from_db()
        assert canned_replies.usage_count == 1
