"""Platform-wide periodic jobs of the tenancy layer: the Dramatiq queue gauges (docs/OBSERVABILITY.md)."""

from django.conf import settings

from tenants.metrics import HealthGauge
from tenants.queues import queue_lengths
from tenants.scheduling import periodic

QUEUE_LENGTH = HealthGauge("wecomdesk_dramatiq_queue_length",
                           "Messages of a Dramatiq queue not yet acknowledged (waiting or being worked on)",
                           ["queue"])
DELAY_QUEUE_LENGTH = HealthGauge("wecomdesk_dramatiq_delay_queue_length",
                                 "Messages waiting in a Dramatiq queue's delay queue", ["queue"])


@periodic(seconds=settings.METRICS_HEALTH_SECONDS, per_tenant=False)
def measure_queues() -> None:
    lengths = queue_lengths()
    if lengths is None:  # the broker cannot be read: no figures rather than stale ones
        QUEUE_LENGTH.clear()
        DELAY_QUEUE_LENGTH.clear()
        return
    QUEUE_LENGTH.publish({length.queue: length.waiting for length in lengths})
    DELAY_QUEUE_LENGTH.publish({length.queue: length.delayed for length in lengths})
