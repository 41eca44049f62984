"""Periodic jobs of the inbound path (run per tenant by `manage.py scheduler`)."""

from django.conf import settings

from conversations.services.inbound import requeue_stale_inbound
from tenants.scheduling import periodic


@periodic(seconds=10)
def sweep_stale_inbound() -> None:
    """Invariant 4: the broker is not the source of truth; re-enqueue work stuck past its deadline."""
    requeue_stale_inbound(older_than_seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)
