"""Canned replies (tickets/canned): the model's validation, the agent screens' "/" list (the caller's own and the
shared ones, filled for the conversation), sending one with its attachment, the REST API and its second tenant."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django_tenants.utils import schema_context

from conversations.models import Message, OutboundMessage
from testing.accounts import api_client, login_cookie
from testing.factories import AgentProfileFactory
from tickets.canned.models import CannedReply
from tickets.canned.services import send_canned_reply
from tickets.services import ActionRefused, claim_conversation

pytestmark = pytest.mark.django_db
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")


def client_for(schema: str, username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


def reply(**fields) -> CannedReply:
    row = CannedReply(**{"shortcode": "tuikuan", "title": "退款流程", "text": "{customer_name}您好", **fields})
    row.full_clean()
    row.save()
    return row


@pytest.fixture
def world(tenant_a, tenant_b, alpha_app, handed_off):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice", display_name="小王")
        carol = AgentProfileFactory(user__username="carol")
        conversation = handed_off(alpha_app, "zhangsan")
        conversation.contact.display_name = "李先生"
        conversation.contact.save()
        claim_conversation(conversation_id=conversation.pk, profile=alice)
        shared = reply(shortcode="tuikuan", title="退款流程",
                       text="{customer_name}您好，我是{agent_name}，退款 1-3 个工作日到账。")
        own = reply(shortcode="hi", title="问候", text="您好 {customer_name}", owner=alice.user)
        colleagues = reply(shortcode="bye", title="再见", text="再见", owner=carol.user)
        off = reply(shortcode="off", title="停用", text="x", enabled=False)
    with schema_context("beta"):
        bob = AgentProfileFactory(user__username="bob")
        reply(shortcode="beta-only", title="beta", text="beta")
    return {"alice": alice, "carol": carol, "bob": bob, "conversation": conversation, "shared": shared,
            "own": own, "colleagues": colleagues, "off": off}


# -- validation ------------------------------------------------------------------------------------------------

def test_unknown_variables_bad_shortcodes_and_one_shortcode_per_scope_are_refused(tenant_a):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        with pytest.raises(ValidationError) as refused:
            reply(text="{客户称呼}您好 {name}")
        assert refused.value.message_dict["text"] == [
            "未知变量：{客户称呼}, {name}。请使用 {customer_name} 或 {agent_name}。"]
        with pytest.raises(ValidationError) as refused:
            reply(shortcode="退 款")
        assert list(refused.value.message_dict) == ["shortcode"]
        reply(shortcode="退款")  # Chinese shortcodes are fine
        with pytest.raises(ValidationError) as refused:
            reply(shortcode="退款")
        assert refused.value.messages == ["已有使用此快捷码的共用快捷回复。"]
        reply(shortcode="退款", owner=alice.user)  # an agent's own may reuse a shared shortcode
        with pytest.raises(ValidationError) as refused:
            reply(shortcode="退款", owner=alice.user)
        assert refused.value.messages == ["该客服已有使用此快捷码的快捷回复。"]


def test_an_empty_attachment_is_refused_with_wecoms_reason(tenant_a):
    with schema_context("alpha"):
        row = CannedReply(shortcode="pic", title="图", text="见图")
        row.attachment.save("empty.png", ContentFile(b""), save=False)
        with pytest.raises(ValidationError) as refused:
            row.full_clean()
        assert refused.value.message_dict == {"attachment": ["文件是空的。"]}


# -- the agent screens --------------------------------------------------------------------------------------------

def test_the_list_has_the_agents_own_and_the_shared_ones_filled_for_the_conversation(world):
    conversation = world["conversation"]
    body = client_for("alpha", "alice").get(f"/t/alpha/agent/api/conversations/{conversation.pk}/canned-replies/")
    assert body.status_code == 200
    assert [(r["shortcode"], r["own"], r["text"]) for r in body.json()["replies"]] == [
        ("hi", True, "您好 李先生"),
        ("tuikuan", False, "李先生您好，我是小王，退款 1-3 个工作日到账。"),
    ]
    # The customer without a display name: their external id.
    with schema_context("alpha"):
        conversation.contact.display_name = ""
        conversation.contact.save()
    body = client_for("alpha", "alice").get(f"/t/alpha/agent/api/conversations/{conversation.pk}/canned-replies/")
    assert body.json()["replies"][0]["text"] == "您好 zhangsan"


def test_a_colleague_sees_the_shared_ones_and_their_own_and_another_tenant_nothing(world, alpha_app, handed_off):
    conversation = world["conversation"]
    carol = client_for("alpha", "carol")
    # alice's conversation is not carol's to open; on a waiting one carol sees her own and the shared ones.
    assert carol.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/canned-replies/").status_code == 404
    with schema_context("alpha"):
        waiting = handed_off(alpha_app, "wangwu")
    listed = carol.get(f"/t/alpha/agent/api/conversations/{waiting.pk}/canned-replies/").json()["replies"]
    assert [(r["shortcode"], r["text"]) for r in listed] == [
        ("bye", "再见"), ("tuikuan", "wangwu您好，我是carol，退款 1-3 个工作日到账。")]
    bob = client_for("beta", "bob")
    assert bob.get(f"/t/beta/agent/api/conversations/{conversation.pk}/canned-replies/").status_code == 404
    assert bob.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/canned-replies/").status_code == 403
    assert Client().get(f"/t/alpha/agent/api/conversations/{conversation.pk}/canned-replies/").status_code == 403


def test_sending_one_sends_the_edited_text_and_its_attachment_and_counts_the_use(world):
    conversation, alice = world["conversation"], world["alice"]
    with schema_context("alpha"):
        picture = CannedReply(shortcode="pic", title="示意图", text="请看图，{customer_name}")
        picture.attachment.save("步骤.png", ContentFile(PNG), save=False)
        picture.full_clean()
        picture.save()
    response = client_for("alpha", "alice").post(
        f"/t/alpha/agent/api/conversations/{conversation.pk}/reply/",
        {"text": "请看图，李先生（已改）", "canned": picture.pk}, content_type="application/json")
    assert response.status_code == 200, response.json()
    with schema_context("alpha"):
        texts = list(Message.objects.filter(conversation=conversation, author=Message.Author.AGENT)
                     .order_by("id").values_list("text", flat=True))
        assert texts == ["请看图，李先生（已改）", "[图片] 步骤.png"]
        media = OutboundMessage.objects.get(conversation=conversation, msgtype="image")
        assert media.content == "步骤.png" and media.media.read() == PNG
        picture.refresh_from_db()
        assert picture.usage_count == 1
        # A colleague's own reply, or a disabled one, is not the caller's to send.
        for unavailable in (world["colleagues"], world["off"]):
            with pytest.raises(ActionRefused):
                send_canned_reply(conversation_id=conversation.pk, profile=alice, reply_id=unavailable.pk,
                                  text="x")
        assert Message.objects.filter(conversation=conversation, author=Message.Author.AGENT).count() == 2


# -- the REST API ---------------------------------------------------------------------------------------------------

def test_the_api_lists_filters_creates_updates_and_deletes_with_the_same_validation(world, api_keys):
    api = api_client(api_keys["alpha"])
    alice = world["alice"]

    def ids(response) -> list[int]:
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    everything = ids(api.get("/t/alpha/api/canned-replies/"))
    assert sorted(everything) == sorted(world[k].pk for k in ("shared", "own", "colleagues", "off"))
    assert ids(api.get("/t/alpha/api/canned-replies/", {"shared": "true"})) == [world["shared"].pk, world["off"].pk]
    assert ids(api.get("/t/alpha/api/canned-replies/", {"owner": alice.user_id})) == [world["own"].pk]
    assert ids(api.get("/t/alpha/api/canned-replies/", {"text": "退款"})) == [world["shared"].pk]

    created = api.post("/t/alpha/api/canned-replies/", {"shortcode": "wuliu", "title": "物流",
                                                         "text": "{customer_name}，已发货", "owner": None},
                       content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["owner"] is None and created.json()["attachment"] is None
    refused = api.post("/t/alpha/api/canned-replies/", {"shortcode": "wuliu", "title": "x", "text": "{订单号}"},
                       content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "text": ["未知变量：{订单号}。请使用 {customer_name} 或 {agent_name}。"],
        "shortcode": ["已有使用此快捷码的共用快捷回复。"]}
    assert set(api.post("/t/alpha/api/canned-replies/", {"shortcode": "a b", "title": "x", "text": "x",
                                                         "owner": 2**31 - 1},
                        content_type="application/json").json()["errors"]) == {"shortcode", "owner"}

    reply_id = created.json()["id"]
    moved = api.patch(f"/t/alpha/api/canned-replies/{reply_id}/", {"owner": alice.user_id},
                      content_type="application/json")
    assert moved.status_code == 200 and moved.json()["owner"] == alice.user_id
    clash = api.patch(f"/t/alpha/api/canned-replies/{reply_id}/", {"shortcode": "hi"},
                      content_type="application/json")
    assert clash.json()["errors"] == {"shortcode": ["该客服已有使用此快捷码的快捷回复。"]}
    assert api.delete(f"/t/alpha/api/canned-replies/{reply_id}/").status_code == 204


def test_another_tenant_sees_and_changes_nothing(world, api_keys):
    beta = api_client(api_keys["beta"])
    listed = beta.get("/t/beta/api/canned-replies/").json()["results"]
    assert [r["shortcode"] for r in listed] == ["beta-only"]
    shared = world["shared"].pk
    assert beta.get(f"/t/beta/api/canned-replies/{shared}/").status_code == 404
    assert beta.patch(f"/t/beta/api/canned-replies/{shared}/", {"title": "x"},
                      content_type="application/json").status_code == 404
    assert beta.delete(f"/t/beta/api/canned-replies/{shared}/").status_code == 404
    # beta cannot make a reply personal to alpha's agent (no such agent in beta)
    assert beta.post("/t/beta/api/canned-replies/", {"shortcode": "x", "title": "x", "text": "x",
                                                     "owner": world["alice"].user_id},
                     content_type="application/json").json()["errors"] == {"owner": ["没有这个客服。"]}
    with schema_context("alpha"):
        assert CannedReply.objects.filter(pk=shared, title="退款流程").exists()


def test_the_admin_lists_searches_and_validates(world, admin_client):
    assert admin_client.get("/t/alpha/admin/tickets/cannedreply/", {"q": "退款"}).status_code == 200
    assert admin_client.get("/t/alpha/admin/tickets/cannedreply/", {"scope": "personal"}).status_code == 200
    response = admin_client.post("/t/alpha/admin/tickets/cannedreply/add/",
                                 {"shortcode": "x", "title": "x", "text": "{foo}", "enabled": "on"})
    assert response.status_code == 200
    assert "未知变量：{foo}。" in response.content.decode()


# -- the agent's own replies page ---------------------------------------------------------------------------------

def test_an_agent_manages_their_own_replies_and_nobody_elses(world):
    alice, own = client_for("alpha", "alice"), world["own"]
    page = alice.get("/t/alpha/agent/canned/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "/hi" in text and "/tuikuan" in text and "/bye" not in text  # own, shared; not carol's

    added = alice.post("/t/alpha/agent/canned/", {"shortcode": "wuliu", "title": "物流", "enabled": "on",
                                                  "text": "{customer_name}，您的包裹已发出。"})
    assert added.status_code == 302
    with schema_context("alpha"):
        created = CannedReply.objects.get(shortcode="wuliu")
        assert created.owner_id == world["alice"].user_id
    refused = alice.post("/t/alpha/agent/canned/", {"shortcode": "hi", "title": "x", "text": "{订单号}"})
    assert refused.status_code == 400
    assert "该客服已有使用此快捷码的快捷回复。" in refused.content.decode()
    assert "未知变量：{订单号}。" in refused.content.decode()

    edited = alice.post(f"/t/alpha/agent/canned/{own.pk}/", {"shortcode": "hi", "title": "问候（新）",
                                                            "text": "您好", "enabled": "on"})
    assert edited.status_code == 302
    # A colleague's reply, a shared one, another tenant: not theirs.
    carol = client_for("alpha", "carol")
    assert carol.get(f"/t/alpha/agent/canned/{own.pk}/").status_code == 404
    assert carol.post(f"/t/alpha/agent/canned/{own.pk}/delete/").status_code == 404
    assert alice.post(f"/t/alpha/agent/canned/{world['shared'].pk}/delete/").status_code == 404
    bob = client_for("beta", "bob")
    assert bob.post(f"/t/beta/agent/canned/{own.pk}/delete/").status_code == 404
    assert "/tuikuan" not in bob.get("/t/beta/agent/canned/").content.decode()
    assert alice.post(f"/t/alpha/agent/canned/{own.pk}/delete/").status_code == 302
    with schema_context("alpha"):
        assert not CannedReply.objects.filter(pk=own.pk).exists()
        assert CannedReply.objects.filter(pk=world["shared"].pk).exists()
