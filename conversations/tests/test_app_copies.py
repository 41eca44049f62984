"""The app a callback names is kept per process until one of the tenant's apps changes (conversations/services/apps.py):
no query for a known app, a disabled or changed app seen by the very next callback, and tenants kept apart."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from conversations.services.apps import enabled_app_for_callback
from testing.factories import WeComAppFactory


@pytest.fixture
def alpha_app(committed_db):
    with schema_context("alpha"):
        app = WeComAppFactory(token="tokenBefore1")
    yield app
    with schema_context("alpha"):
        WeComApp.objects.filter(pk=app.pk).delete()


def test_a_known_app_is_found_without_a_query_and_only_in_its_tenant(alpha_app):
    with schema_context("alpha"):
        assert enabled_app_for_callback(alpha_app.callback_id).pk == alpha_app.pk
        with CaptureQueriesContext(connection) as queries:
            again = enabled_app_for_callback(alpha_app.callback_id)
        assert (again.pk, again.token, queries.captured_queries) == (alpha_app.pk, "tokenBefore1", [])
    with schema_context("beta"):  # the same callback id means nothing in another tenant
        assert enabled_app_for_callback(alpha_app.callback_id) is None


def test_a_disabled_or_changed_app_is_seen_by_the_next_callback(alpha_app):
    with schema_context("alpha"):
        assert enabled_app_for_callback(alpha_app.callback_id).token == "tokenBefore1"

        app = WeComApp.objects.get(pk=alpha_app.pk)
        app.token = "tokenAfter22"
        app.save()
        assert enabled_app_for_callback(alpha_app.callback_id).token == "tokenAfter22"

        WeComApp.objects.filter(pk=alpha_app.pk).update(is_enabled=False)  # the admin's action: no signal
        assert enabled_app_for_callback(alpha_app.callback_id) is None
