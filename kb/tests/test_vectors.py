"""Vector search (kb/vectors.py): the exact in-process backend against a brute-force reference, its cache
following every change, tenant isolation, and pgvector's HNSW index giving the same results."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from django_tenants.utils import schema_context

from kb import services, vectors
from kb.embeddings import embeddings_version
from kb.embeddings.base import to_bytes
from kb.embeddings.version import bump_embeddings_version_on_commit
from kb.models import EntryEmbedding
from testing.factories import KnowledgeEntryFactory

pytestmark = pytest.mark.django_db

MODEL = "test:o'brien-64"  # a quote: the model id reaches SQL as a literal (the partial index's predicate)
DIMS = 64


@pytest.fixture(autouse=True)
def _fresh_vector_caches():
    """The test transaction rolls back the side table and the vectors, not the process's caches."""
    vectors.reset_caches()
    yield
    vectors.reset_caches()


def unit_rows(rng: np.random.Generator, count: int, dims: int = DIMS) -> np.ndarray:
    rows = rng.standard_normal((count, dims)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_kb(schema: str, count: int, *, seed: int, capture, model: str = MODEL, only_title: set[int] = frozenset(),
            disabled: set[int] = frozenset()) -> dict[int, dict[str, np.ndarray]]:
    """`count` entries with a "title" and (except `only_title`) a "full" vector; returns {entry id: {kind: vector}}."""
    rng = np.random.default_rng(seed)
    stored: dict[int, dict[str, np.ndarray]] = {}
    with schema_context(schema):
        entries = [KnowledgeEntryFactory(question=f"{schema} 问题 {number}", answer=f"答案 {number}",
                                         enabled=number not in disabled) for number in range(count)]
        rows = []
        for number, entry in enumerate(entries):
            kinds = ["title"] if number in only_title else ["title", "full"]
            for kind, vector in zip(kinds, unit_rows(rng, len(kinds)), strict=True):
                stored.setdefault(entry.pk, {})[kind] = vector
                rows.append(EntryEmbedding(entry=entry, kind=kind, model_id=model, dims=DIMS, vector=to_bytes(vector),
                                           text_hash=f"{kind}-{number}"))
        with capture(execute=True):
            EntryEmbedding.objects.bulk_create(rows)
            bump_embeddings_version_on_commit()
    return stored


def reference(stored, query, *, limit, kinds=("title", "full"), enabled=None) -> list[tuple[int, float, str]]:
    """Brute force in float64: each entry's best cosine over its vectors of those kinds."""
    query = np.asarray(query, dtype=np.float64) / np.linalg.norm(query)
    best = []
    for entry_id, by_kind in stored.items():
        if enabled is not None and entry_id not in enabled:
            continue
        scored = [(float(np.dot(vector.astype(np.float64), query)), kind) for kind, vector in by_kind.items()
                  if kind in kinds]
        if scored:
            cosine, kind = max(scored)
            best.append((entry_id, cosine, kind))
    return sorted(best, key=lambda row: (-row[1], row[0]))[:limit]


def as_rows(matches) -> list[tuple[int, float, str]]:
    return [(match.entry_id, match.cosine, match.kind) for match in matches]


def assert_same(found, expected):
    assert [(entry_id, kind) for entry_id, _, kind in found] == [(entry_id, kind) for entry_id, _, kind in expected]
    assert np.allclose([cosine for _, cosine, _ in found], [cosine for _, cosine, _ in expected], atol=1e-5)


def nearest(schema, query, *, backend="exact", **kwargs):
    with schema_context(schema):
        return as_rows(vectors.nearest_entries(MODEL, query, backend=backend, **kwargs))


def test_exact_search_matches_a_brute_force_reference(tenant_a, django_capture_on_commit_callbacks):
    stored = make_kb("alpha", 60, seed=1, capture=django_capture_on_commit_callbacks, only_title={3, 7, 11})
    rng = np.random.default_rng(2)
    for query in [*unit_rows(rng, 5), stored[min(stored)]["full"] * 3.0]:  # any length: the query is normalised
        for limit, kinds in [(1, ("title", "full")), (5, ("title", "full")), (60, ("title", "full")),
                             (8, ("title",)), (8, ("full",))]:
            assert_same(nearest("alpha", query, limit=limit, kinds=kinds),
                        reference(stored, query, limit=limit, kinds=kinds))
    assert nearest("alpha", stored[min(stored)]["full"], limit=1)[0][:1] == (min(stored),)
    assert len(nearest("alpha", unit_rows(rng, 1)[0], limit=100)) == 60  # every entry once, however many vectors
    assert nearest("alpha", unit_rows(rng, 1)[0], limit=0) == []
    assert nearest("alpha", unit_rows(rng, 1, dims=32)[0], limit=5) == []  # another model's size: nothing


def test_disabled_entries_are_excluded_and_the_cache_follows_changes(tenant_a, django_capture_on_commit_callbacks):
    stored = make_kb("alpha", 30, seed=3, capture=django_capture_on_commit_callbacks, disabled={0})
    ids = sorted(stored)
    enabled = set(ids[1:])
    query = stored[ids[0]]["title"]  # the disabled entry's own vector
    found = nearest("alpha", query, limit=5)
    assert ids[0] not in [row[0] for row in found]
    assert_same(found, reference(stored, query, limit=5, enabled=enabled))
    with schema_context("alpha"):
        assert vectors.matrix_cache.keys() == [("alpha", MODEL)]
        version = embeddings_version()
        # enabling it bumps the version on commit: the next search loads the matrix again and finds it
        with django_capture_on_commit_callbacks(execute=True):
            services.set_entries_enabled(entry_ids=[ids[0]], enabled=True)
        assert embeddings_version() != version
    assert nearest("alpha", query, limit=1)[0][:1] == (ids[0],)
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        services.set_entries_enabled(entry_ids=[ids[1]], enabled=False)
        services.delete_entries(entry_ids=[ids[2]])
    remaining = set(ids) - {ids[1], ids[2]}
    for gone in (ids[1], ids[2]):
        assert_same(nearest("alpha", stored[gone]["full"], limit=10),
                    reference(stored, stored[gone]["full"], limit=10, enabled=remaining))
    # a vector written again (a new text) is searched with its new value
    new_vector = -stored[ids[3]]["full"]
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        EntryEmbedding.objects.filter(entry_id=ids[3], kind="full").update(vector=to_bytes(new_vector))
        bump_embeddings_version_on_commit()
    stored[ids[3]]["full"] = new_vector
    assert_same(nearest("alpha", new_vector, limit=3), reference(stored, new_vector, limit=3, enabled=remaining))


def test_without_a_version_bump_the_cached_matrix_is_used(tenant_a, django_capture_on_commit_callbacks):
    """The cache key is the version: a write that does not bump it (none does in the product) is not seen."""
    stored = make_kb("alpha", 10, seed=4, capture=django_capture_on_commit_callbacks)
    first = min(stored)
    nearest("alpha", stored[first]["title"], limit=1)
    with schema_context("alpha"):
        EntryEmbedding.objects.filter(entry_id=first).delete()
    assert nearest("alpha", stored[first]["title"], limit=1)[0][0] == first  # still cached
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        bump_embeddings_version_on_commit()
    assert first not in [row[0] for row in nearest("alpha", stored[first]["title"], limit=10)]


def test_the_cache_is_bounded(tenant_a, tenant_b, django_capture_on_commit_callbacks):
    make_kb("alpha", 40, seed=5, capture=django_capture_on_commit_callbacks)
    make_kb("beta", 40, seed=6, capture=django_capture_on_commit_callbacks)
    query = unit_rows(np.random.default_rng(7), 1)[0]
    nearest("alpha", query, limit=3)
    nearest("beta", query, limit=3)
    assert vectors.matrix_cache.keys() == [("alpha", MODEL), ("beta", MODEL)]
    # 80 rows x 64 floats = 20 kB per tenant; a cap below two tenants keeps only the last one used
    with override_settings(KB_VECTOR_CACHE_MB=0.03):
        vectors.matrix_cache.clear()
        nearest("alpha", query, limit=3)
        nearest("beta", query, limit=3)
        assert vectors.matrix_cache.keys() == [("beta", MODEL)]
        assert nearest("alpha", query, limit=3)  # still answered, then cached instead of beta
        assert vectors.matrix_cache.keys() == [("alpha", MODEL)]


def test_each_tenant_searches_only_its_own_vectors(tenant_a, tenant_b, django_capture_on_commit_callbacks):
    alpha = make_kb("alpha", 20, seed=8, capture=django_capture_on_commit_callbacks)
    beta = make_kb("beta", 20, seed=9, capture=django_capture_on_commit_callbacks)
    for backend in ("exact", "pgvector"):
        vectors.reset_caches()
        for schema, own, other in (("alpha", alpha, beta), ("beta", beta, alpha)):
            for entry_id in list(other)[:5]:
                query = other[entry_id]["full"]
                assert_same(nearest(schema, query, limit=5, backend=backend), reference(own, query, limit=5))
                # the other tenant's exact vector is no better than chance here (random 64-dim vectors)
                assert nearest(schema, query, limit=1, backend=backend)[0][1] < 0.9


@pytest.fixture
def pgvector_db():
    with schema_context("alpha"):
        assert vectors.pgvector_version() is not None, "the test database has no pgvector: scripts/ensure_pgvector.sh"


def test_pgvector_gives_the_exact_results(tenant_a, pgvector_db, django_capture_on_commit_callbacks):
    stored = make_kb("alpha", 300, seed=10, capture=django_capture_on_commit_callbacks, only_title={1, 2},
                     disabled={5, 6, 7})
    enabled = set(sorted(stored)) - {sorted(stored)[n] for n in (5, 6, 7)}
    rng = np.random.default_rng(11)
    queries = [*unit_rows(rng, 8), *(stored[sorted(stored)[n]]["title"] for n in (0, 5, 9))]
    with override_settings(KB_VECTOR_EF_SEARCH=400):  # HNSW recall 1 at this size: the same top-k as exact
        for query in queries:
            for limit, kinds in [(1, ("title", "full")), (10, ("title", "full")), (10, ("title",)), (10, ("full",))]:
                exact = nearest("alpha", query, limit=limit, kinds=kinds, backend="exact")
                indexed = nearest("alpha", query, limit=limit, kinds=kinds, backend="pgvector")
                assert_same(indexed, exact)
                assert_same(exact, reference(stored, query, limit=limit, kinds=kinds, enabled=enabled))


def test_auto_uses_the_hnsw_index_once_in_sync_and_follows_deletes(tenant_a, pgvector_db,
                                                                   django_capture_on_commit_callbacks):
    stored = make_kb("alpha", 100, seed=12, capture=django_capture_on_commit_callbacks)
    query = stored[min(stored)]["full"]
    with schema_context("alpha"):
        # more rows missing than a search copies itself: auto answers exactly and leaves the side table alone
        assert vectors.nearest_entries(MODEL, query, limit=1)[0].entry_id == min(stored)
        assert not vectors._side_table_exists()
        assert vectors.sync_vector_index(model_id=MODEL, dims=DIMS) == 200
        assert vectors.sync_vector_index(model_id=MODEL, dims=DIMS) == 0  # idempotent
        assert vectors._pgvector_ready(MODEL, dims=DIMS, forced=False)
        with connection.cursor() as cursor:  # the planner serves the search from the model's partial index
            cursor.execute("SET LOCAL enable_seqscan = off")  # 100 rows: a scan would be cheaper than the index
            cursor.execute("EXPLAIN " + vectors._NEAREST_SQL.format(
                distance=f"s.embedding::vector({DIMS}) <=> %(query)s::vector({DIMS})",
                model=vectors._literal(MODEL), **vectors._TABLES),
                {"query": "[" + ",".join(map(str, query.tolist())) + "]", "kinds": ["title", "full"], "take": 4})
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert vectors._index_name(MODEL, DIMS) in plan
        # a deleted entry's rows go with its vectors (ON DELETE CASCADE); a changed text is copied again
        with django_capture_on_commit_callbacks(execute=True):
            services.delete_entries(entry_ids=[min(stored)])
            EntryEmbedding.objects.filter(entry_id=max(stored), kind="full").update(
                vector=to_bytes(-stored[max(stored)]["full"]), text_hash="changed")
            bump_embeddings_version_on_commit()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {vectors._SIDE_TABLE}")
            assert cursor.fetchone()[0] == 198
        found = vectors.nearest_entries(MODEL, -stored[max(stored)]["full"], limit=2)  # auto: one row to copy
        assert (found[0].entry_id, found[0].kind) == (max(stored), "full") and found[0].cosine > 0.9999
        assert min(stored) not in [match.entry_id for match in vectors.nearest_entries(MODEL, query, limit=10)]


def test_a_backend_that_does_not_exist_is_refused(tenant_a):
    with schema_context("alpha"), pytest.raises(ImproperlyConfigured):
        vectors.nearest_entries(MODEL, np.ones(DIMS, dtype=np.float32), limit=1, backend="faiss")
