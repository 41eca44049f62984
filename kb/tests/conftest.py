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


@pytest.fixture(scope="session")
def local_embedder():
    """The built-in model (use-m3), loaded once for the whole test session (2-6 s)."""
    from kb.embeddings.local import local_embedder as process_model

    model = process_model()
    model.embed(["预热"])
    return model
