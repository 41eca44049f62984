"""Knowledge over the REST API: CRUD through the services, search with scores, tenant isolation."""

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from conversations.services.api_keys import create_api_key
from kb.models import KnowledgeEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def clients(tenant_a, tenant_b):
    made = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            made[schema] = Client(HTTP_AUTHORIZATION=f"Api-Key {create_api_key(name='kb')[1]}")
    return made


def test_create_search_update_delete(clients):
    alpha = clients["alpha"]
    created = alpha.post("/t/alpha/api/knowledge/", {"question": "如何申请退货？", "answer": "七天无理由退货。",
                                                     "tags": ["退货", "不合适"]}, content_type="application/json")
    assert created.status_code == 201
    entry_id = created.json()["id"]

    found = alpha.get("/t/alpha/api/knowledge/search/", {"q": "衣服不合适能退吗"}).json()
    assert found[0]["entry"]["id"] == entry_id and 0 < found[0]["score"] <= 1

    updated = alpha.patch(f"/t/alpha/api/knowledge/{entry_id}/", {"enabled": False},
                          content_type="application/json")
    assert updated.status_code == 200 and updated.json()["enabled"] is False
    assert alpha.get("/t/alpha/api/knowledge/search/", {"q": "衣服不合适能退吗"}).json() == []
    assert alpha.delete(f"/t/alpha/api/knowledge/{entry_id}/").status_code == 204
    with schema_context("alpha"):
        assert not KnowledgeEntry.objects.exists()


def test_bad_input_is_refused_and_changes_nothing(clients):
    alpha = clients["alpha"]
    assert alpha.post("/t/alpha/api/knowledge/", {"question": "", "answer": "x"},
                      content_type="application/json").status_code == 400
    alpha.post("/t/alpha/api/knowledge/", {"question": "发票", "answer": "可以开"}, content_type="application/json")
    duplicate = alpha.post("/t/alpha/api/knowledge/", {"question": "发票", "answer": "again"},
                           content_type="application/json")
    assert duplicate.status_code == 400
    assert alpha.get("/t/alpha/api/knowledge/search/").status_code == 400
    with schema_context("alpha"):
        assert list(KnowledgeEntry.objects.values_list("answer", flat=True)) == ["可以开"]


def test_entries_are_per_tenant(clients):
    clients["alpha"].post("/t/alpha/api/knowledge/", {"question": "发票", "answer": "alpha"},
                          content_type="application/json")
    with schema_context("alpha"):
        entry_id = KnowledgeEntry.objects.get().pk
    assert clients["beta"].get("/t/beta/api/knowledge/").json()["results"] == []
    assert clients["beta"].get(f"/t/beta/api/knowledge/{entry_id}/").status_code == 404
    assert clients["beta"].get("/t/beta/api/knowledge/search/", {"q": "发票"}).json() == []
    assert clients["beta"].get("/t/alpha/api/knowledge/").status_code == 401
