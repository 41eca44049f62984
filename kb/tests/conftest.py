"""Fixtures of the knowledge-base tests: entries made through the service, staff clients."""

from __future__ import annotations

import factory
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from kb import services
from kb.models import KnowledgeEntry


class KnowledgeEntryFactory(factory.Factory):
    """Entries are created through kb.services, which fills the search tokens."""

    class Meta:
        model = KnowledgeEntry

    question = factory.Sequence(lambda n: f"示例问题 {n}")
    answer = "示例答案"
    tags = factory.LazyFunction(list)
    enabled = True

    @classmethod
    def _create(cls, model_class, **fields):
        return services.create_entry(**fields)


def make_entry(schema: str, **fields) -> KnowledgeEntry:
    with schema_context(schema):
        return KnowledgeEntryFactory(**fields)


def staff_client(schema: str, *, superuser: bool = True, username: str | None = None) -> Client:
    """A client logged in to `schema`'s admin as a staff user (created inside the test)."""
    username = username or f"kb-{'admin' if superuser else 'staff'}@{schema}.test"
    with schema_context(schema):
        model = get_user_model()
        user = model.objects.filter(username=username).first() or model.objects.create_user(
            username=username, email=username, password="x", is_staff=True, is_superuser=superuser)
        client = Client()
        client.force_login(user)
    return client


@pytest.fixture
def admin_alpha(tenant_a) -> Client:
    return staff_client("alpha")


@pytest.fixture
def admin_beta(tenant_b) -> Client:
    return staff_client("beta")
