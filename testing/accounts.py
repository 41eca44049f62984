"""Who tests sign in as: the test tenants' staff password, session cookies and logged-in clients."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from testing.factories import UserFactory

# The password of each test tenant's staff user `staff@<slug>.test` (testing.fixtures.tenants_world).
STAFF_PASSWORD = "Staff-password-123"


def login_cookie(schema: str, username: str) -> str:
    """A session cookie value for `username`, created in `schema`'s own session table."""
    with schema_context(schema):
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        return client.cookies[settings.SESSION_COOKIE_NAME].value


def api_client(key: str | None) -> Client:
    """A client that sends `key` the way integrators do (`Authorization: Api-Key ...`); None: no key at all."""
    return Client(**({"HTTP_AUTHORIZATION": f"Api-Key {key}"} if key else {}))


def staff_client(schema: str, *, superuser: bool = True, username: str | None = None) -> Client:
    """A client logged in to `schema`'s admin as a staff user (created inside the test when missing)."""
    username = username or f"kb-{'admin' if superuser else 'staff'}@{schema}.test"
    with schema_context(schema):
        user = UserFactory(username=username, email=username, is_superuser=superuser)
        client = Client()
        client.force_login(user)
    return client
