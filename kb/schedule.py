"""Periodic jobs of the knowledge base (run per tenant by `manage.py scheduler`)."""

from kb.embeddings.sync import sweep_embeddings as sweep_entry_embeddings
from kb.services import requeue_stale_imports
from tenants.scheduling import periodic

# An import job still pending this long after it was sent was lost (broker flushed, worker
# killed before committing): send it again. A duplicate of a running job waits for it and
# then finds it finished.
STALE_IMPORT_SECONDS = 300


@periodic(seconds=60)
def sweep_stale_imports() -> None:
    """Invariant 4: the broker is not the source of truth."""
    requeue_stale_imports(older_than_seconds=STALE_IMPORT_SECONDS)


# An entry changed less than this long ago has its embed job on the way (sent on commit).
STALE_EMBEDDING_SECONDS = 120


@periodic(seconds=120)
def sweep_embeddings() -> None:
    """Invariant 4: entries whose vectors are missing or older than their text get an embed job again."""
    sweep_entry_embeddings(older_than_seconds=STALE_EMBEDDING_SECONDS)
