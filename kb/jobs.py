"""The knowledge base's jobs, enqueued here only (on commit, ids only); kb/actors.py runs them."""

from __future__ import annotations

from tenants.dramatiq import Job

RUN_IMPORT = Job("kb.run_import", "kb")


def enqueue_import(job_id: str) -> None:
    """Import the file of one KnowledgeImport row in a worker."""
    RUN_IMPORT.send_on_commit(job_id)
