"""Actors of the probe app: write into whichever schema the tenant middleware entered; log."""

import logging

import dramatiq
import structlog

from tenants.tests.probe.models import Note


@dramatiq.actor(actor_name="probe.add_note", max_retries=0, queue_name="probe")
def add_note(text: str) -> None:
    Note.objects.create(text=text)


@dramatiq.actor(actor_name="probe.count_public_tenants", max_retries=0, queue_name="probe", public_schema=True)
def count_public_tenants(marker: str) -> None:
    from django.core.cache import cache

    from tenants.models import Tenant

    cache.set(f"probe:{marker}", Tenant.objects.count(), 60)


@dramatiq.actor(actor_name="probe.log_line", max_retries=0, queue_name="probe")
def log_line(text: str) -> None:
    """One structlog event and one standard-library line, each with whatever the job's log context holds."""
    structlog.get_logger("probe").info("probe.logged", text=text)
    logging.getLogger("probe.stdlib").warning("probe stdlib line %s", text)
