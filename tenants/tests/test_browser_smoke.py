"""A real browser (Debian Chromium through Playwright) against the real web server: the tenant admin."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from testing.accounts import STAFF_PASSWORD
from testing.browser import expect

pytestmark = pytest.mark.live


@pytest.fixture
def alpha_superuser(tenant_a, committed_db):
    """alpha's staff user as a superuser (so the admin index lists apps), restored afterwards."""
    users = get_user_model().objects.filter(username=tenant_a.staff_email)
    with schema_context(tenant_a.slug):
        was_superuser = users.values_list("is_superuser", flat=True).get()
        users.update(is_superuser=True)
    yield tenant_a
    with schema_context(tenant_a.slug):
        users.update(is_superuser=was_superuser)


def test_staff_logs_into_the_tenant_admin(page, live_server_url, alpha_superuser, tmp_path):
    email = alpha_superuser.staff_email
    admin_url = f"{live_server_url}/t/alpha/admin/"
    started = timezone.now()

    page.goto(admin_url)
    expect(page).to_have_url(f"{admin_url}login/?next=/t/alpha/admin/")
    expect(page.locator("#site-name")).to_have_text("WeCom Desk")
    page.get_by_label("Username").fill(email)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()

    expect(page).to_have_url(admin_url)
    expect(page).to_have_title(re.compile(r"WeCom Desk"))
    expect(page.locator("#site-name")).to_have_text("WeCom Desk")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    expect(page.locator("#user-tools")).to_contain_text(email)
    # The tenant's own models, linked under its /t/alpha/ prefix.
    expect(page.get_by_role("link", name="Notes", exact=True)).to_have_attribute("href", "/t/alpha/admin/probe/note/")

    shot = tmp_path / "alpha-admin-index.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")

    # ORM calls in the same test as Playwright calls: the login went to alpha's own schema.
    with schema_context(alpha_superuser.slug):
        assert get_user_model().objects.get(username=email).last_login >= started


def test_unknown_tenant_path_is_404(page, live_server_url, tenants_world):
    response = page.goto(f"{live_server_url}/t/nosuch/admin/")
    assert response.status == 404
    expect(page.locator("body")).to_have_text("Unknown tenant.")
