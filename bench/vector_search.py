"""Latency of vector search (kb/vectors.py) on a large knowledge base, both backends, and of a question's embedding.

    .venv/bin/python bench/vector_search.py [--entries 10000] [--dims 512] [--queries 200] [--database-url URL]

Imports bench/data/retrieval_kb.json plus generated filler entries (bench/retrieval.py's) into the `bench` tenant
of the benchmark's own database (`wecomdesk_bench_vectors`), gives every entry two random unit vectors ("title"
and "full", float32, `--dims`) under a bench model id (random vectors: the exact scan costs the same whatever
the values; for HNSW they are the hard case), then times, in this process:

- exact: loading the tenant's matrix once (cold), then `--queries` searches (top 10) from the cache;
- pgvector (when the database has it): copying the vectors into the side table with its HNSW index
  (kb.vectors.sync_vector_index), then the same searches at ef_search 100 (the default) and 400, with their
  recall@10 against exact;
- the built-in model's embedding of each question of the set (kb.embeddings.embed_query; the model loads first);
- lexical search (kb.selectors.search_knowledge_many, top 10) of each question of the set.
Exit status: 0 ran, 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import benchkit  # bench/ is on sys.path when run as a script
import numpy as np
import retrieval
from benchkit import TENANT, BenchError, percentile

DATABASE = "wecomdesk_bench_vectors"
MODEL = "bench:random"


def timed(function, items) -> tuple[list, list[float]]:
    results, seconds = [], []
    for item in items:
        started = time.perf_counter()
        results.append(function(item))
        seconds.append(time.perf_counter() - started)
    return results, seconds


def line(name: str, seconds: list[float], extra: str = "") -> str:
    return (f"| {name} | {benchkit.ms(percentile(seconds, 50))} | {benchkit.ms(percentile(seconds, 95))} | "
            f"{benchkit.ms(max(seconds))} | {extra} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10000, help="filler entries added to the set's 47")
    parser.add_argument("--dims", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database-url", default=f"postgresql://postgres@127.0.0.1:5432/{DATABASE}")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:6379/{retrieval.REDIS_DB}")
    parser.add_argument("--settings", default="config.settings.local")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        for what, url in {"the database": args.database_url, "Redis": args.redis_url}.items():
            benchkit.check_loopback(url, what)
        entries = retrieval.load_kb()
        questions = [question.text for question in retrieval.load_questions(entries)]
        retrieval.prepare_tenant(args)
        import django

        django.setup()
        from django.db import connection, transaction
        from django.test import override_settings
        from django_tenants.utils import schema_context

        from kb import vectors
        from kb.embeddings import embed_query
        from kb.embeddings.base import to_bytes
        from kb.embeddings.version import bump_embeddings_version_on_commit
        from kb.models import EntryEmbedding, KnowledgeEntry
        from kb.selectors import search_knowledge_many

        with schema_context(TENANT):
            started = time.perf_counter()
            retrieval.load_entries_into_tenant(entries + retrieval.filler_entries(args.entries, args.seed))
            import_seconds = time.perf_counter() - started
            rng = np.random.default_rng(args.seed)
            ids = list(KnowledgeEntry.objects.values_list("pk", flat=True))
            with transaction.atomic():
                EntryEmbedding.objects.filter(model_id=MODEL).delete()
                for start in range(0, len(ids), 1000):
                    chunk = ids[start:start + 1000]
                    matrix = rng.standard_normal((len(chunk) * 2, args.dims)).astype(np.float32)
                    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
                    EntryEmbedding.objects.bulk_create([
                        EntryEmbedding(entry_id=entry_id, kind=kind, model_id=MODEL, dims=args.dims,
                                       vector=to_bytes(matrix[2 * n + k]), text_hash="bench")
                        for n, entry_id in enumerate(chunk) for k, kind in enumerate(("title", "full"))])
                bump_embeddings_version_on_commit()
            queries = rng.standard_normal((args.queries, args.dims)).astype(np.float32)

            def exact(query):
                return [m.entry_id for m in vectors.nearest_entries(MODEL, query, limit=10, backend="exact")]

            vectors.reset_caches()
            _, cold = timed(exact, queries[:1])
            exact_ids, exact_seconds = timed(exact, queries)
            table = ["| step | p50 | p95 | max | note |", "| --- | --- | --- | --- | --- |",
                     line(f"exact: load the matrix ({len(ids) * 2} x {args.dims})", cold,
                          f"{vectors.matrix_cache._items[(TENANT, MODEL)].nbytes / 2**20:.0f} MiB cached"),
                     line("exact: search, top 10", exact_seconds, f"{args.queries} random queries")]
            if vectors.pgvector_version():
                started = time.perf_counter()
                written = vectors.sync_vector_index(model_id=MODEL, dims=args.dims)
                sync_seconds = time.perf_counter() - started
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE kb_entryvector")
                for ef in (100, 400):
                    with override_settings(KB_VECTOR_EF_SEARCH=ef):
                        found, seconds = timed(lambda q: [m.entry_id for m in vectors.nearest_entries(
                            MODEL, q, limit=10, backend="pgvector")], queries)
                    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact_ids, strict=True)])
                    table.append(line(f"pgvector {vectors.pgvector_version()} HNSW, ef_search {ef}", seconds,
                                      f"recall@10 vs exact {recall:.3f}"))
                table.append(f"| pgvector: copy {written} vectors and build the index | {sync_seconds:.1f} s | | | "
                             "once; later only changed rows |")
            else:
                table.append("| pgvector | - | - | - | not installed in this database |")
            embed_query(questions[0])  # loads the model
            embedded, seconds = timed(embed_query, questions)
            model = next((result[0] for result in embedded if result), "none")
            table.append(line(f"embed a question ({model})", seconds, f"{len(questions)} questions of the set"))
            timed(lambda q: search_knowledge_many([q], limit=10), questions[:5])  # warm-up
            _, seconds = timed(lambda q: search_knowledge_many([q], limit=10), questions)
            table.append(line("lexical search, top 10", seconds, f"{len(questions)} questions of the set"))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(ids)} entries ({args.entries} filler), 2 vectors each of {args.dims} dims; import "
          f"{import_seconds:.1f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end.\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
