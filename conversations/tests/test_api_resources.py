"""REST API of the conversation resources: contacts, conversations and their messages (cursor pages), sending
with an Idempotency-Key, inbound messages with their trace, WeCom apps (masked, enable/disable); each with a
second tenant that sees nothing and changes nothing."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.idempotency import IdempotentSend
from conversations.models import Contact, Conversation, InboundMessage, Message, OutboundMessage, WeComApp
from conversations.services.api_keys import create_api_key
from conversations.services.reply_limits import CUSTOMER_ORIGIN
from testing.accounts import api_client
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import (
    APP_SECRET,
    ContactFactory,
    ConversationFactory,
    InboundMessageFactory,
    MessageFactory,
    TraceEventFactory,
    UserFactory,
    WeComAppFactory,
)
from testing.vectors import AES_KEY, TOKEN

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def error(response, status: int, code: str) -> dict:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    return body


def at(row, field: str, when: str) -> None:
    type(row).objects.filter(pk=row.pk).update(**{field: when})


@pytest.fixture
def alpha(api_keys):
    return api_client(api_keys["alpha"])


@pytest.fixture
def beta(api_keys):
    return api_client(api_keys["beta"])


# -- contacts ---------------------------------------------------------------------------------------------


def test_contacts_are_listed_filtered_searched_and_ordered(alpha, beta):
    with schema_context("alpha"):
        zhang = ContactFactory(external_id="zhangsan", display_name="张三")
        kf_app = WeComAppFactory(kind="kf")
        li = ContactFactory(app=kf_app, external_id="wmLISI", display_name="李四")
        at(zhang, "created_at", "2026-01-01T00:00:00Z")
        at(li, "created_at", "2026-03-01T00:00:00Z")
        open_conversation = ConversationFactory(contact=li)
        ConversationFactory(contact=zhang, state=Conversation.State.CLOSED)
    with schema_context("beta"):  # the same id as alpha's zhangsan: still only beta's own row
        ContactFactory(pk=zhang.pk, external_id="beta-only")
    listing = alpha.get("/t/alpha/api/contacts/")
    assert ids(listing) == [zhang.pk, li.pk]
    first, second = listing.json()["results"]
    assert first == {"id": zhang.pk, "app": zhang.app_id, "app_name": zhang.app.name, "channel": "app",
                     "external_id": "zhangsan", "open_kfid": "", "display_name": "张三", "avatar_url": "",
                     "profile_fetched_at": None, "scene": "",
                     "scene_param": "", "notes": "", "attributes": {}, "open_conversation": None,
                     "created_at": "2026-01-01T08:00:00+08:00"}
    assert (second["channel"], second["open_kfid"], second["open_conversation"]) == ("kf", li.open_kfid,
                                                                                      open_conversation.pk)
    assert ids(alpha.get("/t/alpha/api/contacts/", {"app": kf_app.pk})) == [li.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"open_kfid": li.open_kfid})) == [li.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"channel": "app"})) == [zhang.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"text": "李"})) == [li.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"text": "ZHANG"})) == [zhang.pk]  # external id, any case
    assert ids(alpha.get("/t/alpha/api/contacts/", {"created_after": "2026-02-01T00:00:00Z"})) == [li.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"created_before": "2026-02-01T00:00:00Z"})) == [zhang.pk]
    assert ids(alpha.get("/t/alpha/api/contacts/", {"ordering": "-created_at"})) == [li.pk, zhang.pk]
    for bad in ({"app": "x"}, {"channel": "sms"}, {"created_after": "yesterday"}, {"ordering": "notes"}):
        response = alpha.get("/t/alpha/api/contacts/", bad)
        if "ordering" in bad:  # an unknown ordering field is ignored, as on every list
            assert response.status_code == 200
            continue
        assert list(error(response, 400, "invalid")["errors"]) == list(bad)
    assert ids(alpha.get("/t/alpha/api/contacts/", {"text": "beta"})) == []
    # beta: its own contact only, and alpha's ids are not found
    assert [item["external_id"] for item in beta.get("/t/beta/api/contacts/").json()["results"]] == ["beta-only"]
    assert ids(beta.get("/t/beta/api/contacts/", {"text": "李"})) == []
    error(beta.get(f"/t/beta/api/contacts/{li.pk}/"), 404, "not_found")


def test_a_contact_is_read_and_its_notes_and_attributes_kept(alpha):
    with schema_context("alpha"):
        contact = ContactFactory(external_id="zhangsan")
    url = f"/t/alpha/api/contacts/{contact.pk}/"
    assert alpha.get(url).json()["external_id"] == "zhangsan"
    updated = alpha.patch(url, {"notes": "VIP，周末联系", "attributes": {"tier": "gold", "orders": 3, "vip": True}},
                          content_type="application/json")
    assert updated.status_code == 200, updated.json()
    assert (updated.json()["notes"], updated.json()["attributes"]) == ("VIP，周末联系",
                                                                       {"tier": "gold", "orders": 3, "vip": True})
    # A merge: set one, remove one (null), keep the rest; the notes stay when not given.
    merged = alpha.patch(url, {"attributes": {"tier": "platinum", "vip": None, "score": 4.5}},
                         content_type="application/json")
    assert merged.json()["attributes"] == {"tier": "platinum", "orders": 3, "score": 4.5}
    assert merged.json()["notes"] == "VIP，周末联系"
    with schema_context("alpha"):
        stored = Contact.objects.get(pk=contact.pk)
    assert (stored.notes, stored.attributes) == ("VIP，周末联系", {"tier": "platinum", "orders": 3, "score": 4.5})
    assert alpha.put(url, {"notes": "x"}, content_type="application/json").status_code == 405


@pytest.mark.parametrize(("body", "where"), [
    ({"attributes": ["a"]}, "attributes"),
    ({"attributes": "tier=gold"}, "attributes"),
    ({"attributes": {"tier": {"level": 1}}}, "attributes.tier"),
    ({"attributes": {"tier": [1, 2]}}, "attributes.tier"),
    ({"attributes": {"k" * 65: "v"}}, "attributes." + "k" * 65),
    ({"attributes": {" ": "v"}}, "attributes. "),
    ({"attributes": {"note": "长" * 1001}}, "attributes.note"),
    ({"attributes": {"big": 2**60}}, "attributes.big"),
    ({"notes": "x" * 10_001}, "notes"),
    ({"notes": None}, "notes"),
])
def test_contact_updates_are_validated(alpha, body, where):
    with schema_context("alpha"):
        contact = ContactFactory(attributes={"tier": "gold"})
    response = alpha.patch(f"/t/alpha/api/contacts/{contact.pk}/", body, content_type="application/json",
                           HTTP_ACCEPT_LANGUAGE="en")
    assert error(response, 400, "invalid")["detail"].startswith(where + ":")
    with schema_context("alpha"):
        assert Contact.objects.get(pk=contact.pk).attributes == {"tier": "gold"}


def test_contact_attributes_are_bounded_in_number_and_size(alpha):
    with schema_context("alpha"):
        contact = ContactFactory(attributes={f"k{n}": n for n in range(50)})
    url = f"/t/alpha/api/contacts/{contact.pk}/"
    body = error(alpha.patch(url, {"attributes": {"one_more": 1}}, content_type="application/json",
                             HTTP_ACCEPT_LANGUAGE="en"), 400, "invalid")
    assert body["errors"] == {"attributes": ["At most 50 custom attributes per contact."]}
    # Replacing within the count is fine; past 16 KB in all is not.
    big = {f"k{n}": "字" * 1000 for n in range(6)}
    body = error(alpha.patch(url, {"attributes": big}, content_type="application/json", HTTP_ACCEPT_LANGUAGE="en"),
                 400, "invalid")
    assert body["errors"] == {"attributes": ["At most 16384 bytes of custom attributes per contact."]}
    with schema_context("alpha"):
        assert Contact.objects.get(pk=contact.pk).attributes == {f"k{n}": n for n in range(50)}


def test_another_tenant_neither_reads_nor_changes_a_contact(alpha, beta):
    with schema_context("alpha"):
        contact = ContactFactory(notes="alpha's")
    with schema_context("beta"):
        ContactFactory(pk=contact.pk + 1000)
    url = f"/t/beta/api/contacts/{contact.pk}/"
    error(beta.get(url), 404, "not_found")
    error(beta.patch(url, {"notes": "beta's"}, content_type="application/json"), 404, "not_found")
    assert beta.get("/t/alpha/api/contacts/").status_code == 401  # beta's key in alpha
    with schema_context("alpha"):
        assert Contact.objects.get(pk=contact.pk).notes == "alpha's"


# -- conversations ------------------------------------------------------------------------------------------


@pytest.fixture
def two_conversations(tenant_a):
    with schema_context("alpha"):
        agent = UserFactory(username="alice@alpha.test")
        app_conversation = ConversationFactory(contact__external_id="zhangsan", state=Conversation.State.HUMAN,
                                               agent=agent)
        MessageFactory(conversation=app_conversation, text="我要退货")
        kf_conversation = ConversationFactory(contact__app=WeComAppFactory(kind="kf"), state=Conversation.State.CLOSED)
        MessageFactory(conversation=kf_conversation, text="发票怎么开")
        at(app_conversation, "started_at", "2026-01-01T00:00:00Z")
        at(app_conversation, "last_message_at", "2026-01-02T00:00:00Z")
        at(kf_conversation, "started_at", "2026-03-01T00:00:00Z")
        at(kf_conversation, "last_message_at", "2026-03-01T01:00:00Z")
    with schema_context("beta"):
        ConversationFactory(contact__external_id="zhangsan")
    return app_conversation, kf_conversation, agent


def test_conversations_are_listed_with_filters_and_ordering(alpha, beta, two_conversations):
    app_conversation, kf_conversation, agent = two_conversations
    url = "/t/alpha/api/conversations/"
    listing = alpha.get(url)
    assert ids(listing) == [kf_conversation.pk, app_conversation.pk]  # latest message first
    assert listing.json()["results"][1] == {
        "id": app_conversation.pk, "contact": app_conversation.contact_id, "channel": "app",
        "app": app_conversation.contact.app_id, "state": "human", "agent": agent.pk, "agent_name": "alice@alpha.test",
        "started_at": "2026-01-01T08:00:00+08:00", "last_message_at": "2026-01-02T08:00:00+08:00", "closed_at": None}
    assert ids(alpha.get(url, {"state": "closed"})) == [kf_conversation.pk]
    assert ids(alpha.get(url, {"channel": "kf"})) == [kf_conversation.pk]
    assert ids(alpha.get(url, {"channel": "app"})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"app": kf_conversation.contact.app_id})) == [kf_conversation.pk]
    assert ids(alpha.get(url, {"agent": agent.pk})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"contact": app_conversation.contact_id})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"started_after": "2026-02-01T00:00:00Z"})) == [kf_conversation.pk]
    assert ids(alpha.get(url, {"started_before": "2026-02-01T00:00:00Z"})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"last_message_after": "2026-01-02T00:00:00Z",
                               "last_message_before": "2026-01-02T00:00:01Z"})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"text": "退货"})) == [app_conversation.pk]
    assert ids(alpha.get(url, {"text": "发票"})) == [kf_conversation.pk]
    assert ids(alpha.get(url, {"ordering": "started_at"})) == [app_conversation.pk, kf_conversation.pk]
    for bad in ({"state": "open"}, {"agent": "alice"}, {"started_after": "2026-13-01"}, {"contact": 0}):
        assert list(error(alpha.get(url, bad), 400, "invalid")["errors"]) == list(bad)
    assert ids(beta.get("/t/beta/api/conversations/", {"text": "退货"})) == []
    assert app_conversation.pk not in ids(beta.get("/t/beta/api/conversations/", {"state": "human"}))


def test_a_conversation_is_read_with_its_contact_latest_messages_and_allowance(alpha, beta, two_conversations):
    app_conversation, *_ = two_conversations
    with schema_context("alpha"):
        lines = [MessageFactory(conversation=app_conversation, text=f"第{n}句") for n in range(25)]
    body = alpha.get(f"/t/alpha/api/conversations/{app_conversation.pk}/").json()
    assert body["contact"]["external_id"] == "zhangsan" and body["contact"]["open_conversation"] == app_conversation.pk
    assert [m["id"] for m in body["messages"]] == [m.pk for m in lines[-20:]]  # the latest 20, oldest first
    assert body["messages"][-1] == {"id": lines[-1].pk, "conversation": app_conversation.pk, "author": "customer",
                                    "author_label": "customer", "text": "第24句",
                                    "created_at": body["messages"][-1]["created_at"], "delivery": None, "media": None,
                                    "sensitive_words": []}
    assert body["reply_allowance"] == {"window_ends_at": None, "replies_left": None, "per_minute_left": 30,
                                       "refusal": None}
    error(beta.get(f"/t/beta/api/conversations/{app_conversation.pk}/"), 404, "not_found")


def test_messages_come_in_cursor_pages(alpha, beta, two_conversations):
    app_conversation, *_ = two_conversations
    with schema_context("alpha"):
        first = Message.objects.get(conversation=app_conversation)
        lines = [first, *(MessageFactory(conversation=app_conversation, author=Message.Author.AI) for _ in range(4))]
    url = f"/t/alpha/api/conversations/{app_conversation.pk}/messages/"
    seen, page = [], alpha.get(url, {"limit": 2})
    while True:
        assert page.status_code == 200 and set(page.json()) == {"next", "previous", "results"}
        seen += [m["id"] for m in page.json()["results"]]
        if not page.json()["next"]:
            break
        page = alpha.get(page.json()["next"])
    assert seen == [m.pk for m in reversed(lines)]  # newest first, each once
    # A line arriving between two pages neither shifts nor repeats the next page.
    oldest_first = alpha.get(url, {"limit": 2, "ordering": "id"})
    assert [m["id"] for m in oldest_first.json()["results"]] == [lines[0].pk, lines[1].pk]
    with schema_context("alpha"):
        newer = MessageFactory(conversation=app_conversation)
    following = alpha.get(oldest_first.json()["next"])
    assert [m["id"] for m in following.json()["results"]] == [lines[2].pk, lines[3].pk]
    assert ids(alpha.get(url, {"after": lines[3].pk, "ordering": "id"})) == [lines[4].pk, newer.pk]
    assert ids(alpha.get(url, {"author": "customer"})) == [newer.pk, first.pk]
    error(alpha.get(url, {"cursor": "garbage"}), 404, "not_found")
    assert list(error(alpha.get(url, {"after": "x"}), 400, "invalid")["errors"]) == ["after"]
    error(beta.get(f"/t/beta/api/conversations/{app_conversation.pk}/messages/"), 404, "not_found")


# -- sending ---------------------------------------------------------------------------------------------------


def send(client, conversation_id: int, text: str, key: str | None = None, schema: str = "alpha"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"/t/{schema}/api/conversations/{conversation_id}/messages/", {"text": text},
                       content_type="application/json", **headers)


@pytest.fixture
def conversation(tenant_a):
    with schema_context("alpha"):
        return ConversationFactory(contact__external_id="zhangsan")


def test_a_send_goes_through_the_ledger(alpha, conversation, django_capture_on_commit_callbacks):
    flush_test_broker()
    with django_capture_on_commit_callbacks(execute=True):
        response = send(alpha, conversation.pk, "  您的订单已发货  ")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["conversation"], body["author"], body["text"], body["delivery"]) == (
        conversation.pk, "api", "您的订单已发货", "pending")
    with schema_context("alpha"):
        message = Message.objects.get(pk=body["id"])
        (row,) = OutboundMessage.objects.filter(message=message)
    assert (message.author, row.author, row.content, row.idempotency_key, row.contact_id) == (
        "api", "api", "您的订单已发货", f"api:{message.pk}:1", conversation.contact_id)
    assert [job.args for job in queued_jobs("outbound", actor_name="conversations.deliver_outbound")] == [
        (conversation.contact_id,)]
    flush_test_broker()
    # Without a key, a second request is a second message.
    assert send(alpha, conversation.pk, "您的订单已发货").json()["id"] != body["id"]


def test_a_repeated_idempotency_key_returns_the_same_message(alpha, api_keys, conversation):
    first = send(alpha, conversation.pk, "您的订单已发货", key="order-42-shipped")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    again = send(alpha, conversation.pk, "您的订单已发货", key="order-42-shipped")
    assert (again.status_code, again["Idempotent-Replayed"], again.json()) == (200, "true", first.json())
    with schema_context("alpha"):
        (row,) = OutboundMessage.objects.filter(contact=conversation.contact)
        (claim,) = IdempotentSend.objects.all()
    assert row.idempotency_key.startswith("api:k") and row.idempotency_key.endswith(":1")
    assert claim.key == row.idempotency_key[:-2] and claim.message_id == first.json()["id"]
    # The same key with another request is refused; nothing is sent.
    reused = error(send(alpha, conversation.pk, "另一条消息", key="order-42-shipped"), 422, "idempotency_key_reused")
    assert reused["detail"]
    # Another key of the tenant has keys of its own.
    with schema_context("alpha"):
        _, other_key = create_api_key(name="crm")
    other = send(api_client(other_key), conversation.pk, "您的订单已发货", key="order-42-shipped")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    with schema_context("alpha"):
        assert Message.objects.filter(author="api").count() == 2
        assert OutboundMessage.objects.filter(contact=conversation.contact).count() == 2


@pytest.mark.parametrize(("body", "headers", "where"), [
    ({}, {}, "text"),
    ({"text": "   "}, {}, "text"),
    ({"text": None}, {}, "text"),
    ({"text": "x" * 4001}, {}, "text"),
    ({"text": "坏\x00字"}, {}, "text"),
    ({"text": "好"}, {"HTTP_IDEMPOTENCY_KEY": ""}, "Idempotency-Key"),
    ({"text": "好"}, {"HTTP_IDEMPOTENCY_KEY": "has space"}, "Idempotency-Key"),
    ({"text": "好"}, {"HTTP_IDEMPOTENCY_KEY": "k" * 256}, "Idempotency-Key"),
])
def test_sends_are_validated(alpha, conversation, body, headers, where):
    response = alpha.post(f"/t/alpha/api/conversations/{conversation.pk}/messages/", body,
                          content_type="application/json", **headers)
    assert list(error(response, 400, "invalid")["errors"]) == [where]
    with schema_context("alpha"):
        assert not Message.objects.exists() and not OutboundMessage.objects.exists()


def kf_conversation_whose_customer_wrote(hours_ago: float) -> Conversation:
    conversation = ConversationFactory(contact__app=WeComAppFactory(kind="kf"))
    contact = conversation.contact
    InboundMessageFactory(app=contact.app, source=InboundMessage.Source.KF_PULL, sender=contact.external_id,
                          open_kfid=contact.open_kfid, origin=CUSTOMER_ORIGIN,
                          sent_at=timezone.now() - timedelta(hours=hours_ago))
    return conversation


def test_what_wecom_would_refuse_is_refused_with_a_code(alpha, tenant_a):
    with schema_context("alpha"):
        silent = ConversationFactory(contact__app=WeComAppFactory(kind="kf"))
        late = kf_conversation_whose_customer_wrote(hours_ago=49)
        recent = kf_conversation_whose_customer_wrote(hours_ago=1)
        disabled = ConversationFactory(contact__app=WeComAppFactory(corp_id="wwdisabled01", is_enabled=False))
        servicers = ConversationFactory(contact__app=WeComAppFactory(kind="kf", corp_id="wwservicers1",
                                                                     servicers_mode=True))
    error(send(alpha, silent.pk, "您好"), 409, "no_customer_message")
    error(send(alpha, late.pk, "您好"), 409, "window_closed")
    error(send(alpha, disabled.pk, "您好"), 409, "app_disabled")
    error(send(alpha, servicers.pk, "您好"), 409, "answered_in_wecom_client")
    assert "网赌" in error(send(alpha, recent.pk, "这里可以网赌"), 409, "sensitive_words")["detail"]  # the platform's
    for n in range(5):  # five replies per customer message, then WeCom refuses
        assert send(alpha, recent.pk, f"回复 {n}").status_code == 201
    body = error(send(alpha, recent.pk, "第六条", key="sixth"), 409, "no_replies_left")
    assert "5" in body["detail"]
    with schema_context("alpha"):
        assert OutboundMessage.objects.count() == 5 and Message.objects.filter(author="api").count() == 5
        assert not IdempotentSend.objects.exists()  # a refused send keeps no key: a retry is judged afresh


def test_a_closed_conversations_customer_is_written_to_in_a_new_conversation(alpha, conversation):
    with schema_context("alpha"):
        Conversation.objects.filter(pk=conversation.pk).update(state=Conversation.State.CLOSED,
                                                               closed_at=timezone.now())
    body = send(alpha, conversation.pk, "您好，还在吗？").json()
    with schema_context("alpha"):
        current = Conversation.objects.exclude(state=Conversation.State.CLOSED).get(contact=conversation.contact)
    assert current.pk != conversation.pk and body["conversation"] == current.pk


def test_another_tenant_cannot_send_to_a_conversation(beta, conversation):
    with schema_context("beta"):
        ConversationFactory(pk=conversation.pk + 1000)
    error(send(beta, conversation.pk, "冒充", schema="beta"), 404, "not_found")
    with schema_context("alpha"):
        assert not Message.objects.exists() and not OutboundMessage.objects.exists()


# -- inbound messages ---------------------------------------------------------------------------------------


def test_inbound_messages_are_listed_filtered_and_read_with_their_trace(alpha, beta, tenant_a):
    with schema_context("alpha"):
        contact = ContactFactory(external_id="zhangsan")
        text = InboundMessageFactory(sender="zhangsan", content="你好")
        picture = InboundMessageFactory(sender="zhangsan", msg_type="image", content="")
        other = InboundMessageFactory(sender="lisi", app=WeComAppFactory(kind="kf"))
        at(text, "received_at", "2026-01-01T00:00:00Z")
        at(picture, "received_at", "2026-02-01T00:00:00Z")
        at(other, "received_at", "2026-03-01T00:00:00Z")
        TraceEventFactory(inbound=text, stage="received")
    with schema_context("beta"):
        InboundMessageFactory(sender="zhangsan")
    url = "/t/alpha/api/inbound-messages/"
    assert ids(alpha.get(url)) == [other.pk, picture.pk, text.pk]
    assert ids(alpha.get(url, {"app": other.app_id})) == [other.pk]
    assert ids(alpha.get(url, {"contact": contact.pk})) == [picture.pk, text.pk]
    assert ids(alpha.get(url, {"contact": 2**62})) == []
    assert ids(alpha.get(url, {"msgtype": "image"})) == [picture.pk]
    assert ids(alpha.get(url, {"received_after": "2026-01-15T00:00:00Z",
                               "received_before": "2026-02-15T00:00:00Z"})) == [picture.pk]
    assert ids(alpha.get(url, {"ordering": "received_at"})) == [text.pk, picture.pk, other.pk]
    assert list(error(alpha.get(url, {"contact": "zhangsan"}), 400, "invalid")["errors"]) == ["contact"]
    detail = alpha.get(f"{url}{text.pk}/").json()
    assert (detail["content"], detail["sender"], detail["trace_id"]) == ("你好", "zhangsan", str(text.trace_id))
    assert detail["trace"]["id"] == text.pk and [e["stage"] for e in detail["trace"]["events"]] == ["received"]
    assert ids(beta.get("/t/beta/api/inbound-messages/", {"msgtype": "image"})) == []
    error(beta.get(f"/t/beta/api/inbound-messages/{picture.pk}/"), 404, "not_found")


# -- WeCom apps -----------------------------------------------------------------------------------------------


def test_apps_are_read_with_their_secrets_masked(alpha, tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory()
    response = alpha.get(f"/t/alpha/api/wecom-apps/{app.pk}/")
    body = response.json()
    raw = response.content.decode()
    for secret in (APP_SECRET, TOKEN, AES_KEY):
        assert secret not in raw and secret[:-4] not in raw
    assert body["secret"] == "••••••••" + APP_SECRET[-4:]
    assert body["encoding_aes_key"] == "••••••••" + AES_KEY[-4:]
    assert body["token"].startswith("••••••••")
    assert (body["kind"], body["agent_id"], body["is_enabled"], body["account_status"]) == ("app", app.agent_id,
                                                                                            True, "active")
    assert ids(alpha.get("/t/alpha/api/wecom-apps/")) == [app.pk]


def test_apps_are_disabled_and_enabled(alpha, beta, tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory()
    disabled = alpha.post(f"/t/alpha/api/wecom-apps/{app.pk}/disable/", content_type="application/json")
    assert (disabled.status_code, disabled.json()["is_enabled"]) == (200, False)
    with schema_context("alpha"):
        assert not WeComApp.objects.get(pk=app.pk).is_enabled
    # beta can neither see nor switch alpha's app
    error(beta.post(f"/t/beta/api/wecom-apps/{app.pk}/enable/", content_type="application/json"), 404, "not_found")
    error(beta.get(f"/t/beta/api/wecom-apps/{app.pk}/"), 404, "not_found")
    assert ids(beta.get("/t/beta/api/wecom-apps/")) == []
    with schema_context("alpha"):
        assert not WeComApp.objects.get(pk=app.pk).is_enabled
    enabled = alpha.post(f"/t/alpha/api/wecom-apps/{app.pk}/enable/", content_type="application/json")
    assert (enabled.status_code, enabled.json()["is_enabled"]) == (200, True)
    error(alpha.post("/t/alpha/api/wecom-apps/999999/enable/", content_type="application/json"), 404, "not_found")


GARBAGE = ['[]', '"text"', '17', 'null', '{"text": ["a"]}', '{"text": {"a": 1}}', '{"text": 1e999}',
           '{"text": "\\ud800"}', '{"text": true}', '{"text": "好", "conversation": 99}', '{"attributes": {"": null}}',
           '{"notes": "\\u0000"}', '{"attributes": {"k": "a\\u0000b"}}', '{"attributes": {"a\\u0000": 1}}',
           '{"attributes": {"k": "\\ud800"}}', '{"attributes": {"a": 1e308, "b": -0.0}}', '{"attributes": {"k": NaN}}']


def test_garbage_bodies_are_refused_never_a_server_error(alpha, conversation):
    with schema_context("alpha"):
        contact = conversation.contact
    for body in GARBAGE:
        for url, method in ((f"/t/alpha/api/conversations/{conversation.pk}/messages/", alpha.post),
                            (f"/t/alpha/api/contacts/{contact.pk}/", alpha.patch)):
            response = method(url, body, content_type="application/json")
            assert response.status_code in (200, 201, 400), (url, body, response.content)
            assert response.status_code != 400 or response.json()["code"] in ("invalid", "parse_error")


def test_each_resource_needs_its_scope(conversation):
    """Reading needs the family's read scope, changing it its write scope (conversations/scopes.py)."""
    with schema_context("alpha"):
        app = WeComAppFactory(corp_id="wwscopes0001")
        _, readonly = create_api_key(name="reader", scopes=["contacts:read", "conversations:read", "settings:read"])
        _, contacts_only = create_api_key(name="crm", scopes=["contacts:write"])
    reader, crm = api_client(readonly), api_client(contacts_only)
    contact_url = f"/t/alpha/api/contacts/{conversation.contact_id}/"
    assert reader.get(contact_url).status_code == 200
    assert reader.get(f"/t/alpha/api/conversations/{conversation.pk}/messages/").status_code == 200
    assert reader.get("/t/alpha/api/inbound-messages/").status_code == 200
    assert reader.get(f"/t/alpha/api/wecom-apps/{app.pk}/").status_code == 200
    error(reader.patch(contact_url, {"notes": "x"}, content_type="application/json"), 403, "permission_denied")
    error(send(reader, conversation.pk, "您好"), 403, "permission_denied")
    error(reader.post(f"/t/alpha/api/wecom-apps/{app.pk}/disable/", content_type="application/json"), 403,
          "permission_denied")
    assert crm.patch(contact_url, {"notes": "x"}, content_type="application/json").status_code == 200
    error(crm.get(f"/t/alpha/api/conversations/{conversation.pk}/"), 403, "permission_denied")
    error(send(crm, conversation.pk, "您好"), 403, "permission_denied")
    with schema_context("alpha"):
        assert not Message.objects.exists() and WeComApp.objects.get(pk=app.pk).is_enabled
