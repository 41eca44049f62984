"""Fixtures of the conversations tests. The shared ones (tenants, the WeCom sandbox `sandbox` /
`sandbox_server` / `fake_model`, live processes, `committed_app`) are in testing/fixtures.py."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from testing.factories import WeComAppFactory


@pytest.fixture
def app_alpha(tenant_a) -> WeComApp:
    """A self-built app of tenant alpha, inside the test transaction."""
    with schema_context("alpha"):
        return WeComAppFactory()
