"""Labels (tickets/labels) and the profile panel (tickets/profiles): the label's validation in the admin and the
API, putting labels on conversations (the active ticket follows, the timeline records it, the queue shows it),
the REST API with its scopes and the conversations list's `label` filter, the profile panel (WeCom's name and
avatar, notes and custom attributes validated as the API does, earlier conversations linked only when the agent
may open them), and a second tenant that sees and changes nothing."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation, DeskSettings
from conversations.realtime import conversation_group
from conversations.services.api_keys import create_api_key
from conversations.services.handoff import hand_off_to_human
from testing.accounts import api_client, login_cookie, staff_client
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import AgentProfileFactory, ConversationFactory, MessageFactory
from tickets.labels.models import Label
from tickets.labels.services import MAX_LABELS_PER_CONVERSATION, label_conversation, unlabel_conversation
from tickets.models import Ticket, TicketEvent
from tickets.realtime import queue_group
from tickets.services import ActionRefused, Integration, claim_conversation, close_conversation

pytestmark = pytest.mark.django_db
AVATAR = "https://wx.qlogo.cn/mmhead/li/0"


def client_for(schema: str, username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


def post(client: Client, path: str, body: dict):
    return client.post(path, body, content_type="application/json")


def label_events(conversation: Conversation) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.detail["label"], e.actor.username if e.actor_id else e.detail.get("by"))
            for e in TicketEvent.objects.filter(ticket__conversation=conversation, kind__startswith="label_")
            .select_related("actor").order_by("id")]


@pytest.fixture
def world(tenant_a, tenant_b, alpha_app, handed_off, redis_client):
    """alpha: alice holds zhangsan's conversation (an earlier, closed one too); carol is another agent. beta: bob
    and a label of its own."""
    for key in redis_client.scan_iter("alpha:profiles:*"):
        redis_client.delete(key)
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        carol = AgentProfileFactory(user__username="carol")
        earlier = handed_off(alpha_app, "zhangsan")
        MessageFactory(conversation=earlier, text="上次的订单还没到")
        claim_conversation(conversation_id=earlier.pk, profile=alice)
        close_conversation(conversation_id=earlier.pk, profile=alice)
        conversation = ConversationFactory(contact=earlier.contact)  # the customer came back
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        claim_conversation(conversation_id=conversation.pk, profile=alice)
        vip = Label.objects.create(name="VIP", color="#d81b60")
        refund = Label.objects.create(name="退款", color="#1e88e5")
    with schema_context("beta"):
        bob = AgentProfileFactory(user__username="bob")
        theirs = Label.objects.create(name="beta 的标签")
    return {"alice": alice, "carol": carol, "bob": bob, "conversation": conversation, "earlier": earlier,
            "vip": vip, "refund": refund, "theirs": theirs}


# -- the label itself ------------------------------------------------------------------------------------------

def test_the_admin_creates_a_label_and_refuses_a_name_taken_in_any_case_or_a_bad_colour(tenant_a):
    admin = staff_client("alpha")
    created = admin.post("/t/alpha/admin/tickets/label/add/", {"name": "  VIP客户 ", "color": "#D81B60",
                                                               "description": "大客户"})
    assert created.status_code == 302, created.content.decode()[:2000]
    with schema_context("alpha"):
        label = Label.objects.get()
        assert (label.name, label.color, label.description) == ("VIP客户", "#d81b60", "大客户")
    for body, field in [({"name": "vip客户", "color": "#000000"}, "name"), ({"name": "  ", "color": "#000000"},
                                                                         "name"),
                        ({"name": "加急", "color": "red"}, "color")]:
        refused = admin.post("/t/alpha/admin/tickets/label/add/", {**body, "description": ""})
        assert refused.status_code == 200
        assert field in refused.context["adminform"].form.errors
    with schema_context("alpha"):
        assert Label.objects.count() == 1
    listing = admin.get("/t/alpha/admin/tickets/label/")
    assert "VIP客户" in listing.content.decode() and "#d81b60" in listing.content.decode()


# -- on conversations -------------------------------------------------------------------------------------------

def test_a_label_goes_on_the_conversation_and_its_ticket_once_and_comes_off_into_the_timeline(world):
    conversation, alice, vip = world["conversation"], world["alice"], world["vip"]
    with schema_context("alpha"):
        assert label_conversation(conversation_id=conversation.pk, label_id=vip.pk, by=alice) is True
        assert label_conversation(conversation_id=conversation.pk, label_id=vip.pk, by=alice) is False
        ticket = Ticket.objects.get(conversation=conversation)
        assert list(conversation.labels.values_list("name", flat=True)) == ["VIP"]
        assert list(ticket.labels.values_list("name", flat=True)) == ["VIP"]
        api = Integration(label="api-key:crm")
        assert unlabel_conversation(conversation_id=conversation.pk, label_id=vip.pk, by=api) is True
        assert unlabel_conversation(conversation_id=conversation.pk, label_id=vip.pk, by=api) is False
        assert (conversation.labels.count(), ticket.labels.count()) == (0, 0)
        assert label_events(conversation) == [("label_added", "VIP", "alice"), ("label_removed", "VIP", "api-key:crm")]
        # The closed conversation's ticket is not the active one: untouched.
        assert world["earlier"].labels.count() == 0


def test_a_label_change_reaches_the_screens_watching_the_conversation_and_the_queues(
        world, django_capture_on_commit_callbacks):
    conversation, alice = world["conversation"], world["alice"]
    layer = get_channel_layer()
    screen = async_to_sync(layer.new_channel)()
    groups = [conversation_group("alpha", conversation.pk), queue_group("alpha")]
    for group in groups:
        async_to_sync(layer.group_add)(group, screen)
    try:
        with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
            label_conversation(conversation_id=conversation.pk, label_id=world["vip"].pk, by=alice, origin="sock-1")
        events = sorted((async_to_sync(layer.receive)(screen) for _ in groups), key=lambda m: m["event"]["type"])
        assert [(m["event"], m["origin"]) for m in events] == [
            ({"type": "labels", "conversation": conversation.pk}, "sock-1"),
            ({"type": "queue", "conversation": conversation.pk, "change": "labels"}, "sock-1")]
    finally:
        for group in groups:
            async_to_sync(layer.group_discard)(group, screen)


def test_unknown_labels_and_too_many_labels_are_refused_with_nothing_changed(world):
    conversation, alice = world["conversation"], world["alice"]
    with schema_context("alpha"):
        for label_id in [None, "x", 10**9, world["theirs"].pk * 1000]:
            with pytest.raises(ActionRefused) as refused:
                label_conversation(conversation_id=conversation.pk, label_id=label_id, by=alice)
            assert refused.value.code == "no_such_label"
        many = [Label.objects.create(name=f"标签{n}") for n in range(MAX_LABELS_PER_CONVERSATION)]
        for label in many:
            label_conversation(conversation_id=conversation.pk, label_id=label.pk, by=alice)
        with pytest.raises(ActionRefused) as refused:
            label_conversation(conversation_id=conversation.pk, label_id=world["vip"].pk, by=alice)
        assert refused.value.code == "too_many_labels"
        assert conversation.labels.count() == MAX_LABELS_PER_CONVERSATION
        assert len(label_events(conversation)) == MAX_LABELS_PER_CONVERSATION


def test_an_agent_labels_on_the_screen_and_the_queue_and_the_detail_show_the_chips(world):
    conversation, vip, refund = world["conversation"], world["vip"], world["refund"]
    alice = client_for("alpha", "alice")
    assert alice.get("/t/alpha/agent/api/labels/").json()["labels"] == [
        {"id": vip.pk, "name": "VIP", "color": "#d81b60"}, {"id": refund.pk, "name": "退款", "color": "#1e88e5"}]
    for label in (refund, vip):
        detail = post(alice, f"/t/alpha/agent/api/conversations/{conversation.pk}/labels/add/", {"label": label.pk})
        assert detail.status_code == 200, detail.content
    assert [label["name"] for label in detail.json()["labels"]] == ["VIP", "退款"]
    assert [e["kind"] for e in detail.json()["ticket"]["events"]][-2:] == ["label_added", "label_added"]
    mine = alice.get("/t/alpha/agent/api/queue/").json()["mine"]
    assert [(row["id"], [label["name"] for label in row["labels"]]) for row in mine] == [
        (conversation.pk, ["VIP", "退款"])]
    ticket_id = detail.json()["ticket"]["id"]
    admin = staff_client("alpha")  # the ticket's labels in the admin: shown, and a filter of the list
    assert "VIP" in admin.get(f"/t/alpha/admin/tickets/ticket/{ticket_id}/change/").content.decode()
    assert [row.pk for row in admin.get("/t/alpha/admin/tickets/ticket/", {"labels__id__exact": vip.pk})
            .context["cl"].result_list] == [ticket_id]
    removed = post(alice, f"/t/alpha/agent/api/conversations/{conversation.pk}/labels/remove/", {"label": vip.pk})
    assert [label["name"] for label in removed.json()["labels"]] == ["退款"]
    refused = post(alice, f"/t/alpha/agent/api/conversations/{conversation.pk}/labels/add/", {"label": "abc"})
    assert (refused.status_code, refused.json()["detail"]) == (409, "没有这个标签。")


def test_another_tenants_agent_sees_no_label_and_cannot_label_or_read_the_profile(world):
    conversation = world["conversation"]
    bob = client_for("beta", "bob")
    assert bob.get("/t/beta/agent/api/labels/").json()["labels"] == [
        {"id": world["theirs"].pk, "name": "beta 的标签", "color": "#607d8b"}]
    # alpha's conversation id in beta: not found (or one of beta's own, never alpha's row).
    answer = post(bob, f"/t/beta/agent/api/conversations/{conversation.pk}/labels/add/", {"label": world["theirs"].pk})
    assert answer.status_code == 404
    assert bob.get(f"/t/beta/agent/api/conversations/{conversation.pk}/profile/").status_code == 404
    with schema_context("alpha"):
        assert conversation.labels.count() == 0


# -- the profile panel ------------------------------------------------------------------------------------------

def test_the_panel_shows_wecoms_profile_and_the_earlier_conversations_and_asks_for_a_due_refresh(
        world, django_capture_on_commit_callbacks):
    conversation, earlier = world["conversation"], world["earlier"]
    with schema_context("alpha"):
        Contact.objects.filter(pk=conversation.contact_id).update(
            display_name="李女士", avatar_url=AVATAR, attributes={"会员等级": "金卡"}, notes="喜欢电话联系")
        label_conversation(conversation_id=earlier.pk, label_id=world["refund"].pk, by=world["alice"])
    flush_test_broker()
    alice = client_for("alpha", "alice")
    with django_capture_on_commit_callbacks(execute=True):
        panel = alice.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/profile/").json()
    assert {key: panel[key] for key in ("name", "avatar_url", "external_id", "notes", "attributes", "error")} == {
        "name": "李女士", "avatar_url": AVATAR, "external_id": "zhangsan", "notes": "喜欢电话联系",
        "attributes": {"会员等级": "金卡"}, "error": ""}
    assert panel["past"] == [{
        "id": earlier.pk, "started_at": earlier.started_at.isoformat(), "closed_at": panel["past"][0]["closed_at"],
        "state": "closed", "labels": [{"id": world["refund"].pk, "name": "退款", "color": "#1e88e5"}],
        "first_line": "上次的订单还没到", "url": f"/t/alpha/agent/c/{earlier.pk}/"}]
    # Never fetched: a job is queued for it (no WeCom call on this request).
    assert [job.args for job in queued_jobs("media", actor_name="conversations.refresh_profiles")] == [
        ([conversation.contact_id],)]
    flush_test_broker()

    # Carol may see neither conversation (alice's own, and a closed one she never held): no link, no access.
    with schema_context("alpha"):
        Conversation.objects.filter(pk=conversation.pk).update(state=Conversation.State.WAITING_HUMAN, agent=None)
        Contact.objects.filter(pk=conversation.contact_id).update(profile_checked_at=timezone.now())
    carol = client_for("alpha", "carol")
    with django_capture_on_commit_callbacks(execute=True):
        panel = carol.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/profile/").json()
    assert [(row["id"], row["url"]) for row in panel["past"]] == [(earlier.pk, None)]
    assert queued_jobs("media", actor_name="conversations.refresh_profiles") == []  # fresh: nothing asked
    assert carol.get(f"/t/alpha/agent/c/{earlier.pk}/").status_code == 404


def test_notes_and_attributes_are_kept_with_the_apis_rules_and_bad_input_changes_nothing(world):
    conversation = world["conversation"]
    alice = client_for("alpha", "alice")
    url = f"/t/alpha/agent/api/conversations/{conversation.pk}/profile/"
    saved = post(alice, url, {"notes": "周末不打扰", "attributes": {"城市": "杭州", "订单数": 3}})
    assert saved.status_code == 200, saved.content
    assert (saved.json()["notes"], saved.json()["attributes"]) == ("周末不打扰", {"城市": "杭州", "订单数": 3})
    removed = post(alice, url, {"attributes": {"订单数": None}})
    assert removed.json()["attributes"] == {"城市": "杭州"}
    for body in [{"attributes": {"x" * 65: 1}}, {"attributes": {"城市": {"nested": 1}}}, {"attributes": [1]},
                 {"notes": "长" * 10_001}, {"notes": 5}, {}]:
        refused = post(alice, url, body)
        assert refused.status_code == 400, (body, refused.content)
        assert refused.json()["detail"]
    with schema_context("alpha"):
        contact = Contact.objects.get(pk=conversation.contact_id)
        assert (contact.notes, contact.attributes) == ("周末不打扰", {"城市": "杭州"})
    assert alice.get("/t/alpha/agent/api/conversations/999999/profile/").status_code == 404


# -- REST API ---------------------------------------------------------------------------------------------------

def test_the_api_keeps_labels_and_puts_them_on_conversations_and_filters_by_them(world, api_keys):
    api, conversation, vip = api_client(api_keys["alpha"]), world["conversation"], world["vip"]
    created = api.post("/t/alpha/api/labels/", {"name": " 投诉 ", "color": "#E53935"}, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert (created.json()["name"], created.json()["color"], created.json()["conversations_count"]) == (
        "投诉", "#e53935", 0)
    for body in [{"name": "vip", "color": "#000000"}, {"name": "x", "color": "#12345"},
                 {"name": "", "color": "#000000"}]:
        refused = api.post("/t/alpha/api/labels/", body, content_type="application/json")
        assert refused.status_code == 400, refused.json()
    renamed = api.patch(f"/t/alpha/api/labels/{vip.pk}/", {"description": "大客户"}, content_type="application/json")
    assert renamed.json()["description"] == "大客户"

    added = api.post(f"/t/alpha/api/conversations/{conversation.pk}/labels/", {"label": vip.pk},
                     content_type="application/json")
    assert added.json() == {"conversation": conversation.pk, "changed": True,
                            "labels": [{"id": vip.pk, "name": "VIP", "color": "#d81b60"}]}
    again = api.post(f"/t/alpha/api/conversations/{conversation.pk}/labels/", {"label": vip.pk},
                     content_type="application/json")
    assert again.json()["changed"] is False
    unknown = api.post(f"/t/alpha/api/conversations/{conversation.pk}/labels/", {"label": 10**9},
                       content_type="application/json")
    assert (unknown.status_code, list(unknown.json()["errors"])) == (400, ["label"])
    assert api.get(f"/t/alpha/api/conversations/{conversation.pk}/labels/").json()["labels"][0]["name"] == "VIP"

    listing = api.get("/t/alpha/api/conversations/", {"label": vip.pk}).json()["results"]
    assert [row["id"] for row in listing] == [conversation.pk]
    assert api.get("/t/alpha/api/conversations/", {"label": world["refund"].pk}).json()["results"] == []
    assert api.get("/t/alpha/api/conversations/", {"label": "abc"}).status_code == 400
    ticket = api.get("/t/alpha/api/tickets/", {"status": "assigned"}).json()["results"][0]
    assert ticket["labels"] == [{"id": vip.pk, "name": "VIP", "color": "#d81b60"}]
    assert api.get(f"/t/alpha/api/labels/{vip.pk}/").json()["conversations_count"] == 1

    removed = api.delete(f"/t/alpha/api/conversations/{conversation.pk}/labels/{vip.pk}/")
    assert (removed.status_code, removed.json()["labels"], removed.json()["changed"]) == (200, [], True)
    assert api.delete(f"/t/alpha/api/conversations/{conversation.pk}/labels/{10**9}/").status_code == 404
    with schema_context("alpha"):
        assert label_events(conversation) == [("label_added", "VIP", "api-key:integration"),
                                              ("label_removed", "VIP", "api-key:integration")]
    assert api.delete(f"/t/alpha/api/labels/{vip.pk}/").status_code == 204


def test_the_api_needs_the_scopes_and_another_tenants_key_sees_nothing(world, api_keys):
    conversation, vip = world["conversation"], world["vip"]
    with schema_context("alpha"):
        _, reader = create_api_key(name="reader", scopes=["tickets:read", "conversations:read"])
    read_only = api_client(reader)
    assert read_only.get("/t/alpha/api/labels/").status_code == 200
    assert read_only.post("/t/alpha/api/labels/", {"name": "新"}, content_type="application/json").status_code == 403
    assert read_only.post(f"/t/alpha/api/conversations/{conversation.pk}/labels/", {"label": vip.pk},
                          content_type="application/json").status_code == 403

    beta = api_client(api_keys["beta"])
    assert [row["name"] for row in beta.get("/t/beta/api/labels/").json()["results"]] == ["beta 的标签"]
    assert beta.get(f"/t/beta/api/labels/{vip.pk}/").status_code == 404
    # alpha's conversation id in beta names nothing, or one of beta's own: alpha's row is never reached.
    beta.post(f"/t/beta/api/conversations/{conversation.pk}/labels/", {"label": world["theirs"].pk},
              content_type="application/json")
    assert beta.get("/t/beta/api/conversations/", {"label": vip.pk}).json()["results"] == []
    with schema_context("alpha"):
        assert conversation.labels.count() == 0
        assert Label.objects.filter(name="新").count() == 0
