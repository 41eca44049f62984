"""API keys: scopes per family and method, expiry, the last-used time written at most once a minute, the
migration that gives older keys every scope, and the admin (create with scopes, revoke)."""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import ApiKey, AuditLogEntry, FallbackScript
from conversations.scopes import ALL_SCOPES, grants, normalized_scopes
from conversations.services.api_keys import create_api_key
from testing.accounts import api_client
from testing.factories import FallbackScriptFactory, OutboundMessageFactory

pytestmark = pytest.mark.django_db

SCRIPTS = "/t/alpha/api/fallback-scripts/"


def key_of(schema: str, *scopes: str, **options) -> tuple[ApiKey, str]:
    with schema_context(schema):
        return create_api_key(name="scoped", scopes=scopes, **options)


def test_write_implies_read_and_nothing_else():
    assert grants(["tickets:write"], "tickets:read") and grants(["tickets:write"], "tickets:write")
    assert not grants(["tickets:read"], "tickets:write")
    assert not grants(["tickets:write"], "contacts:read")
    assert not grants([], "knowledge:read")


def test_scopes_are_validated_against_the_known_families():
    assert normalized_scopes(["settings:write", "knowledge:read", "settings:write"]) == [
        "knowledge:read", "settings:write"]
    with pytest.raises(ValidationError, match="billing:read"):
        normalized_scopes(["billing:read", "knowledge:read"])
    with pytest.raises(ValidationError):
        normalized_scopes(["knowledge"])  # a family without read/write


def test_a_read_scope_allows_safe_methods_only(tenant_a):
    _, key = key_of("alpha", "settings:read")
    with schema_context("alpha"):
        script = FallbackScriptFactory(name="物流")
    client = api_client(key)

    assert client.get(SCRIPTS).status_code == 200
    assert client.get(f"{SCRIPTS}{script.pk}/").status_code == 200
    assert client.head(SCRIPTS).status_code == 200
    for response in (client.post(SCRIPTS, {"name": "x", "text": "y"}, content_type="application/json"),
                     client.patch(f"{SCRIPTS}{script.pk}/", {"text": "改"}, content_type="application/json"),
                     client.delete(f"{SCRIPTS}{script.pk}/")):
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied" and "settings:write" in response.json()["detail"]
    with schema_context("alpha"):
        assert list(FallbackScript.objects.values_list("name", "text")) == [("物流", script.text)]
        assert not AuditLogEntry.objects.exists()  # refused writes are not in the audit log


def test_a_write_scope_allows_every_method_of_its_family_only(tenant_a):
    _, key = key_of("alpha", "settings:write")
    client = api_client(key)
    created = client.post(SCRIPTS, {"name": "物流", "text": "请稍候"}, content_type="application/json")
    assert created.status_code == 201
    assert client.get(SCRIPTS).status_code == 200
    assert client.delete(f"{SCRIPTS}{created.json()['id']}/").status_code == 204

    other_family = client.get("/t/alpha/api/knowledge/", HTTP_ACCEPT_LANGUAGE="en")
    assert other_family.status_code == 403
    assert other_family.json() == {"detail": "This API key lacks the scope knowledge:read.",
                                   "code": "permission_denied"}


@pytest.mark.parametrize(("path", "family"), [
    ("/t/alpha/api/dead-letters/", "deliveries"),
    ("/t/alpha/api/desk-settings/", "settings"),
    ("/t/alpha/api/knowledge/", "knowledge"),
    ("/t/alpha/api/audit-log/", "settings"),
])
def test_each_existing_resource_needs_its_family(tenant_a, path, family):
    _, without = key_of("alpha", *[scope for scope in ALL_SCOPES if not scope.startswith(f"{family}:")])
    _, with_read = key_of("alpha", f"{family}:read")
    assert api_client(without).get(path).status_code == 403
    assert api_client(with_read).get(path).status_code == 200


def test_the_message_trace_needs_conversations_read(tenant_a):
    _, without = key_of("alpha", "settings:write")
    _, with_read = key_of("alpha", "conversations:read")
    assert api_client(without).get("/t/alpha/api/messages/1/trace/").status_code == 403
    assert api_client(with_read).get("/t/alpha/api/messages/1/trace/").status_code == 404  # allowed: no message


def test_resend_needs_deliveries_write(tenant_a):
    with schema_context("alpha"):
        dead = OutboundMessageFactory(status="dead")
    _, reader = key_of("alpha", "deliveries:read")
    refused = api_client(reader).post("/t/alpha/api/dead-letters/resend/", {"ids": [dead.pk]},
                                      content_type="application/json")
    assert refused.status_code == 403 and "deliveries:write" in refused.json()["detail"]
    with schema_context("alpha"):
        dead.refresh_from_db()
    assert dead.status == "dead"


def test_a_key_without_scopes_reaches_only_the_root_and_the_schema(tenant_a):
    _, key = key_of("alpha")
    client = api_client(key)
    assert client.get("/t/alpha/api/").status_code == 200
    assert client.get("/t/alpha/api/schema/").status_code == 200
    assert client.get("/t/alpha/api/dead-letters/").status_code == 403


def test_staff_sessions_are_not_limited_by_scopes(admin_client):
    assert admin_client.get("/t/alpha/api/knowledge/").status_code == 200
    created = admin_client.post(SCRIPTS, {"name": "物流", "text": "请稍候"}, content_type="application/json")
    assert created.status_code == 201


def test_a_key_keeps_its_scopes_only_in_its_tenant(tenant_a, tenant_b):
    _, alpha_key = key_of("alpha", *ALL_SCOPES)
    assert api_client(alpha_key).get("/t/beta/api/fallback-scripts/").status_code == 401


# -- expiry ---------------------------------------------------------------------------------------------


def test_an_expired_key_is_refused_and_says_so(tenant_a):
    row, key = key_of("alpha", *ALL_SCOPES, expires_at=timezone.now() + timedelta(hours=1))
    assert api_client(key).get(SCRIPTS).status_code == 200

    with schema_context("alpha"):
        ApiKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client(key).get(SCRIPTS, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "authentication_failed" and body["detail"].startswith("This API key expired at ")
    assert response["WWW-Authenticate"] == "Api-Key"
    zh = api_client(key).get(SCRIPTS).json()["detail"]
    assert zh.startswith("此 API 密钥已于 ")


def test_a_key_without_expiry_never_expires(tenant_a):
    row, key = key_of("alpha", *ALL_SCOPES)
    assert row.expires_at is None and api_client(key).get(SCRIPTS).status_code == 200


# -- last used --------------------------------------------------------------------------------------------


def _updates_of_api_keys(queries) -> int:
    return sum(1 for query in queries if query["sql"].startswith('UPDATE "conversations_apikey"'))


def test_last_used_is_written_at_most_once_a_minute(tenant_a):
    row, key = key_of("alpha", *ALL_SCOPES)
    assert row.last_used_at is None
    client = api_client(key)

    with CaptureQueriesContext(connection) as first:
        assert client.get(SCRIPTS).status_code == 200
    with schema_context("alpha"):
        used_at = ApiKey.objects.get(pk=row.pk).last_used_at
    assert used_at is not None and _updates_of_api_keys(first.captured_queries) == 1

    with CaptureQueriesContext(connection) as later:
        for _ in range(3):
            assert client.get(SCRIPTS).status_code == 200
    assert _updates_of_api_keys(later.captured_queries) == 0  # no write per request
    with schema_context("alpha"):
        assert ApiKey.objects.get(pk=row.pk).last_used_at == used_at

    # A minute later the next request moves it.
    with schema_context("alpha"):
        ApiKey.objects.filter(pk=row.pk).update(last_used_at=used_at - timedelta(seconds=61))
    assert client.get(SCRIPTS).status_code == 200
    with schema_context("alpha"):
        assert ApiKey.objects.get(pk=row.pk).last_used_at > used_at


# -- the migration --------------------------------------------------------------------------------------


def test_keys_made_before_scopes_get_every_scope(tenant_a, tenant_b):
    migration = importlib.import_module("conversations.migrations.0017_api_keys_audit")
    with schema_context("alpha"):
        old, key = create_api_key(name="before scopes", scopes=[])
        migration.existing_keys_get_every_scope(django_apps, None)
        assert ApiKey.objects.get(pk=old.pk).scopes == list(ALL_SCOPES)
    assert migration.ALL_SCOPES_0017 == list(ALL_SCOPES)  # this session's families, all of them
    assert api_client(key).get("/t/alpha/api/knowledge/").status_code == 200


# -- the admin --------------------------------------------------------------------------------------------

KEYS_ADMIN = "/t/alpha/admin/conversations/apikey/"


def test_the_admin_creates_a_key_with_chosen_scopes_and_shows_it_once(admin_client):
    response = admin_client.post(f"{KEYS_ADMIN}add/", {
        "name": "CRM", "scopes": ["contacts:read", "tickets:write"], "expires_at_0": "", "expires_at_1": "",
        "throttle_per_minute": "120"}, follow=True)
    assert response.status_code == 200
    with schema_context("alpha"):
        row = ApiKey.objects.get(name="CRM")
        entry = AuditLogEntry.objects.get(action="api_key.create")
    assert (row.scopes, row.throttle_per_minute, row.expires_at, row.is_active) == (
        ["contacts:read", "tickets:write"], 120, None, True)
    shown = [str(message) for message in response.context["messages"]]
    (key,) = [match for text in shown for match in re.findall(r"wd_[0-9a-f]{8}_[\w-]+", text)]
    assert key.startswith(f"wd_{row.prefix}_")
    assert api_client(key).get("/t/alpha/api/fallback-scripts/").status_code == 403
    assert (entry.actor, entry.target) == ("user:kb-admin@alpha.test", f"apikey:{row.pk}")
    assert entry.detail["scopes"] == ["contacts:read", "tickets:write"] and key not in str(entry.detail)
    assert row.key_hash not in str(entry.detail)

    listing = admin_client.get(KEYS_ADMIN)
    assert "contacts:read, tickets:write" in listing.text and row.prefix in listing.text


def test_the_admin_form_labels_the_scopes_in_chinese_and_refuses_none(admin_client):
    form = admin_client.get(f"{KEYS_ADMIN}add/")
    assert "工单与坐席：写入" in form.text.replace(": ", "：") and 'type="checkbox"' in form.text
    refused = admin_client.post(f"{KEYS_ADMIN}add/", {"name": "none", "scopes": [], "throttle_per_minute": "60",
                                                      "expires_at_0": "", "expires_at_1": ""})
    assert refused.status_code == 200 and "scopes" in refused.context["adminform"].form.errors
    with schema_context("alpha"):
        assert not ApiKey.objects.filter(name="none").exists()


def test_the_admin_changes_scopes_and_revokes_keys_and_both_are_audited(admin_client):
    row, key = key_of("alpha", "knowledge:read")
    changed = admin_client.post(f"{KEYS_ADMIN}{row.pk}/change/", {
        "name": row.name, "scopes": ["knowledge:write"], "throttle_per_minute": "600", "is_active": "on",
        "expires_at_0": "", "expires_at_1": ""})
    assert changed.status_code == 302
    created = api_client(key).post("/t/alpha/api/knowledge/", {"question": "几点上班", "answer": "九点"},
                                   content_type="application/json")
    assert created.status_code == 201

    admin_client.post(KEYS_ADMIN, {"action": "revoke", "_selected_action": [row.pk]})
    assert api_client(key).get("/t/alpha/api/knowledge/").status_code == 401
    with schema_context("alpha"):
        assert ApiKey.objects.get(pk=row.pk).is_active is False
        actions = list(AuditLogEntry.objects.filter(target=f"apikey:{row.pk}").order_by("id")
                       .values_list("action", "actor"))
    assert actions == [("api_key.update", "user:kb-admin@alpha.test"), ("api_key.revoke", "user:kb-admin@alpha.test")]


def test_keys_cannot_be_deleted_in_the_admin(admin_client):
    row, _ = key_of("alpha", "knowledge:read")
    assert admin_client.get(f"{KEYS_ADMIN}{row.pk}/delete/").status_code == 403


def test_the_admin_sets_an_expiry(admin_client):
    response = admin_client.post(f"{KEYS_ADMIN}add/", {
        "name": "temporary", "scopes": ["knowledge:read"], "expires_at_0": "2030-01-02", "expires_at_1": "08:00:00",
        "throttle_per_minute": "600"}, follow=True)
    assert response.status_code == 200
    with schema_context("alpha"):
        row = ApiKey.objects.get(name="temporary")
    assert timezone.localtime(row.expires_at).isoformat() == "2030-01-02T08:00:00+08:00"
    assert "2030" in admin_client.get(KEYS_ADMIN).text
