"""Entries' embeddings: the local model, the embed jobs (run from the real test broker), skipping unchanged
texts, a new embedding model re-embedding every entry through the sandbox's /v1/embeddings with progress,
a failing provider leaving lexical search working, the version, the sweeper, tenant isolation, the admin."""

from __future__ import annotations

import numpy as np
import pytest
from django_tenants.utils import schema_context

from conversations.ai.embeddings import OpenAIEmbedder, embedding_model_changed
from kb import services
from kb.actors import embed_entries as embed_entries_actor
from kb.actors import reembed_all as reembed_all_actor
from kb.embeddings import current_embedder, embed_query, embeddings_version, from_bytes
from kb.embeddings.local import MODEL_ID as LOCAL
from kb.embeddings.sync import embed_entries, stale_entry_ids, sweep_embeddings
from kb.embeddings.texts import entry_texts, text_hash
from kb.models import EntryEmbedding
from kb.progress import read_embedding_progress
from kb.selectors import search_knowledge
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import AIProviderFactory, KnowledgeEntryFactory
from testing.spreadsheets import HEADER, csv_bytes
from wecom_sandbox.embeddings import embed_text

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("local_embedder", "clean_kb_queue")]

ACTORS = {"kb.embed_entries": embed_entries_actor, "kb.reembed_all": reembed_all_actor}


@pytest.fixture
def clean_kb_queue(redis_client):
    flush_test_broker()
    yield
    flush_test_broker()


@pytest.fixture
def run_queued_jobs(django_capture_on_commit_callbacks):
    """Run the embed jobs waiting in the real test broker, as a worker would, in the schema they carry
    (their on-commit work, the version's bump, runs as the worker's commit would run it)."""

    def run(schema: str = "alpha") -> int:
        jobs = [m for m in queued_jobs("kb") if m.actor_name in ACTORS]
        flush_test_broker()
        for message in jobs:
            assert message.options["tenant_schema"] == schema
            with schema_context(schema), django_capture_on_commit_callbacks(execute=True):
                ACTORS[message.actor_name].fn(*message.args)
        return len(jobs)

    return run


def vectors(entry, model_id=LOCAL) -> dict[str, EntryEmbedding]:
    return {row.kind: row for row in EntryEmbedding.objects.filter(entry=entry, model_id=model_id)}


def cosine(a, b) -> float:
    return float(np.dot(a, b))


def test_the_local_model_puts_paraphrases_closer_than_unrelated_questions(local_embedder):
    parcel, late, refund = local_embedder.embed(["我的快递三天了还没到", "包裹一直没有送到怎么办", "退款什么时候到账"])

    assert local_embedder.model_id == "local:use-m3" and parcel.shape == (512,) and parcel.dtype == np.float32
    assert np.isclose(np.linalg.norm(parcel), 1.0, atol=1e-5)
    assert cosine(parcel, late) > cosine(parcel, refund) + 0.1


def test_creating_and_editing_an_entry_embeds_it_in_a_job(tenant_a, run_queued_jobs,
                                                           django_capture_on_commit_callbacks):
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        entry = KnowledgeEntryFactory(question="什么时候发货？", answer="下单后48小时内发货。", tags=["发货", "物流"])
    assert run_queued_jobs() == 1
    with schema_context("alpha"):
        stored = vectors(entry)
        assert set(stored) == {"title", "full"}
        title = entry_texts(question=entry.question, tags=entry.tags, answer=entry.answer)["title"]
        assert title == "什么时候发货？ 发货 物流" and stored["title"].text_hash == text_hash(title)
        assert stored["full"].dims == 512 and len(bytes(stored["full"].vector)) == 512 * 4
        version = embeddings_version()

        with django_capture_on_commit_callbacks(execute=True):
            services.update_entry(entry=entry, question=entry.question, answer="付款后24小时内发货。", tags=entry.tags,
                                  enabled=True)
    assert run_queued_jobs() == 1
    with schema_context("alpha"):
        edited = vectors(entry)
        assert edited["title"].text_hash == stored["title"].text_hash  # same question and tags
        assert bytes(edited["title"].vector) == bytes(stored["title"].vector)
        assert edited["full"].text_hash != stored["full"].text_hash
        assert embeddings_version() != version


def test_unchanged_text_is_not_embedded_again(tenant_a, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        entry = KnowledgeEntryFactory(question="怎么开发票？", answer="在订单页申请。")
        first = embed_entries(entry_ids=[entry.pk])
        before = {kind: (row.pk, bytes(row.vector)) for kind, row in vectors(entry).items()}
        with django_capture_on_commit_callbacks(execute=True):  # the same text saved again: no job at all
            services.update_entry(entry=entry, question=entry.question, answer=entry.answer, tags=[],
                                  enabled=False)
        again = embed_entries(entry_ids=[entry.pk])

        assert (first.embedded, first.unchanged) == (2, 0)
        assert (again.embedded, again.unchanged) == (0, 2)
        assert {kind: (row.pk, bytes(row.vector)) for kind, row in vectors(entry).items()} == before
    assert queued_jobs("kb") == []


def test_an_import_embeds_every_row_in_one_job(tenant_a, tenant_b, run_queued_jobs,
                                                django_capture_on_commit_callbacks):
    rows = [HEADER, *([f"导入问题 {n}", f"答案 {n}", "导入", "是"] for n in range(120))]
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        outcome = services.import_file(content=csv_bytes(rows), filename="kb.csv")
    assert outcome.result.created == 120
    jobs = queued_jobs("kb", actor_name="kb.embed_entries")
    assert len(jobs) == 1 and len(jobs[0].args[0]) == 120
    with schema_context("beta"):
        beta_version = embeddings_version()

    assert run_queued_jobs() == 1

    with schema_context("alpha"):
        assert EntryEmbedding.objects.filter(model_id=LOCAL).count() == 240
        assert stale_entry_ids(model_id=LOCAL) == []
    with schema_context("beta"):  # the other tenant: no vectors, the same version
        assert EntryEmbedding.objects.count() == 0
        assert embeddings_version() == beta_version


def test_a_new_embedding_model_reembeds_everything_over_http_and_drops_the_old_vectors(
        tenant_a, fake_model, admin_client, run_queued_jobs, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        entries = [KnowledgeEntryFactory(question=f"问题{n}", answer=f"答案{n}") for n in range(40)]
        embed_entries(entry_ids=[e.pk for e in entries])
        provider = AIProviderFactory(base_url=fake_model.model_base_url, api_key="sk-embed-key-0001")
        with django_capture_on_commit_callbacks(execute=True):
            provider.embedding_model = "sandbox-embed"
            provider.save()
            assert embedding_model_changed(before="", after="sandbox-embed")
        assert read_embedding_progress() == {"phase": "queued", "done": 0, "total": 40,
                                             "model_id": "openai:sandbox-embed", "error": ""}
    page = admin_client.get("/t/alpha/admin/kb/knowledgeentry/").content.decode()
    assert "0/40（openai:sandbox-embed）" in page or "0/40 (openai:sandbox-embed)" in page

    assert run_queued_jobs() == 1

    with schema_context("alpha"):
        assert read_embedding_progress()["phase"] == "succeeded"
        assert set(EntryEmbedding.objects.values_list("model_id", flat=True)) == {"openai:sandbox-embed"}
        row = EntryEmbedding.objects.get(entry=entries[7], kind="full")
        assert row.dims == 256
        assert np.allclose(from_bytes(row.vector), embed_text("问题7 答案7"), atol=1e-6)
    calls = fake_model.model_calls(outcome="embedded")
    assert len(calls) == 2  # 80 texts, 64 per request
    assert {call["api_key"] for call in calls} == {"sk-embed-key-0001"}
    page = admin_client.get("/t/alpha/admin/kb/knowledgeentry/").content.decode()
    assert "40/40" in page and "openai:sandbox-embed" in page


def test_a_failing_provider_leaves_lexical_search_working(tenant_a, fake_model):
    with schema_context("alpha"):
        KnowledgeEntryFactory(question="退款多久到账？", answer="原路退回，1-3个工作日到账。")
        AIProviderFactory(base_url=fake_model.model_base_url, embedding_model="sandbox-embed")
        fake_model.model_configure(available=False)

        assert isinstance(current_embedder(), OpenAIEmbedder)
        assert embed_query("退款多久到账") is None
        assert search_knowledge("退款多久到账", limit=3)[0].entry.question == "退款多久到账？"
        with pytest.raises(Exception) as failed:  # the job is retried by Dramatiq
            reembed_all_actor.fn()
        assert getattr(failed.value, "retryable", False) is True
        assert read_embedding_progress()["phase"] == "failed"
        assert EntryEmbedding.objects.count() == 0


def test_embed_query_uses_the_tenants_model(tenant_a, tenant_b, fake_model):
    with schema_context("alpha"):
        AIProviderFactory(base_url=fake_model.model_base_url, embedding_model="sandbox-embed")
        model_id, vector = embed_query("运费谁出")
        assert model_id == "openai:sandbox-embed" and np.allclose(vector, embed_text("运费谁出"), atol=1e-6)
    with schema_context("beta"):  # no provider: the local model
        model_id, vector = embed_query("运费谁出")
        assert model_id == LOCAL and vector.shape == (512,)


def test_deleting_an_entry_drops_its_vectors_and_moves_the_version(tenant_a, tenant_b,
                                                                   django_capture_on_commit_callbacks):
    with schema_context("beta"):
        beta_version = embeddings_version()
    with schema_context("alpha"):
        entry = KnowledgeEntryFactory()
        embed_entries(entry_ids=[entry.pk])
        version = embeddings_version()
        with django_capture_on_commit_callbacks(execute=True):
            assert services.delete_entries(entry_ids=[entry.pk]) == 1
        assert EntryEmbedding.objects.count() == 0
        assert embeddings_version() != version
    with schema_context("beta"):
        assert embeddings_version() == beta_version


def test_the_sweeper_resends_lost_embed_jobs_then_prunes_other_models(tenant_a, run_queued_jobs,
                                                                       django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        done, lost = KnowledgeEntryFactory(), KnowledgeEntryFactory()
        embed_entries(entry_ids=[done.pk])
        EntryEmbedding.objects.create(entry=done, kind="full", model_id="openai:old", dims=1,
                                      vector=b"\0\0\0\0", text_hash="x")
        flush_test_broker()

        assert sweep_embeddings(older_than_seconds=3600).enqueued == 0  # changed moments ago: jobs are on the way
        with django_capture_on_commit_callbacks(execute=True):
            swept = sweep_embeddings(older_than_seconds=0)
        assert swept.enqueued == 1 and swept.pruned == 0
        assert [m.args[0] for m in queued_jobs("kb", actor_name="kb.embed_entries")] == [[lost.pk]]
        run_queued_jobs()
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep_embeddings(older_than_seconds=0).pruned == 1
        assert set(EntryEmbedding.objects.values_list("model_id", flat=True)) == {LOCAL}


def test_the_admin_shows_each_entrys_model_and_reembeds_on_request(tenant_a, admin_client,
                                                                   django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        embedded, waiting = KnowledgeEntryFactory(question="已向量"), KnowledgeEntryFactory(question="未向量")
        embed_entries(entry_ids=[embedded.pk])
        EntryEmbedding.objects.filter(entry=waiting).delete()
    flush_test_broker()

    page = admin_client.get("/t/alpha/admin/kb/knowledgeentry/").content.decode()
    assert "1/2（local:use-m3）" in page or "1/2 (local:use-m3)" in page
    assert page.count("local:use-m3") >= 2  # the status line and the embedded entry's row

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/t/alpha/admin/kb/knowledgeentry/", {
            "action": "reembed_entries", "_selected_action": [embedded.pk, waiting.pk]}, follow=True)
    assert response.status_code == 200
    jobs = queued_jobs("kb", actor_name="kb.embed_entries")
    assert [(sorted(m.args[0]), m.args[1]) for m in jobs] == [(sorted([embedded.pk, waiting.pk]), True)]
