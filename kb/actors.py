"""Dramatiq actors of the knowledge base: thin adapters over kb.services.

Redelivery is harmless: a job that is no longer pending is left alone, and an import commits
its entries and its outcome in one transaction, so a crash mid-way leaves nothing behind.
"""

from __future__ import annotations

from kb.jobs import RUN_IMPORT
from kb.services import run_import_job


@RUN_IMPORT.actor(max_retries=5, time_limit=30 * 60 * 1000)
def run_import(job_id: str) -> None:
    """Import the file of one KnowledgeImport row, reporting progress to Redis."""
    run_import_job(job_id=job_id)
