"""Dramatiq actors of the knowledge base: thin adapters over kb.services and kb.embeddings.sync.

Redelivery is harmless: a job that is no longer pending is left alone, and an import commits
its entries and its outcome in one transaction, so a crash mid-way leaves nothing behind.
An embed job skips texts whose vectors are already written, so a redelivered one only reads.
"""

from __future__ import annotations

import structlog
from django.db import connection

from kb.embeddings import EmbeddingError
from kb.embeddings.sync import embed_entries as embed_entries_now
from kb.embeddings.sync import reembed_all as reembed_all_now
from kb.jobs import EMBED_ENTRIES, REEMBED_ALL, RUN_IMPORT
from kb.services import run_import_job

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
        embed_entries_now(entry_ids=entry_ids, force=force)
    except EmbeddingError as exc:
        if exc.retryable:
            raise
        logger.error("kb.embeddings.job_failed", tenant=connection.schema_name, error=str(exc))


@REEMBED_ALL.actor(max_retries=5, time_limit=60 * 60 * 1000)
def reembed_all() -> None:
    """Every entry under the tenant's current model, with progress; then other models' vectors go."""
    try:
        reembed_all_now()
    except EmbeddingError as exc:
        if exc.retryable:
            raise
        logger.error("kb.embeddings.job_failed", tenant=connection.schema_name, error=str(exc))
