"""A process keeps the tenants and domains it looked up until the registry changes (tenants/registry_cache.py):
no query for a known tenant, and a suspension or a new domain seen by the very next lookup."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tenants.models import Domain, Tenant
from tenants.resolution import resolve_tenant, tenant_for_schema


def test_a_known_tenant_is_resolved_without_a_query(committed_db):
    assert resolve_tenant(host="x", path="/t/alpha/").tenant.schema_name == "alpha"
    assert resolve_tenant(host="beta.test", path="/").tenant.schema_name == "beta"

    with CaptureQueriesContext(connection) as queries:
        by_path = resolve_tenant(host="x", path="/t/alpha/admin/")
        by_host = resolve_tenant(host="Beta.test:8000", path="/")

    assert (by_path.tenant.schema_name, by_host.tenant.schema_name) == ("alpha", "beta")
    assert queries.captured_queries == []


def test_a_suspension_by_bulk_update_is_seen_by_the_next_request(committed_db):
    assert Client().get("/t/beta/admin/login/").status_code == 200  # beta is now in this process's copy

    Tenant.objects.filter(schema_name="beta").update(is_active=False)  # no signal: the queryset moves the version
    try:
        assert tenant_for_schema("beta").is_active is False
        assert Client().get("/t/beta/admin/login/").status_code == 403
        assert Client(HTTP_HOST="beta.test").get("/admin/login/").status_code == 403
    finally:
        Tenant.objects.filter(schema_name="beta").update(is_active=True)
    assert Client().get("/t/beta/admin/login/").status_code == 200


@pytest.mark.django_db
def test_a_change_rolled_back_leaves_no_trace_in_the_copy(tenants_world):
    # The test's transaction is rolled back at its end; inside it the change is seen, and never kept
    Tenant.objects.filter(schema_name="beta").update(is_active=False)
    assert Client().get("/t/beta/admin/login/").status_code == 403


def test_after_a_rolled_back_change_the_committed_row_is_seen(committed_db):
    # (runs after the test above: a copy kept from inside that transaction would still say "suspended")
    assert tenant_for_schema("beta").is_active is True


@pytest.mark.django_db
def test_a_new_domain_and_a_renamed_tenant_are_seen_at_once(tenants_world):
    assert resolve_tenant(host="shop.alpha.test", path="/").tenant is None  # unknown hosts are not kept
    alpha = Tenant.objects.get(schema_name="alpha")
    Domain.objects.create(domain="shop.alpha.test", tenant=alpha)
    assert resolve_tenant(host="shop.alpha.test", path="/").tenant == alpha

    assert tenant_for_schema("alpha").name == alpha.name
    alpha.name = "Alpha Renamed"
    alpha.save()
    assert tenant_for_schema("alpha").name == "Alpha Renamed"


def test_without_redis_every_lookup_asks_the_database(committed_db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    tenant_for_schema("alpha")

    with CaptureQueriesContext(connection) as queries:
        assert tenant_for_schema("alpha").schema_name == "alpha"
    assert len([q for q in queries.captured_queries if "tenants_tenant" in q["sql"]]) == 1
