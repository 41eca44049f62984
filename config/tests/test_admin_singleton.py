"""Settings models with one row per tenant open straight on their change page."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from testing.accounts import STAFF_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["conversations/desksettings", "tickets/ticketsettings"])
def test_singleton_settings_open_their_one_row(tenant_a, path):
    with schema_context("alpha"):
        get_user_model().objects.filter(username=tenant_a.staff_email).update(is_superuser=True)
    client = Client()
    client.post("/t/alpha/admin/login/", {"username": tenant_a.staff_email, "password": STAFF_PASSWORD})
    response = client.get(f"/t/alpha/admin/{path}/")
    assert response.status_code == 302 and response["Location"] == f"/t/alpha/admin/{path}/1/change/"
    assert client.get(response["Location"]).status_code == 200
    assert client.get(f"/t/alpha/admin/{path}/add/").status_code == 403
