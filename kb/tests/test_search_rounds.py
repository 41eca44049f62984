"""A round of hybrid search done once (kb.ranking, kb.vectors.search_many): the same rankings and scores as the
previous per-question implementation (kept below as the reference), the same statements for a round of one
question or of many, and the embed jobs keeping pgvector's side table in sync (or leaving it alone without
pgvector)."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from kb import ranking, synonyms, vectors
from kb.actors import embed_entries as embed_entries_actor
from kb.actors import reembed_all as reembed_all_actor
from kb.embeddings import providers
from kb.embeddings.local import LocalEmbedder
from kb.embeddings.sync import embed_entries
from kb.models import EntryEmbedding, KnowledgeEntry
from kb.selectors import lexical_search_many, search_knowledge_many
from testing.factories import KnowledgeEntryFactory
from testing.kb_corpus import ENTRIES, QUESTIONS

pytestmark = pytest.mark.django_db

DIMS = 64
GROUPS = [["快递", "包裹", "物流"], ["退款", "退钱", "钱退回"], ["发票", "开票"]]
EXTRA = ["我的快递三天了还没到，怎么回事", "钱什么时候退回来", "包裹丢了怎么办", "能开发票吗", "今天天气怎么样", "？？",
         "退钱要多久，快递费谁出"]


class BigramEmbedder(LocalEmbedder):
    """A deterministic stand-in for the built-in model (a LocalEmbedder: the round embeds in one call): the
    character bigrams of a text hashed into DIMS buckets. Each row depends on its text only, so a batch gives
    exactly the rows of one-by-one calls, which the real model does only to ~1e-7 (measured in bench)."""

    model_id = "test:bigrams-64"
    dims = DIMS

    def __init__(self):
        super().__init__()
        self.calls: list[int] = []

    def embed(self, texts):
        self.calls.append(len(texts))
        rows = np.zeros((len(texts), DIMS), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for a, b in zip(text, text[1:] + " ", strict=True):
                row[int.from_bytes(hashlib.sha256((a + b).encode()).digest()[:4], "little") % DIMS] += 1.0
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1.0)


@pytest.fixture
def bigrams():
    model = BigramEmbedder()
    previous = providers._resolver
    providers.register_embedder_resolver(lambda: model)
    vectors.reset_caches()
    yield model
    providers.register_embedder_resolver(previous)
    vectors.reset_caches()


@pytest.fixture
def shop(tenant_a, bigrams):
    """The shop corpus embedded by the stand-in, the synonym groups above, one entry disabled and one not
    embedded yet (its lexical score alone)."""
    with schema_context("alpha"):
        entries = [KnowledgeEntryFactory(question=q, answer=a, tags=t) for q, a, t in ENTRIES.values()]
        late = KnowledgeEntryFactory(question="快递丢件了怎么赔偿？", answer="丢件按商品价格全额赔付。", tags=["快递"])
        embed_entries(entry_ids=[entry.pk for entry in entries], embedder=bigrams)
        KnowledgeEntry.objects.filter(pk=entries[3].pk).update(enabled=False)
        for words in GROUPS:
            synonyms.save_group(words=words)
    return entries, late


# -- the previous implementation (commit 82fadaf), one question at a time: the reference -------------------


def previous_search(queries: list[str], *, limit: int) -> list[list[ranking.KnowledgeMatch]]:
    groups = synonyms.enabled_groups()
    variants = [synonyms.variants(query, groups) for query in queries]
    embedder = providers.current_embedder()
    embedded = []
    for texts in variants:
        if not any((text or "").strip() for text in texts):
            embedded.append(None)
            continue
        mean = np.mean([embedder.embed([text])[0] for text in texts], axis=0, dtype=np.float32)
        norm = float(np.linalg.norm(mean))
        embedded.append(ranking.QuestionVectors(model_id=embedder.model_id, vector=mean / norm if norm else mean))
    found = iter(lexical_search_many([text for texts in variants for text in texts], limit=limit))
    lexical = [ranking.best_of_variants([next(found) for _ in texts], limit=limit) for texts in variants]
    out = []
    for matches, question in zip(lexical, embedded, strict=True):
        if question is None:
            out.append(matches[:limit])
            continue
        near: dict[int, float] = {}
        for match in vectors.nearest_entries(question.model_id, question.vector, limit=ranking.CANDIDATES,
                                             kinds=ranking.VECTOR_KINDS):
            near[match.entry_id] = max(near.get(match.entry_id, -1.0), float(match.cosine))
        fused = []
        for match in matches:
            cosine = near.get(match.entry.pk)
            stored = [np.frombuffer(bytes(row), dtype="<f4") for row in EntryEmbedding.objects.filter(
                entry_id=match.entry.pk, model_id=question.model_id).values_list("vector", flat=True)]
            if cosine is None and stored:
                cosine = float(np.max(np.stack(stored) @ question.vector))
            if cosine is None:
                fused.append(match)
            else:
                fused.append(replace(match, lexical=match.score, cosine=round(cosine, 4), score=round(
                    ranking.fused_score(lexical=match.score, cosine=cosine, model_id=question.model_id), 4)))
        seen = {match.entry.pk for match in matches}
        for pk, cosine in near.items():
            entry = KnowledgeEntry.objects.filter(pk=pk, enabled=True).first()
            if pk not in seen and entry is not None:
                fused.append(ranking.KnowledgeMatch(
                    entry=entry, matched_terms=[], lexical=0.0, cosine=round(cosine, 4),
                    score=round(ranking.fused_score(lexical=0.0, cosine=cosine, model_id=question.model_id), 4)))
        fused.sort(key=lambda match: (-match.score, match.entry.pk))
        out.append(fused[:limit])
    return out


def as_rows(rankings):
    return [[(m.entry.pk, m.score, m.lexical, m.cosine, m.matched_terms) for m in matches] for matches in rankings]


def assert_same_rankings(found, expected):
    assert [[row[0] for row in matches] for matches in as_rows(found)] == \
        [[row[0] for row in matches] for matches in as_rows(expected)]
    for got, want in zip(as_rows(found), as_rows(expected), strict=True):
        for a, b in zip(got, want, strict=True):
            assert a[4] == b[4]
            for x, y in zip(a[1:4], b[1:4], strict=True):
                assert (x is None) == (y is None) and (x is None or abs(x - y) <= 1e-9)


def test_a_round_ranks_and_scores_as_the_previous_implementation(shop, bigrams):
    questions = [*(text for text, _ in QUESTIONS), *EXTRA]
    with schema_context("alpha"):
        for limit in (3, 10):
            expected = previous_search(questions, limit=limit)
            assert any(len(synonyms.variants(q, synonyms.enabled_groups())) > 1 for q in questions)
            assert any(m.cosine is None for matches in expected for m in matches)  # the entry not embedded yet
            assert any(m.lexical == 0.0 for matches in expected for m in matches)  # found by vector only
            bigrams.calls.clear()
            assert_same_rankings(search_knowledge_many(questions, limit=limit), expected)
            assert bigrams.calls == [sum(len(synonyms.variants(q, synonyms.enabled_groups())) for q in questions
                                         if q.strip())]  # one call for the round
            # and one question at a time, as bench/retrieval.py asks
            assert_same_rankings([search_knowledge_many([q], limit=limit)[0] for q in questions], expected)
        with override_settings(KB_VECTOR_BACKEND="pgvector"):  # pgvector's side: the same results
            assert_same_rankings(search_knowledge_many(questions, limit=10), previous_search(questions, limit=10))


def statements(questions: list[str]) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        search_knowledge_many(questions)
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("SET ")]


def test_a_round_of_many_questions_runs_no_statement_per_question(shop, bigrams):
    """Each kind of statement at most once per round (some only when a question needs them: the lexical second
    step, vectors missing from the cached matrix, entries found by vector only), whatever the round's size."""
    questions = [*(text for text, _ in QUESTIONS), *EXTRA]
    with schema_context("alpha"), override_settings(KB_VECTOR_BACKEND="exact"):
        statements(questions[:1])  # loads the matrix
        kinds = {sql.strip()[:40] for question in questions for sql in statements([question])}
        many = statements(questions)
    assert len(many) == len({sql.strip()[:40] for sql in many}) <= len(kinds) < len(questions)


# -- the embed jobs keep pgvector's side table in sync -----------------------------------------------------


def side_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {vectors._SIDE_TABLE} WHERE model_id = %s", [BigramEmbedder.model_id])
        return cursor.fetchone()[0]


def test_an_embed_job_fills_the_hnsw_index_that_auto_then_searches(tenant_a, bigrams,
                                                                   django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        assert vectors.pgvector_version() is not None, "the test database has no pgvector: scripts/ensure_pgvector.sh"
        entries = [KnowledgeEntryFactory(question=f"问题 {n} 快递", answer=f"答案 {n}") for n in range(80)]
        with django_capture_on_commit_callbacks(execute=True):
            embed_entries_actor.fn([entry.pk for entry in entries])
        assert side_rows() == 2 * len(entries)  # more than a search would copy itself (INLINE_SYNC_MAX)
        assert vectors._stale_count(BigramEmbedder.model_id, DIMS) == 0
        query = bigrams.embed(["问题 7 快递"])[0]
        found = vectors.nearest_entries(BigramEmbedder.model_id, query, limit=5)  # auto
        assert vectors._synced[(connection.settings_dict["NAME"], "alpha", BigramEmbedder.model_id)] is not None
        assert found == vectors.nearest_entries(BigramEmbedder.model_id, query, limit=5, backend="pgvector")
        assert found[0].entry_id == entries[7].pk
        assert np.allclose([m.cosine for m in found], [m.cosine for m in vectors.nearest_entries(
            BigramEmbedder.model_id, query, limit=5, backend="exact")], atol=1e-5)  # ties may swap entries
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")  # 160 rows: a scan would be cheaper than the index
            cursor.execute("EXPLAIN " + vectors._NEAREST_SQL.format(
                distance=f"s.embedding::vector({DIMS}) <=> %(query)s::vector({DIMS})",
                model=vectors._literal(BigramEmbedder.model_id), **vectors._TABLES),
                {"query": "[" + ",".join(map(str, query.tolist())) + "]", "kinds": ["title", "full"], "take": 10})
            assert vectors._index_name(BigramEmbedder.model_id, DIMS) in "\n".join(r[0] for r in cursor.fetchall())
        # an edit's job copies the new vector; re-embedding everything leaves the table in sync too
        KnowledgeEntry.objects.filter(pk=entries[0].pk).update(question="完全不同的问题")
        with django_capture_on_commit_callbacks(execute=True):
            embed_entries_actor.fn([entries[0].pk])
        assert vectors._stale_count(BigramEmbedder.model_id, DIMS) == 0
        with django_capture_on_commit_callbacks(execute=True):
            reembed_all_actor.fn()
        assert vectors._stale_count(BigramEmbedder.model_id, DIMS) == 0 and side_rows() == 2 * len(entries)


@pytest.mark.parametrize("why", ["exact backend", "no extension"])
def test_without_pgvector_the_embed_job_leaves_the_side_table_alone(tenant_a, bigrams, why,
                                                                      django_capture_on_commit_callbacks):
    with schema_context("alpha"), override_settings(KB_VECTOR_BACKEND="exact" if why == "exact backend" else "auto"):
        if why == "no extension":  # as on a database without pgvector: the process's answer to "which version?"
            vectors._extension_versions[connection.settings_dict["NAME"]] = None
        entry = KnowledgeEntryFactory(question="怎么退货", answer="七天无理由")
        with django_capture_on_commit_callbacks(execute=True):
            embed_entries_actor.fn([entry.pk])
        assert EntryEmbedding.objects.filter(entry=entry, model_id=BigramEmbedder.model_id).count() == 2
        assert not vectors._side_table_exists()
        assert vectors.nearest_entries(BigramEmbedder.model_id, bigrams.embed(["怎么退货"])[0],
                                       limit=1)[0].entry_id == entry.pk


def test_questions_with_the_same_terms_are_searched_once_with_the_same_results(shop):
    questions = ["怎么开发票？", "钱什么时候退回来", "怎么开发票", "怎么 开发票！！", "钱什么时候退回来"]

    def searched(asked):
        with CaptureQueriesContext(connection) as captured:
            found = lexical_search_many(asked, limit=5)
        return found, [q["sql"] for q in captured.captured_queries if "WITH q AS MATERIALIZED" in q["sql"]]

    with schema_context("alpha"):
        alone = [lexical_search_many([question], limit=5)[0] for question in questions]
        together, statements_ = searched(questions)
        _, distinct_statements = searched(["怎么开发票？", "钱什么时候退回来"])
    assert as_rows(together) == as_rows(alone) and all(together)
    assert statements_ == distinct_statements  # the statement of the two distinct questions
