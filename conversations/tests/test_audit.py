"""The audit log: every successful API write recorded centrally with the key's name (or the staff user), the
admin's sensitive actions (re-send of dead letters, breaker reset), bounded details without secrets, the
read-only API and admin pages, and a second tenant that sees none of the first's entries."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import AuditLogEntry, FallbackScript, InboundMessage, OutboundMessage
from conversations.services.api_keys import create_api_key
from conversations.services.audit import MASK, bounded_detail, record
from testing.accounts import api_client
from testing.factories import (
    AIProviderFactory,
    FallbackScriptFactory,
    InboundMessageFactory,
    OutboundMessageFactory,
    WeComAppFactory,
)

pytestmark = pytest.mark.django_db

SCRIPTS = "/t/alpha/api/fallback-scripts/"


@pytest.fixture
def crm_key(tenant_a) -> str:
    with schema_context("alpha"):
        return create_api_key(name="CRM 同步")[1]


def entries(schema: str = "alpha") -> list[tuple[str, str, str]]:
    with schema_context(schema):
        return list(AuditLogEntry.objects.order_by("id").values_list("actor", "action", "target"))


def test_every_successful_api_write_is_recorded_with_the_keys_name(crm_key):
    client = api_client(crm_key)
    created = client.post(SCRIPTS, {"name": "物流", "keywords": ["快递"], "text": "请稍候"},
                          content_type="application/json")
    pk = created.json()["id"]
    client.patch(f"{SCRIPTS}{pk}/", {"text": "马上为您查询"}, content_type="application/json")
    client.put(f"{SCRIPTS}{pk}/", {"name": "物流", "text": "好的"}, content_type="application/json")
    client.delete(f"{SCRIPTS}{pk}/")

    assert entries() == [
        ("api-key:CRM 同步", "POST /api/fallback-scripts/", f"fallbackscript:{pk}"),
        ("api-key:CRM 同步", "PATCH /api/fallback-scripts/{pk}/", f"fallbackscript:{pk}"),
        ("api-key:CRM 同步", "PUT /api/fallback-scripts/{pk}/", f"fallbackscript:{pk}"),
        ("api-key:CRM 同步", "DELETE /api/fallback-scripts/{pk}/", f"fallbackscript:{pk}"),
    ]
    with schema_context("alpha"):
        first = AuditLogEntry.objects.order_by("id").first()
    prefix = crm_key.split("_")[1]
    assert first.detail == {"status": 201, "key_prefix": prefix, "fields": ["keywords", "name", "text"]}
    assert first.request_id == created["X-Request-ID"]
    assert "请稍候" not in str(first.detail)  # field names only, never the values sent


def test_a_body_the_view_never_read_does_not_break_the_record(crm_key):
    with schema_context("alpha"):
        script = FallbackScriptFactory()
    deleted = api_client(crm_key).delete(f"{SCRIPTS}{script.pk}/", "not json", content_type="text/plain")
    assert deleted.status_code == 204
    with schema_context("alpha"):
        entry = AuditLogEntry.objects.get()
    assert (entry.action, entry.target, entry.detail) == (
        "DELETE /api/fallback-scripts/{pk}/", f"fallbackscript:{script.pk}",
        {"status": 204, "key_prefix": crm_key.split("_")[1]})


def test_reads_and_failed_writes_are_not_recorded(crm_key):
    client = api_client(crm_key)
    client.get(SCRIPTS)
    client.post(SCRIPTS, {"text": "no name"}, content_type="application/json")  # 400
    client.delete(f"{SCRIPTS}999999/")  # 404
    client.post("/t/alpha/api/dead-letters/resend/", {"ids": [999999]}, content_type="application/json")  # 409
    api_client("wd_nope_nope").post(SCRIPTS, {"name": "x", "text": "y"}, content_type="application/json")  # 401
    assert entries() == []


def test_writes_of_other_endpoints_are_recorded_without_calling_the_audit(crm_key, sandbox):
    with schema_context("alpha"):
        dead = OutboundMessageFactory(status=OutboundMessage.Status.DEAD)
    client = api_client(crm_key)
    assert client.post("/t/alpha/api/dead-letters/resend/", {"ids": [dead.pk]},
                       content_type="application/json").status_code == 200
    assert client.patch("/t/alpha/api/desk-settings/update/", {"context_turns": 4},
                        content_type="application/json").status_code == 200
    entry = client.post("/t/alpha/api/knowledge/", {"question": "几点上班", "answer": "九点"},
                        content_type="application/json").json()
    assert entries() == [
        ("api-key:CRM 同步", "POST /api/dead-letters/resend/", ""),
        ("api-key:CRM 同步", "PATCH /api/desk-settings/update/", ""),
        ("api-key:CRM 同步", "POST /api/knowledge/", f"knowledgeentry:{entry['id']}"),
    ]


def test_staff_writes_through_the_api_are_recorded_with_the_username(admin_client):
    created = admin_client.post(SCRIPTS, {"name": "物流", "text": "请稍候"}, content_type="application/json")
    assert created.status_code == 201
    assert entries() == [("user:kb-admin@alpha.test", "POST /api/fallback-scripts/",
                          f"fallbackscript:{created.json()['id']}")]


def test_a_second_tenant_sees_none_of_the_first_tenants_log(crm_key, api_keys):
    api_client(crm_key).post(SCRIPTS, {"name": "物流", "text": "请稍候"}, content_type="application/json")
    assert len(entries("alpha")) == 1 and entries("beta") == []

    beta = api_client(api_keys["beta"]).get("/t/beta/api/audit-log/")
    assert beta.status_code == 200 and beta.json()["results"] == []
    with schema_context("alpha"):
        alpha_entry = AuditLogEntry.objects.get()
    assert api_client(api_keys["beta"]).get(f"/t/beta/api/audit-log/{alpha_entry.pk}/").status_code == 404


def test_the_audit_log_api_lists_newest_first_with_filters(crm_key):
    with schema_context("alpha"):
        record(actor="user:ops", action="dead_letters.resend", detail={"ids": [1]})
        record(actor="api-key:ERP", action="POST /api/knowledge/", target="knowledgeentry:7")
    client = api_client(crm_key)
    listing = client.get("/t/alpha/api/audit-log/").json()
    assert [item["action"] for item in listing["results"]] == ["POST /api/knowledge/", "dead_letters.resend"]
    assert set(listing["results"][0]) == {"id", "at", "actor", "action", "target", "detail", "request_id",
                                          "trace_id"}
    by_actor = client.get("/t/alpha/api/audit-log/", {"actor": "user:ops"}).json()["results"]
    assert [item["action"] for item in by_actor] == ["dead_letters.resend"]
    by_action = client.get("/t/alpha/api/audit-log/", {"action": "POST /api/knowledge/"}).json()["results"]
    assert [item["target"] for item in by_action] == ["knowledgeentry:7"]
    assert client.get("/t/alpha/api/audit-log/", {"after": "2999-01-01T00:00:00+08:00"}).json()["results"] == []
    assert client.get("/t/alpha/api/audit-log/", {"after": "yesterday"}).status_code == 400
    # Reading the log writes nothing to it.
    assert len(entries()) == 2


def test_the_audit_log_api_is_read_only(crm_key):
    client = api_client(crm_key)
    assert client.post("/t/alpha/api/audit-log/", {}, content_type="application/json").status_code == 405
    with schema_context("alpha"):
        entry = record(actor="user:ops", action="x")
    assert client.delete(f"/t/alpha/api/audit-log/{entry.pk}/").status_code == 405
    assert entries() == [("user:ops", "x", "")]


def test_details_are_bounded_and_secrets_masked():
    detail = bounded_detail({"corp_secret": "s3cr3t", "api_key": "wd_x", "token": "t", "keywords": ["快递"],
                             "text": "长" * 500, "ids": list(range(80)), "deep": {"a": {"b": {"c": {"d": 1}}}}})
    assert detail["corp_secret"] == detail["api_key"] == detail["token"] == MASK
    assert detail["keywords"] == ["快递"]
    assert len(detail["text"]) == 201 and detail["text"].endswith("…")
    assert detail["ids"][:50] == list(range(50)) and detail["ids"][50] == "… 30 more"
    assert detail["deep"] == {"a": {"b": {"c": "…"}}}


# -- the admin's sensitive actions ---------------------------------------------------------------------------


def test_resending_dead_letters_in_the_admin_is_recorded(admin_client, sandbox):
    with schema_context("alpha"):
        dead = OutboundMessageFactory(status=OutboundMessage.Status.DEAD)
        delivered = OutboundMessageFactory(status=OutboundMessage.Status.SENT)
    admin_client.post("/t/alpha/admin/conversations/outboundmessage/",
                      {"action": "resend", "_selected_action": [dead.pk, delivered.pk]})
    with schema_context("alpha"):
        entry = AuditLogEntry.objects.get()
    assert (entry.actor, entry.action) == ("user:kb-admin@alpha.test", "dead_letters.resend")
    assert entry.detail == {"ids": sorted([dead.pk, delivered.pk]), "resent": 1,
                            "refused": [f"#{delivered.pk} is sent, not dead"]}
    assert entries("beta") == []


def test_resetting_the_breaker_in_the_admin_is_recorded(admin_client, clean_breakers):
    with schema_context("alpha"):
        provider = AIProviderFactory()
    response = admin_client.post("/t/alpha/admin/conversations/aiprovider/",
                                 {"action": "reset_circuit_breaker", "_selected_action": [provider.pk]})
    assert response.status_code == 302
    assert entries() == [("user:kb-admin@alpha.test", "ai_provider.reset_breaker", "")]


def test_the_admin_shows_the_log_read_only_with_filters(admin_client):
    with schema_context("alpha"):
        entry = record(actor="api-key:ERP", action="POST /api/knowledge/", target="knowledgeentry:7",
                       detail={"status": 201})
        FallbackScriptFactory(name="unrelated")
    url = "/t/alpha/admin/conversations/auditlogentry/"
    listing = admin_client.get(url, {"actor": "api-key:ERP"})
    assert listing.status_code == 200 and "knowledgeentry:7" in listing.text
    assert admin_client.get(url, {"actor": "user:nobody"}).context["cl"].result_count == 0
    assert admin_client.get(f"{url}add/").status_code == 403
    assert admin_client.post(f"{url}{entry.pk}/change/", {"actor": "forged"}).status_code == 403
    assert admin_client.post(f"{url}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    with schema_context("alpha"):
        assert AuditLogEntry.objects.get().actor == "api-key:ERP"
        assert FallbackScript.objects.count() == 1


def test_disabling_enabling_and_reactivating_apps_in_the_admin_is_recorded(admin_client):
    with schema_context("alpha"):
        app = WeComAppFactory(agent_id=4711)
    url = "/t/alpha/admin/conversations/wecomapp/"
    for action in ("disable", "enable", "mark_active"):
        assert admin_client.post(url, {"action": action, "_selected_action": [app.pk]}).status_code == 302
    assert [action for _, action, _ in entries()] == ["wecom_apps.disable", "wecom_apps.enable",
                                                      "wecom_apps.mark_active"]
    with schema_context("alpha"):
        disabled = AuditLogEntry.objects.get(action="wecom_apps.disable")
        app.refresh_from_db()
    assert disabled.detail == {"ids": [app.pk], "changed": 1} and app.is_enabled
    assert entries("beta") == []


def test_retrying_failed_messages_in_the_admin_is_recorded(admin_client):
    with schema_context("alpha"):
        failed = InboundMessageFactory(status=InboundMessage.Status.FAILED)
    admin_client.post("/t/alpha/admin/conversations/inboundmessage/",
                      {"action": "retry_failed", "_selected_action": [failed.pk]})
    with schema_context("alpha"):
        entry = AuditLogEntry.objects.get()
        failed.refresh_from_db()
    assert (entry.actor, entry.action, entry.detail) == (
        "user:kb-admin@alpha.test", "inbound.retry_failed", {"ids": [failed.pk], "retried": 1})
    assert failed.status == InboundMessage.Status.PENDING
