"""Periodic jobs of the knowledge base (run per tenant by `manage.py scheduler`)."""

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
