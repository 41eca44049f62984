"""Labels and the customer profile in a real browser against the live stack of test_browser_agent.py (uvicorn, a
real worker, the WeCom sandbox): an operator creates a label in the admin; the agent opens a conversation, whose
profile panel fills with the member's name and avatar from WeCom (user/get, fetched by the worker) and shows the
customer's earlier conversation; the agent labels the conversation, the chip appears on the screen, in the
timeline and in the queue, and the agent keeps a note about the customer."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from conversations.models import Contact, DeskSettings
from conversations.services.handoff import hand_off_to_human
from testing.browser import expect
from testing.factories import APP_SECRET, ConversationFactory, MessageFactory, UserFactory
from testing.vectors import AES_KEY, CORP_ID, TOKEN
from testing.waiting import wait_until
from tickets.labels.models import Label
from tickets.labels.services import label_conversation
from tickets.models import Ticket
from tickets.services import claim_conversation, close_conversation
from tickets.tests.test_browser_agent import (  # noqa: F401  (fixtures: the live stack and its agent)
    APP_AGENT_ID,
    add_session,
    new_page,
    screenshot_dir,
    snap,
    stack,
    staff_agent,
)

pytestmark = pytest.mark.live
CUSTOMER = "kehu-profile"
AVATAR = "https://wework.qpic.cn/wwhead/kehu-profile/0"
OPERATOR = "operator@alpha.test"


@pytest.fixture
def operator(tenant_a, committed_db):
    """A superuser of alpha's admin (committed); removed with the labels afterwards."""
    with schema_context("alpha"):
        user = UserFactory(username=OPERATOR, email=OPERATOR, is_superuser=True)
    yield user
    with schema_context("alpha"):
        Label.objects.filter(name__in=["VIP客户", "退款"]).delete()
        get_user_model().objects.filter(pk=user.pk).delete()


@pytest.fixture
def returning_customer(stack, staff_agent, handed_off, sandbox, live_server_url, redis_client):  # noqa: F811
    """The customer's earlier conversation (closed, labelled 退款) and the current one, claimed by the agent. WeCom
    knows the member's name and avatar: the app was created before 2022-06, so user/get still gives the avatar."""
    app, _worker = stack
    callback = {"url": f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/", "token": TOKEN,
                "encoding_aes_key": AES_KEY}
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": APP_AGENT_ID, "secret": APP_SECRET, "callback": callback,
                                        "created_before_2022_06": True}])
    sandbox.set_member_profiles(CORP_ID, [{"userid": CUSTOMER, "name": "李女士", "avatar": AVATAR}])
    for key in redis_client.scan_iter("alpha:profiles:*"):
        redis_client.delete(key)
    with schema_context("alpha"):
        earlier = handed_off(app, user=CUSTOMER)
        MessageFactory(conversation=earlier, text="上次的订单还没到")
        claim_conversation(conversation_id=earlier.pk, profile=staff_agent)
        refund = Label.objects.create(name="退款", color="#1e88e5")
        label_conversation(conversation_id=earlier.pk, label_id=refund.pk, by=staff_agent)
        close_conversation(conversation_id=earlier.pk, profile=staff_agent)
        conversation = ConversationFactory(contact=earlier.contact)
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        claim_conversation(conversation_id=conversation.pk, profile=staff_agent)
    return earlier, conversation


def test_an_operator_creates_a_label_and_an_agent_labels_a_conversation_beside_the_customers_profile(
        browser, page, operator, returning_customer, staff_agent, live_server_url, tmp_path, stack):  # noqa: F811
    earlier, conversation = returning_customer
    shots = screenshot_dir(tmp_path)

    # The operator creates a label in the admin, in Chinese, with the browser's colour picker.
    context, admin = new_page(browser, locale="zh-CN")
    try:
        context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
        add_session(context, live_server_url, "alpha", OPERATOR)
        admin.goto(f"{live_server_url}/t/alpha/admin/tickets/label/add/")
        admin.get_by_label("名称").fill("VIP客户")
        admin.locator("input[name=color]").fill("#d81b60")
        admin.get_by_label("说明").fill("年消费十万以上")
        admin.locator("input[name=_save]").click()
        expect(admin).to_have_url(f"{live_server_url}/t/alpha/admin/tickets/label/")
        expect(admin.locator("#result_list")).to_contain_text("VIP客户")
        admin.screenshot(path=shots / "labels-1-admin.png", full_page=True)
    finally:
        context.close()
    with schema_context("alpha"):
        vip = Label.objects.get(name="VIP客户")
        assert (vip.color, vip.description) == ("#d81b60", "年消费十万以上")

    # The agent opens the conversation: WeCom's name and avatar arrive through the worker, without a reload.
    page.context.add_cookies([{"name": "django_language", "value": "zh-hans", "url": live_server_url}])
    add_session(page.context, live_server_url, "alpha", staff_agent.user.username)
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    worker = stack[1]
    wait_until(lambda: "ready for action" in worker.output(), timeout=60, message=worker.output)
    expect(page.locator("#profile-name")).to_have_text("李女士", timeout=30_000)
    expect(page.locator("#profile-avatar")).to_have_attribute("src", AVATAR)
    expect(page.locator("#profile-status")).to_contain_text("企业微信资料")
    expect(page.locator("#customer")).to_have_text("李女士")
    expect(page.locator("#profile-channel")).to_contain_text(CUSTOMER)

    # The earlier conversation: its date links to it, with its state, its label and the customer's first line.
    past = page.locator("#past-conversations li")
    expect(past).to_have_count(1)
    expect(past).to_contain_text("上次的订单还没到")
    expect(past.locator(".label-chip")).to_have_text(["退款"])
    expect(past.locator("[data-state=closed]")).to_have_text("已关闭")
    expect(past.locator("a")).to_have_attribute("href", f"/t/alpha/agent/c/{earlier.pk}/")

    # Labelling: the chip appears, the ticket's timeline records it.
    page.locator("#label-pick").focus()
    page.locator("#label-pick").select_option(label="VIP客户")
    expect(page.locator("#label-chips .label-chip")).to_have_text(["VIP客户×"])
    expect(page.locator("#timeline [data-kind=label_added]")).to_contain_text("添加标签：VIP客户")
    with schema_context("alpha"):
        assert list(conversation.labels.values_list("name", flat=True)) == ["VIP客户"]
        assert list(Ticket.objects.get(conversation=conversation, status="assigned").labels
                    .values_list("name", flat=True)) == ["VIP客户"]

    # A note about the customer, kept on the contact.
    page.locator("#profile-notes").fill("客户偏好电话联系，工作日 9 点后")
    page.get_by_role("button", name="保存备注").click()
    expect(page.locator("#banner")).to_contain_text("备注已保存。")
    with schema_context("alpha"):
        assert Contact.objects.get(pk=conversation.contact_id).notes == "客户偏好电话联系，工作日 9 点后"
    snap(page, shots / "labels-2-conversation.png")

    # The queue shows the chip beside the customer.
    page.goto(f"{live_server_url}/t/alpha/agent/")
    row = page.locator("#mine tbody tr", has_text="李女士")
    expect(row.locator(".label-chip")).to_have_text(["VIP客户"])

    # Taking it off again: the chip goes, the timeline says so.
    page.goto(f"{live_server_url}/t/alpha/agent/c/{conversation.pk}/")
    page.get_by_role("button", name="移除标签 VIP客户").click()
    expect(page.locator("#label-chips .label-chip")).to_have_count(0)
    expect(page.locator("#timeline [data-kind=label_removed]")).to_contain_text("移除标签：VIP客户")
