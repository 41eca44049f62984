"""REST API: per-tenant API keys; dead letters listed and re-sent; fallback scripts and desk settings."""

import pytest
from django_tenants.utils import schema_context

from conversations.models import ApiKey, DeskSettings, FallbackScript, OutboundMessage
from testing.accounts import api_client
from testing.factories import OutboundMessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead_row(tenant_a):
    with schema_context("alpha"):
        return OutboundMessageFactory(contact__external_id="zhangsan", status=OutboundMessage.Status.DEAD,
                                      attempts=8, last_errcode=-1, last_error="system busy")



def test_keys_are_stored_hashed(api_keys):
    with schema_context("alpha"):
        stored = ApiKey.objects.get()
    key = api_keys["alpha"]
    assert key not in (stored.key_hash, stored.prefix) and key.startswith(f"wd_{stored.prefix}_")


def test_dead_letters_list_and_resend(api_keys, dead_row, sandbox):
    listing = api_client(api_keys["alpha"]).get("/t/alpha/api/dead-letters/")
    assert listing.status_code == 200
    (item,) = listing.json()["results"]
    assert (item["id"], item["last_errcode"], item["attempts"], item["recipient"]) == (dead_row.pk, -1, 8, "zhangsan")

    resent = api_client(api_keys["alpha"]).post("/t/alpha/api/dead-letters/resend/", {"ids": [dead_row.pk, 999999]},
                                     content_type="application/json")
    assert resent.status_code == 200
    assert resent.json() == {"resent": 1, "refused": ["#999999 not found"]}
    again = api_client(api_keys["alpha"]).post("/t/alpha/api/dead-letters/resend/", {"ids": [dead_row.pk]},
                                    content_type="application/json")
    assert again.status_code == 409 and again.json()["refused"] == [f"#{dead_row.pk} is pending, not dead"]


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": ["x"]}, {"ids": "1"}])
def test_resend_validates_input(api_keys, body):
    response = api_client(api_keys["alpha"]).post("/t/alpha/api/dead-letters/resend/", body,
                                                  content_type="application/json")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, "invalid") and "ids" in body["errors"]
    assert body["detail"].startswith("ids")


def test_a_key_works_only_in_its_own_tenant(api_keys, dead_row):
    assert api_client(api_keys["beta"]).get("/t/alpha/api/dead-letters/").status_code == 401
    assert api_client(None).get("/t/alpha/api/dead-letters/").status_code == 401
    assert api_client("wd_nope_nope").get("/t/alpha/api/dead-letters/").status_code == 401
    beta = api_client(api_keys["beta"]).get("/t/beta/api/dead-letters/")
    assert beta.status_code == 200 and beta.json()["results"] == []
    # Forged id of alpha's row through beta: refused as not found, alpha's row untouched.
    forged = api_client(api_keys["beta"]).post("/t/beta/api/dead-letters/resend/", {"ids": [dead_row.pk]},
                                    content_type="application/json")
    assert forged.status_code == 409 and forged.json()["refused"] == [f"#{dead_row.pk} not found"]
    with schema_context("alpha"):
        assert OutboundMessage.objects.get(pk=dead_row.pk).status == "dead"


def test_inactive_key_is_refused(api_keys):
    with schema_context("alpha"):
        ApiKey.objects.update(is_active=False)
    assert api_client(api_keys["alpha"]).get("/t/alpha/api/dead-letters/").status_code == 401


def test_fallback_scripts_and_desk_settings(api_keys):
    created = api_client(api_keys["alpha"]).post("/t/alpha/api/fallback-scripts/",
                                      {"name": "物流", "keywords": ["快递", "物流"], "text": "物流问题请稍候"},
                                      content_type="application/json")
    assert created.status_code == 201
    with schema_context("alpha"):
        assert FallbackScript.objects.get().keywords == ["快递", "物流"]
    with schema_context("beta"):
        assert not FallbackScript.objects.exists()
    settings = api_client(api_keys["alpha"]).patch("/t/alpha/api/desk-settings/update/", {"user_rate_limit": 5},
                                        content_type="application/json")
    assert settings.status_code == 200 and settings.json()["user_rate_limit"] == 5
    refused = api_client(api_keys["alpha"]).patch("/t/alpha/api/desk-settings/update/", {"user_rate_limit": 0,
                                                                               "knowledge_min_score": 2},
                                       content_type="application/json")
    assert refused.status_code == 400 and set(refused.json()["errors"]) == {"user_rate_limit", "knowledge_min_score"}
    with schema_context("alpha"):
        assert DeskSettings.current().user_rate_limit == 5


def test_openapi_schema_is_served(api_keys):
    response = api_client(api_keys["alpha"]).get("/t/alpha/api/schema/")
    assert response.status_code == 200 and b"dead-letters" in response.content
