"""The AI provider's embedding model: shown in its admin form, and changing it re-embeds the knowledge base
(a kb.reembed_all job for that tenant only); the embedder sends the tenant's key and never logs it."""

import pytest
from django_tenants.utils import schema_context

from conversations.ai.breaker import breaker_state
from conversations.ai.embeddings import tenant_embedder
from kb.embeddings import EmbeddingError
from testing.accounts import staff_client
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import AIProviderFactory
from testing.logs import production_json_logs

pytestmark = pytest.mark.django_db

KEY = "sk-alpha-embed-0123456789"
URL = "/t/alpha/admin/conversations/aiprovider/"


def form_data(provider, **overrides) -> dict:
    data = {"enabled": "on", "base_url": provider.base_url, "model": provider.model, "api_key": "",
            "embedding_model": provider.embedding_model, "timeout_seconds": "5", "max_tokens": "512",
            "temperature": "0.3", "system_prompt_template": provider.system_prompt_template,
            "breaker_fail_max": "5", "breaker_reset_timeout_seconds": "30"}
    data.update(overrides)
    return data


@pytest.fixture
def provider(tenant_a, fake_model, redis_client):
    flush_test_broker()
    with schema_context("alpha"):
        yield AIProviderFactory(base_url=fake_model.model_base_url, api_key=KEY)
    flush_test_broker()


def test_changing_the_embedding_model_in_the_admin_reembeds_that_tenant(provider, django_capture_on_commit_callbacks):
    client = staff_client("alpha")
    assert 'name="embedding_model"' in client.get(f"{URL}{provider.pk}/change/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        unchanged = client.post(f"{URL}{provider.pk}/change/", form_data(provider, temperature="0.5"))
    assert unchanged.status_code == 302 and queued_jobs("kb", actor_name="kb.reembed_all") == []

    with django_capture_on_commit_callbacks(execute=True):
        changed = client.post(f"{URL}{provider.pk}/change/", form_data(provider, embedding_model="sandbox-embed"))
    assert changed.status_code == 302
    jobs = queued_jobs("kb", actor_name="kb.reembed_all")
    assert [job.options["tenant_schema"] for job in jobs] == ["alpha"]
    with schema_context("alpha"):
        provider.refresh_from_db()
        assert provider.embedding_model == "sandbox-embed"


def test_the_embedder_sends_the_key_and_keeps_it_out_of_errors_and_logs(provider, fake_model):
    with schema_context("alpha"):
        provider.embedding_model = "sandbox-embed"
        provider.save()
        embedder = tenant_embedder()
        assert embedder.model_id == "openai:sandbox-embed"
        assert embedder.embed(["运费谁出"]).shape == (1, 256)
        assert fake_model.model_calls(outcome="embedded")[0]["api_key"] == KEY

        fake_model.model_configure(api_keys=["sk-someone-else"])
        with production_json_logs() as logs, pytest.raises(EmbeddingError) as refused:
            embedder.embed(["运费谁出"])
    assert "HTTP 401" in str(refused.value) and refused.value.retryable is False
    assert KEY not in str(refused.value) and KEY not in logs.text()
    assert [line["status_code"] for line in logs.events("ai.embeddings.failed")] == [401]


def test_a_failing_embeddings_endpoint_opens_the_breaker_and_questions_are_then_ranked_at_once(
        provider, fake_model, clean_breakers):
    with schema_context("alpha"):
        provider.embedding_model = "sandbox-embed"
        provider.breaker_fail_max = 2
        provider.save()
        embedder = tenant_embedder()
        fake_model.model_configure(available=False)
        for _ in range(2):
            with pytest.raises(EmbeddingError):
                embedder.embed(["运费谁出"])
        calls = len(fake_model.model_calls())

        with pytest.raises(EmbeddingError) as refused:
            embedder.embed(["运费谁出"])

        assert "circuit open" in str(refused.value) and refused.value.retryable
        assert len(fake_model.model_calls()) == calls  # nothing sent while the breaker is open
        assert breaker_state("alpha")["state"] == "open"


def test_a_request_the_embeddings_endpoint_calls_bad_does_not_open_the_breaker(provider, fake_model,
                                                                                  clean_breakers):
    with schema_context("alpha"):
        provider.embedding_model = "sandbox-embed"
        provider.breaker_fail_max = 1
        provider.save()
        fake_model.model_fail_next(count=3, kind="http_error", status=400)
        for _ in range(3):
            with pytest.raises(EmbeddingError) as refused:
                tenant_embedder().embed(["运费谁出"])
            assert "HTTP 400" in str(refused.value)
        assert breaker_state("alpha")["state"] == "closed"
