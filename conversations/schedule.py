"""Periodic jobs of the message path (run per tenant by `manage.py scheduler`)."""

from django.conf import settings

from conversations.jobs import enqueue_delivery
from conversations.services.inbound import requeue_stale_inbound
from conversations.services.media import requeue_missing_media
from conversations.services.outbound import contacts_with_stalled_outbound
from tenants.scheduling import periodic


@periodic(seconds=10)
def sweep_stale_inbound() -> None:
    """Invariant 4: the broker is not the source of truth; re-enqueue work stuck past its deadline."""
    requeue_stale_inbound(older_than_seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)


@periodic(seconds=10)
def sweep_stalled_outbound() -> None:
    """Outbound rows nobody is delivering (their job was lost with the broker) get a delivery job."""
    for contact_id in contacts_with_stalled_outbound(older_than_seconds=settings.OUTBOUND_SENDING_TIMEOUT_SECONDS):
        enqueue_delivery(contact_id)


@periodic(seconds=300)
def sweep_missing_media() -> None:
    """Customers' media whose download job was lost get a job again (invariant 4)."""
    requeue_missing_media(older_than_seconds=settings.MEDIA_SWEEP_AFTER_SECONDS)
