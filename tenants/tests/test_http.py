"""HTTP tenant resolution and isolation: by hostname and by /t/<slug>/, in-process and over real HTTP."""

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from tenants.models import Tenant
from tenants.tests.probe.models import Note
from testing.accounts import STAFF_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(tenant_a, tenant_b):
    with schema_context("alpha"):
        Note.objects.create(text="alpha-secret")
        get_user_model().objects.filter(username=tenant_a.staff_email).update(is_superuser=True)
    with schema_context("beta"):
        Note.objects.create(text="beta-secret")
        get_user_model().objects.filter(username=tenant_b.staff_email).update(is_superuser=True)


def test_orm_rows_stay_in_their_schema(notes):
    with schema_context("alpha"):
        assert list(Note.objects.values_list("text", flat=True)) == ["alpha-secret"]
    with schema_context("beta"):
        assert list(Note.objects.values_list("text", flat=True)) == ["beta-secret"]


@pytest.mark.parametrize(
    ("host", "prefix"),
    [("alpha.test", ""), ("localhost", "/t/alpha"), ("beta.test", "/t/alpha")],
)
def test_staff_sees_only_own_tenant_by_host_and_by_prefix(notes, tenant_a, host, prefix):
    client = Client(HTTP_HOST=host)
    login_page = client.get(f"{prefix}/admin/login/")
    assert f'name="next" value="{prefix}/admin/"' in login_page.text
    response = client.post(f"{prefix}/admin/login/",
                           {"username": tenant_a.staff_email, "password": STAFF_PASSWORD,
                            "next": f"{prefix}/admin/"})
    assert response.status_code == 302
    assert response["Location"] == f"{prefix}/admin/"

    page = client.get(f"{prefix}/admin/probe/note/")
    assert page.status_code == 200
    assert "alpha-secret" in page.text and "beta-secret" not in page.text
    # Links are built under the same prefix, so navigation stays in the tenant.
    assert f'href="{prefix}/admin/probe/note/' in page.text


def test_credentials_of_one_tenant_do_not_work_in_another(notes, tenant_a):
    client = Client(HTTP_HOST="beta.test")
    response = client.post("/admin/login/", {"username": tenant_a.staff_email, "password": STAFF_PASSWORD})
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/probe/note/").status_code == 302  # still anonymous


def test_session_cookie_of_one_tenant_is_anonymous_in_another(notes, tenant_a):
    client = Client(HTTP_HOST="alpha.test")
    client.post("/admin/login/", {"username": tenant_a.staff_email, "password": STAFF_PASSWORD})
    assert client.get("/admin/probe/note/").status_code == 200
    assert client.get("/t/beta/admin/probe/note/").status_code == 302


@pytest.mark.parametrize(
    ("host", "path"),
    [("unknown.test", "/admin/"), ("localhost", "/t/nosuch/admin/"), ("localhost", "/t/public/admin/"),
     ("localhost", "/t/../admin/")],
)
def test_unknown_tenant_is_404(tenants_world, host, path):
    response = Client(HTTP_HOST=host).get(path)
    assert response.status_code == 404


def test_a_path_with_an_encoded_newline_stays_in_its_tenant(tenants_world):
    """The tenant's own router answers (the API's JSON 404), not "Unknown tenant." as plain text."""
    response = Client().get("/t/alpha/api/knowledge/x%0Ay/")
    assert response.status_code in (401, 404) and response["Content-Type"] == "application/json"


def test_suspended_tenant_is_refused(tenants_world):
    Tenant.objects.filter(schema_name="beta").update(is_active=False)
    assert Client(HTTP_HOST="beta.test").get("/admin/login/").status_code == 403
    assert Client().get("/t/beta/admin/login/").status_code == 403


def test_prefix_without_trailing_slash_redirects(tenants_world):
    response = Client().get("/t/alpha")
    assert response.status_code == 301 and response["Location"] == "/t/alpha/"


def test_public_admin_is_separate_from_tenant_admins(tenants_world):
    page = Client(HTTP_HOST="localhost").get("/admin/login/")
    assert page.status_code == 200 and "WeCom Desk platform" in page.text


@pytest.mark.live
def test_real_http_server_resolves_by_host_and_prefix(live_server_url, tenants_world):
    by_prefix = httpx.get(f"{live_server_url}/t/alpha/admin/login/")
    by_host = httpx.get(f"{live_server_url}/admin/login/", headers={"Host": "alpha.test"})
    unknown = httpx.get(f"{live_server_url}/admin/login/", headers={"Host": "nosuch.test"})
    assert by_prefix.status_code == 200 and 'action="/t/alpha/admin/login/"' in by_prefix.text
    assert by_host.status_code == 200 and "WeCom Desk" in by_host.text
    assert unknown.status_code == 404


def test_cookies_of_a_path_prefixed_tenant_are_scoped_to_its_path(notes, tenant_a):
    client = Client()
    client.get("/t/alpha/admin/login/")
    response = client.post("/t/alpha/admin/login/", {"username": tenant_a.staff_email, "password": STAFF_PASSWORD,
                                                     "next": "/t/alpha/admin/"})
    assert response.cookies["sessionid"]["path"] == "/t/alpha/"
    by_host = Client(HTTP_HOST="alpha.test").post("/admin/login/", {"username": tenant_a.staff_email,
                                                                     "password": STAFF_PASSWORD})
    assert by_host.cookies["sessionid"]["path"] == "/"
