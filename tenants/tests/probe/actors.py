"""Actors of the probe app: write into whichever schema the tenant middleware entered."""

import dramatiq

from tenants.tests.probe.models import Note


@dramatiq.actor(actor_name="probe.add_note", max_retries=0, queue_name="probe")
def add_note(text: str) -> None:
    Note.objects.create(text=text)


@dramatiq.actor(actor_name="probe.count_public_tenants", max_retries=0, queue_name="probe", public_schema=True)
def count_public_tenants(marker: str) -> None:
    from django.core.cache import cache

    from tenants.models import Tenant

    cache.set(f"probe:{marker}", Tenant.objects.count(), 60)
