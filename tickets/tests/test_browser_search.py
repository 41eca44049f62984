"""The conversation search in a real browser against the live web server: a supervisor follows the header's link,
searches 退款 (one conversation found through the index, one newer one through the fallback), narrows to a label,
downloads the CSV and reads it back (byte-order mark, Chinese header, the row), and is told why 怎么 alone cannot be
searched."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from conversations.search.indexing import index_messages
from conversations.search.models import MessageSearchEntry
from testing.browser import expect
from testing.factories import ConversationFactory, MessageFactory
from tickets.labels.models import Label
from tickets.models import AgentProfile
from tickets.tests.test_browser_agent import add_session, screenshot_dir, snap, staff_agent  # noqa: F401

pytestmark = pytest.mark.live


@pytest.fixture
def conversations(staff_agent, committed_app):  # noqa: F811
    """Committed in alpha: 李先生's conversation with the agent, indexed, labelled 售后; a newer one not indexed yet;
    one about invoices. The agent is a supervisor here."""
    app = committed_app("alpha", agent_id=4343)
    with schema_context("alpha"):
        AgentProfile.objects.filter(pk=staff_agent.pk).update(role=AgentProfile.Role.SUPERVISOR)
        label = Label.objects.create(name="售后-搜索", color="#e53935")
        indexed = ConversationFactory(contact__app=app, contact__display_name="李先生", agent=staff_agent.user,
                                      state=Conversation.State.HUMAN)
        MessageFactory(conversation=indexed, text="我想申请退款怎么办")
        long_ago = timezone.now() - timedelta(hours=2)
        Message.objects.filter(conversation=indexed).update(created_at=long_ago)
        Conversation.objects.filter(pk=indexed.pk).update(last_message_at=long_ago)
        label.conversations.add(indexed)
        index_messages()
        assert MessageSearchEntry.objects.filter(conversation=indexed).exists()
        recent = ConversationFactory(contact__app=app, contact__display_name="赵女士")
        MessageFactory(conversation=recent, text="退款到账了吗？")
        ConversationFactory(contact__app=app, contact__display_name="钱先生").messages.create(
            author=Message.Author.CUSTOMER, text="发票怎么开")
    yield indexed, recent
    with schema_context("alpha"):
        label.delete()


def test_a_supervisor_searches_filters_by_label_and_downloads_the_csv(page, conversations, staff_agent,  # noqa: F811
                                                                       live_server_url, tmp_path):
    indexed, recent = conversations
    shots = screenshot_dir(tmp_path)
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/")
    page.get_by_role("link", name="搜索会话").click()
    expect(page.get_by_role("heading", name="搜索会话")).to_be_visible()

    page.get_by_label("消息内容").fill("退款")
    page.get_by_role("button", name="搜索").click()
    results = page.locator("#results tbody tr")
    expect(results).to_have_count(2)
    expect(results.nth(0)).to_have_attribute("data-conversation", str(recent.pk))  # newest first
    expect(results.nth(0).locator("mark")).to_have_text("退款")
    expect(results.nth(1)).to_contain_text("李先生")
    expect(results.nth(1)).to_contain_text("小王")
    expect(results.nth(1)).to_contain_text("售后-搜索")
    expect(results.nth(1).locator("mark")).to_have_text("退款")
    snap(page, shots / "search-1-results.png")

    page.get_by_label("标签").select_option(label="售后-搜索")
    page.get_by_role("button", name="搜索").click()
    expect(results).to_have_count(1)
    expect(results.nth(0)).to_have_attribute("data-conversation", str(indexed.pk))
    expect(page.get_by_label("消息内容")).to_have_value("退款")  # the filters stay as typed

    with page.expect_download() as download_info:
        page.locator("#export-csv").click()
    download = download_info.value
    assert download.suggested_filename.startswith("conversations-") and download.suggested_filename.endswith(".csv")
    body = (tmp_path / "export.csv")
    download.save_as(str(body))
    text = body.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    header, *lines = list(csv.reader(io.StringIO(text[1:])))
    assert header[:2] == ["会话", "链接"] and header[-1] == "消息"
    assert [line[0] for line in lines] == [str(indexed.pk)]
    assert lines[0][1] == f"{live_server_url}/t/alpha/agent/c/{indexed.pk}/"
    row = lines[0]
    assert (row[5], row[7], row[8], row[-1]) == ("李先生", "小王", "售后-搜索", "我想申请退款怎么办")

    page.get_by_label("消息内容").fill("怎么")
    page.get_by_role("button", name="搜索").click()
    expect(page.locator('[data-field="q"]')).to_contain_text("请输入至少一个有意义的词")
    expect(results).to_have_count(0)
    snap(page, shots / "search-2-refused.png")
