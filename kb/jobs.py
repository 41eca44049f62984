"""The knowledge base's jobs, enqueued here only (on commit, ids only); kb/actors.py runs them."""

from __future__ import annotations

from collections.abc import Sequence

from tenants.dramatiq import Job

RUN_IMPORT = Job("kb.run_import", "kb")
EMBED_ENTRIES = Job("kb.embed_entries", "kb")
REEMBED_ALL = Job("kb.reembed_all", "kb")


def enqueue_import(job_id: str) -> None:
    """Import the file of one KnowledgeImport row in a worker."""
    RUN_IMPORT.send_on_commit(job_id)


def enqueue_embed_entries(entry_ids: Sequence[int], *, force: bool = False) -> None:
    """Embed these entries (ids) under the tenant's current model; `force`: even texts already embedded."""
    EMBED_ENTRIES.send_on_commit([int(pk) for pk in entry_ids], force)


def enqueue_reembed_all() -> None:
    """Embed every entry under the tenant's current model, then drop other models' vectors."""
    REEMBED_ALL.send_on_commit()
