"""Fixtures of the conversations tests. The shared ones (tenants, the WeCom sandbox `sandbox` /
`sandbox_server` / `fake_model`, live processes, `committed_app`) are in testing/fixtures.py."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from testing.factories import WeComAppFactory
from testing.webhooks import WebhookReceiver


@pytest.fixture
def app_alpha(tenant_a) -> WeComApp:
    """A self-built app of tenant alpha, inside the test transaction."""
    with schema_context("alpha"):
        return WeComAppFactory()


@pytest.fixture
def webhook_receiver():
    """webhook_receiver(statuses=[500, 200], default_status=200): a started testing.webhooks.WebhookReceiver
    (stopped after the test)."""
    started = []

    def start(**kwargs) -> WebhookReceiver:
        started.append(WebhookReceiver(**kwargs).start())
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()
