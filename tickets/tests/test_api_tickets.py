"""The tickets and agents API (tickets/api): lists with their filters, a ticket with its timeline, the
actions through the agent screens' services (assign, status, notes, edit), refusals as 409, and a second
tenant that sees and changes nothing."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, WebhookEvent
from conversations.services.webhooks import create_endpoint
from testing.accounts import api_client, staff_client
from testing.factories import AgentProfileFactory, TicketFactory
from tickets import presence
from tickets.integration import update_ticket
from tickets.models import AgentProfile, Ticket, TicketEvent
from tickets.services import Integration

pytestmark = pytest.mark.django_db

Status = Ticket.Status
API_ACTOR = "api-key:integration"  # the api_keys fixture's keys are named "integration"


def error(response, status: int, code: str) -> dict:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def post(api, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


def kinds(ticket: Ticket) -> list[str]:
    return list(TicketEvent.objects.filter(ticket=ticket).values_list("kind", flat=True))


@pytest.fixture
def api(api_keys):
    return api_client(api_keys["alpha"])


@pytest.fixture
def waiting(alpha_app, handed_off) -> Ticket:
    """A ticket the AI opened by handing off (nobody online): open, its conversation waiting."""
    with schema_context("alpha"):
        return Ticket.objects.get(conversation=handed_off(alpha_app, "zhangsan"))


# -- reads ---------------------------------------------------------------------------------------------


def test_a_ticket_reads_with_its_conversation_contact_and_timeline(api, waiting):
    response = api.get(f"/t/alpha/api/tickets/{waiting.pk}/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["status"], body["reason"], body["assignee"]) == (waiting.pk, "open", "customer_asked",
                                                                             None)
    assert body["conversation"]["id"] == waiting.conversation_id
    assert (body["conversation"]["state"], body["conversation"]["channel"]) == ("waiting_human", "app")
    assert body["conversation"]["contact"]["external_id"] == "zhangsan"
    assert [(e["kind"], e["actor"]) for e in body["events"]] == [("opened", None), ("nobody_online", None)]
    assert body["first_response_breached"] is False and body["first_response_due_at"]


def test_tickets_filter_by_status_priority_reason_assignee_tag_conversation_dates_and_sla(api, tenant_b):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        old = TicketFactory(priority=Ticket.Priority.HIGH, tags=["vip", "退货"], reason=Ticket.Reason.NON_TEXT,
                            first_response_due_at=timezone.now() - timezone.timedelta(minutes=5))
        new = TicketFactory(status=Status.ASSIGNED, assignee=alice.user, tags=["退货"],
                            conversation__state=Conversation.State.HUMAN,
                            first_response_due_at=timezone.now() + timezone.timedelta(minutes=5))
        Ticket.objects.filter(pk=old.pk).update(created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z")
    with schema_context("beta"):  # the same tag and status in another tenant: never listed for alpha
        TicketFactory(tags=["vip"], pk=old.pk + 1000)
    url = "/t/alpha/api/tickets/"
    assert ids(api.get(url)) == [new.pk, old.pk]  # newest first
    assert ids(api.get(url, {"status": "assigned"})) == [new.pk]
    assert ids(api.get(url, {"priority": "high"})) == [old.pk]
    assert ids(api.get(url, {"reason": "non_text"})) == [old.pk]
    assert ids(api.get(url, {"assignee": alice.user_id})) == [new.pk]
    assert ids(api.get(url, {"assignee_username": "alice"})) == [new.pk]
    assert ids(api.get(url, {"assigned": "false"})) == [old.pk]
    assert ids(api.get(url, {"tag": "vip"})) == [old.pk]
    assert ids(api.get(url, {"tag": "退货", "ordering": "created_at"})) == [old.pk, new.pk]
    assert ids(api.get(url, {"conversation": new.conversation_id})) == [new.pk]
    assert ids(api.get(url, {"created_before": "2026-02-01T00:00:00+08:00"})) == [old.pk]
    assert ids(api.get(url, {"created_after": "2026-02-01T00:00:00Z"})) == [new.pk]
    assert ids(api.get(url, {"updated_before": "2026-02-01T00:00:00Z"})) == [old.pk]
    assert ids(api.get(url, {"updated_after": "2026-02-01T00:00:00Z"})) == [new.pk]
    assert ids(api.get(url, {"sla_breached": "true"})) == [old.pk]
    assert ids(api.get(url, {"sla_breached": "false"})) == [new.pk]
    for bad in ({"status": "nope"}, {"assignee": "x"}, {"sla_breached": "maybe"}, {"created_after": "yesterday"},
                {"conversation": "1.5"}):
        assert list(error(api.get(url, bad), 400, "invalid")["errors"]) == list(bad)


def test_another_tenants_tickets_and_agents_are_not_found(api_keys, tenant_b):
    with schema_context("beta"):  # ids alpha has no rows with
        theirs = TicketFactory(pk=987_654)
        agent = AgentProfileFactory(user__username="beta-agent", user__id=987_654)
    api = api_client(api_keys["alpha"])
    assert ids(api.get("/t/alpha/api/tickets/")) == []
    assert ids(api.get("/t/alpha/api/agents/")) == []
    error(api.get(f"/t/alpha/api/tickets/{theirs.pk}/"), 404, "not_found")
    error(api.get(f"/t/alpha/api/agents/{agent.user_id}/"), 404, "not_found")
    for action, body in (("assign", {"username": "beta-agent"}), ("status", {"status": "resolved"}),
                         ("notes", {"text": "看看"})):
        error(post(api, f"/t/alpha/api/tickets/{theirs.pk}/{action}/", body), 404, "not_found")
    error(api.patch(f"/t/alpha/api/tickets/{theirs.pk}/", {"priority": "urgent"}, content_type="application/json"),
          404, "not_found")
    with schema_context("beta"):
        theirs.refresh_from_db()
        assert (theirs.status, theirs.priority, kinds(theirs)) == (Status.OPEN, Ticket.Priority.NORMAL, [])
    # An id past any integer column is simply not found.
    error(api.get(f"/t/alpha/api/tickets/{10**30}/"), 404, "not_found")
    error(post(api, f"/t/alpha/api/tickets/{10**30}/notes/", {"text": "x"}), 404, "not_found")


# -- actions ---------------------------------------------------------------------------------------------


def test_assign_by_username_or_id_as_a_supervisor_would_recording_the_key(api, waiting):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice", display_name="Alice")
        bob = AgentProfileFactory(user__username="bob")
    body = post(api, f"/t/alpha/api/tickets/{waiting.pk}/assign/", {"username": "alice"}).json()
    assert (body["status"], body["assignee"]) == ("assigned", {"id": alice.user_id, "username": "alice",
                                                               "name": "Alice"})
    assert body["conversation"]["state"] == "human" and body["conversation"]["agent"] == "alice"
    assert body["events"][-1]["kind"] == "reassigned" and body["events"][-1]["actor"] == API_ACTOR
    # Offline agents may be given a ticket too (as by a supervisor); from one agent to another:
    body = post(api, f"/t/alpha/api/tickets/{waiting.pk}/assign/", {"agent_id": bob.user_id}).json()
    assert body["assignee"]["username"] == "bob" and body["conversation"]["agent"] == "bob"
    with schema_context("alpha"):
        conversation = Conversation.objects.get(pk=waiting.conversation_id)
        assert (conversation.state, conversation.agent_id) == (Conversation.State.HUMAN, bob.user_id)
        assert TicketEvent.objects.filter(ticket=waiting, kind="reassigned").last().detail == {
            "agent": "bob", "previous": alice.user_id, "by": API_ACTOR}


def test_assign_refuses_unknown_agents_bad_bodies_and_a_conversation_back_with_the_ai(api, waiting, tenant_b):
    with schema_context("alpha"):
        AgentProfileFactory(user__username="gone", is_active=False)
        carol = AgentProfileFactory(user__username="carol")
    with schema_context("beta"):
        AgentProfileFactory(user__username="beta-only")
    url = f"/t/alpha/api/tickets/{waiting.pk}/assign/"
    for body, field in (({"username": "gone"}, "username"), ({"username": "beta-only"}, "username"),
                        ({"agent_id": 2**31 - 1}, "agent_id"), ({"agent_id": "x"}, "agent_id"),
                        ({}, "non_field_errors"), ({"username": "carol", "agent_id": carol.user_id},
                                                   "non_field_errors")):
        assert list(error(post(api, url, body), 400, "invalid")["errors"]) == [field], body
    post(api, url, {"username": "carol"})
    post(api, f"/t/alpha/api/conversations/{waiting.conversation_id}/hand-back/")
    error(post(api, url, {"username": "carol"}), 409, "not_with_humans")
    with schema_context("alpha"):
        assert kinds(waiting).count("reassigned") == 1


def test_status_follows_the_screens_transitions(api, waiting):
    with schema_context("alpha"):
        AgentProfileFactory(user__username="alice")
    url = f"/t/alpha/api/tickets/{waiting.pk}/status/"
    error(post(api, url, {"status": "pending_customer"}), 409, "invalid_transition")  # open -> pending: no
    error(post(api, url, {"status": "assigned"}), 409, "no_assignee")  # nobody to hold it: assign instead
    assert list(error(post(api, url, {"status": "closed"}), 400, "invalid")["errors"]) == ["status"]
    assert list(error(post(api, url, {"status": "open"}), 400, "invalid")["errors"]) == ["status"]
    post(api, f"/t/alpha/api/tickets/{waiting.pk}/assign/", {"username": "alice"})
    body = post(api, url, {"status": "pending_customer"}).json()
    assert body["status"] == "pending_customer"
    assert body["events"][-1] == {**body["events"][-1], "kind": "status", "actor": API_ACTOR,
                                  "detail": {"from": "assigned", "to": "pending_customer", "by": API_ACTOR}}
    assert post(api, url, {"status": "resolved"}).json()["resolved_at"]
    with schema_context("alpha"):
        waiting.refresh_from_db()
        assert waiting.status == Status.RESOLVED


def test_notes_are_bounded_and_name_the_key(api, waiting):
    url = f"/t/alpha/api/tickets/{waiting.pk}/notes/"
    response = post(api, url, {"text": "  客户是 VIP，优先处理  "})
    assert response.status_code == 201
    assert {k: response.json()[k] for k in ("kind", "actor", "detail")} == {
        "kind": "note", "actor": API_ACTOR, "detail": {"text": "客户是 VIP，优先处理", "by": API_ACTOR}}
    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 2001}, {}, {"text": ["a"]}):
        assert list(error(post(api, url, bad), 400, "invalid")["errors"]) == ["text"], bad
    with schema_context("alpha"):
        assert kinds(waiting).count("note") == 1


def test_a_ticket_superseded_by_a_later_one_is_refused(api, alpha_app, handed_off):
    with schema_context("alpha"):
        conversation = handed_off(alpha_app, "lisi")
        first = Ticket.objects.get(conversation=conversation)
        Ticket.objects.filter(pk=first.pk).update(status=Status.RESOLVED, created_at="2026-01-01T00:00:00Z")
        later = TicketFactory(conversation=conversation)
    body = error(post(api, f"/t/alpha/api/tickets/{first.pk}/notes/", {"text": "旧的"}), 409, "not_current_ticket")
    assert f"#{later.pk}" in body["detail"]
    with schema_context("alpha"):
        assert "note" not in kinds(first) and "note" not in kinds(later)


def test_priority_subject_and_tags_are_edited_with_the_change_in_the_timeline(api, waiting):
    url = f"/t/alpha/api/tickets/{waiting.pk}/"
    body = api.patch(url, {"priority": "urgent", "tags": ["vip", "退货", "vip"], "subject": "退货问题"},
                     content_type="application/json").json()
    assert (body["priority"], body["tags"], body["subject"]) == ("urgent", ["vip", "退货"], "退货问题")
    assert body["events"][-1]["kind"] == "updated" and body["events"][-1]["detail"] == {
        "priority": ["normal", "urgent"], "tags": [[], ["vip", "退货"]], "subject": ["", "退货问题"], "by": API_ACTOR}
    unchanged = api.patch(url, {"priority": "urgent"}, content_type="application/json").json()
    assert len(unchanged["events"]) == len(body["events"])  # nothing changed, nothing recorded
    for bad in ({"priority": "asap"}, {"tags": ["x" * 41]}, {"tags": "vip"}, {"subject": "x" * 201},
                {"tags": [str(n) for n in range(21)]}):
        assert list(error(api.patch(url, bad, content_type="application/json"), 400, "invalid")["errors"]) == list(bad)
    error(api.put(url, {"priority": "low"}, content_type="application/json"), 405, "method_not_allowed")


def test_signed_in_staff_act_as_themselves(waiting):
    staff = staff_client("alpha", username="ops@alpha.test")
    response = staff.post(f"/t/alpha/api/tickets/{waiting.pk}/notes/", {"text": "运营备注"},
                          content_type="application/json")
    assert response.status_code == 201 and response.json()["actor"] == "user:ops@alpha.test"
    with schema_context("alpha"):
        note = TicketEvent.objects.get(ticket=waiting, kind="note")
        assert note.actor.username == "ops@alpha.test"


# -- agents ---------------------------------------------------------------------------------------------------


@pytest.fixture
def online():
    """online(agent): the agent has an agent screen open (a heartbeat); dropped afterwards."""
    sockets = []

    def go_online(agent: AgentProfile) -> None:
        presence.touch(schema="alpha", user_id=agent.user_id, socket="api-test")
        sockets.append(agent.user_id)

    yield go_online
    for user_id in sockets:
        presence.drop(schema="alpha", user_id=user_id, socket="api-test")


def test_agents_with_presence_load_and_capacity_filtered_by_role_and_online(api, waiting, online, tenant_b):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice", max_concurrent=3)
        boss = AgentProfileFactory(user__username="boss", role=AgentProfile.Role.SUPERVISOR)
        gone = AgentProfileFactory(user__username="gone", is_active=False)
    online(alice)
    post(api, f"/t/alpha/api/tickets/{waiting.pk}/assign/", {"username": "alice"})
    listed = {agent["username"]: agent for agent in api.get("/t/alpha/api/agents/").json()["results"]}
    assert listed["alice"] == {"id": alice.user_id, "username": "alice", "name": "alice", "role": "agent",
                               "active": True, "presence": "online", "load": 1, "capacity": 3, "wecom_userid": ""}
    assert (listed["boss"]["presence"], listed["boss"]["load"]) == ("offline", 0)
    assert ids(api.get("/t/alpha/api/agents/", {"online": "true"})) == [alice.user_id]
    assert ids(api.get("/t/alpha/api/agents/", {"online": "false"})) == [boss.user_id, gone.user_id]
    assert ids(api.get("/t/alpha/api/agents/", {"presence": "offline", "active": "true"})) == [boss.user_id]
    assert ids(api.get("/t/alpha/api/agents/", {"role": "supervisor"})) == [boss.user_id]
    assert api.get(f"/t/alpha/api/agents/{alice.user_id}/").json()["presence"] == "online"
    error(api.get("/t/alpha/api/agents/", {"online": "maybe"}), 400, "invalid")
    error(api.get("/t/alpha/api/agents/", {"role": "boss"}), 400, "invalid")
    error(post(api, "/t/alpha/api/agents/"), 405, "method_not_allowed")


def test_lists_take_the_same_queries_for_one_row_or_many(api, django_assert_max_num_queries):
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        TicketFactory(assignee=alice.user, offered_to=alice.user)
    with django_assert_max_num_queries(30) as one:  # two requests, each with the key's lookup and bookkeeping
        assert len(ids(api.get("/t/alpha/api/tickets/"))) == 1
        assert len(ids(api.get("/t/alpha/api/agents/"))) == 1
    with schema_context("alpha"):
        for _ in range(5):
            TicketFactory(assignee=AgentProfileFactory().user)
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(ids(api.get("/t/alpha/api/tickets/"))) == 6
        assert len(ids(api.get("/t/alpha/api/agents/"))) == 6


def test_an_edits_webhook_carries_before_and_after_as_json_lists(alpha_app, handed_off):
    with schema_context("alpha"):
        create_endpoint(url="https://crm.example.com/hooks", events=["ticket.updated"], description="CRM")
        ticket = Ticket.objects.get(conversation=handed_off(alpha_app))
        update_ticket(ticket_id=ticket.pk, by=Integration(label="api-key:crm"), priority="urgent", tags=["vip"])
        payload = WebhookEvent.objects.get(type="ticket.updated").payload
    assert payload["change"] == "updated"
    assert payload["detail"]["priority"] == ["normal", "urgent"]
    assert payload["detail"]["tags"] == [[], ["vip"]]
