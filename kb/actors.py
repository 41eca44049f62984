"""Dramatiq actors of the knowledge base: thin adapters over kb.services and kb.embeddings.sync.

Redelivery is harmless: a job that is no longer pending is left alone, and an import commits
its entries and its outcome in one transaction, so a crash mid-way leaves nothing behind.
An embed job skips texts whose vectors are already written, so a redelivered one only reads. Both
embed jobs end by copying the model's new vectors into pgvector's side table when the database has the
extension (kb.vectors.sync_vector_index), so searches use the HNSW index without copying rows themselves.
"""

from __future__ import annotations

import structlog
from django.db import connection

from kb.embeddings import EmbeddingError
from kb.embeddings.sync import EmbedResult
from kb.embeddings.sync import embed_entries as embed_entries_now
from kb.embeddings.sync import reembed_all as reembed_all_now
from kb.jobs import EMBED_ENTRIES, REEMBED_ALL, RUN_IMPORT
from kb.models import EntryEmbedding
from kb.services import run_import_job
from kb.vectors import pgvector_available, sync_vector_index

logger = structlog.get_logger("kb")


@RUN_IMPORT.actor(max_retries=5, time_limit=30 * 60 * 1000)
def run_import(job_id: str) -> None:
    """Import the file of one KnowledgeImport row, reporting progress to Redis."""
    run_import_job(job_id=job_id)


@EMBED_ENTRIES.actor(max_retries=5, time_limit=10 * 60 * 1000)
def embed_entries(entry_ids: list[int], force: bool = False) -> None:
    """Write the current model's vectors of these entries (gone ones are skipped). A provider that
    refuses for good (bad model name) is logged, not retried: the sweeper tries again later."""
    try:
        _sync_vector_index(embed_entries_now(entry_ids=entry_ids, force=force))
    except EmbeddingError as exc:
        if exc.retryable:
            raise
        logger.error("kb.embeddings.job_failed", tenant=connection.schema_name, error=str(exc))


@REEMBED_ALL.actor(max_retries=5, time_limit=60 * 60 * 1000)
def reembed_all() -> None:
    """Every entry under the tenant's current model, with progress; then other models' vectors go."""
    try:
        _sync_vector_index(reembed_all_now())
    except EmbeddingError as exc:
        if exc.retryable:
            raise
        logger.error("kb.embeddings.job_failed", tenant=connection.schema_name, error=str(exc))


def _sync_vector_index(result: EmbedResult) -> None:
    """The job's vectors into pgvector's side table (KB_VECTOR_BACKEND auto or pgvector, extension present);
    nothing otherwise. A remote model's size is known from its stored vectors."""
    if result.model_id is None or not pgvector_available():
        return
    dims = EntryEmbedding.objects.filter(model_id=result.model_id).values_list("dims", flat=True).first()
    if dims:
        written = sync_vector_index(model_id=result.model_id, dims=dims)
        logger.info("kb.vectors.synced", tenant=connection.schema_name, model=result.model_id, rows=written)
