"""The platform (public schema) admin creates and suspends tenants; tenant admins cannot see tenants."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from tenants.models import Tenant
from testing.accounts import STAFF_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform_client(tenants_world):
    connection.set_schema_to_public()
    get_user_model().objects.create_superuser(username="root@platform", email="root@platform",
                                              password=STAFF_PASSWORD)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="root@platform", password=STAFF_PASSWORD)
    return client


def test_platform_admin_creates_a_tenant_with_its_schema(platform_client):
    response = platform_client.post("/admin/tenants/tenant/add/", {
        "schema_name": "omega", "name": "Omega", "is_active": "on",
        "domains-TOTAL_FORMS": "1", "domains-INITIAL_FORMS": "0", "domains-0-domain": "omega.test",
        "domains-0-is_primary": "on"})
    assert response.status_code == 302, response.text[:500]
    tenant = Tenant.objects.get(schema_name="omega")
    assert tenant.domains.get().domain == "omega.test"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'omega'")
        assert cursor.fetchone()


@pytest.mark.parametrize(("slug", "message"), [("public", "reserved"), ("Bad-Slug", "Invalid slug"),
                                               ("alpha", "already exists")])
def test_platform_admin_refuses_bad_slugs(platform_client, slug, message):
    before = Tenant.objects.count()
    response = platform_client.post("/admin/tenants/tenant/add/", {
        "schema_name": slug, "name": "X", "domains-TOTAL_FORMS": "0", "domains-INITIAL_FORMS": "0"})
    assert response.status_code == 200 and message in response.text
    assert Tenant.objects.count() == before


def test_platform_admin_suspends_tenants(platform_client):
    beta = Tenant.objects.get(schema_name="beta")
    response = platform_client.post("/admin/tenants/tenant/", {"action": "suspend", "_selected_action": [beta.pk]})
    assert response.status_code == 302
    beta.refresh_from_db()
    assert beta.is_active is False


def test_tenant_admin_has_no_tenant_pages(tenants_world, tenant_a):
    client = Client(HTTP_HOST="alpha.test")
    with schema_context("alpha"):
        get_user_model().objects.filter(username=tenant_a.staff_email).update(is_superuser=True)
    client.post("/admin/login/", {"username": tenant_a.staff_email, "password": STAFF_PASSWORD, "next": "/admin/"})
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/tenants/tenant/").status_code == 404
