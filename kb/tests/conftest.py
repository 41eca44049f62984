"""Fixtures of the knowledge-base tests: staff clients of each tenant's admin.

Entries are made with testing.factories.KnowledgeEntryFactory (through kb.services, inside a schema_context).
"""

from __future__ import annotations

import pytest
from django.test import Client

from testing.accounts import staff_client


@pytest.fixture
def admin_alpha(tenant_a) -> Client:
    return staff_client("alpha")


@pytest.fixture
def admin_beta(tenant_b) -> Client:
    return staff_client("beta")
