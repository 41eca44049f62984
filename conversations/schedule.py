"""Periodic jobs of the message path (run per tenant by `manage.py scheduler`), and its health gauges."""

from django.conf import settings

from conversations.ai.breaker import STATE_CLOSED, breaker_state
from conversations.health import message_path_health
from conversations.jobs import enqueue_delivery, enqueue_gap_collection, enqueue_message_indexing
from conversations.metrics import BREAKER_OPEN, INBOUND_OLDEST_WAITING, INBOUND_WAITING, OUTBOUND_ROWS
from conversations.search.indexing import has_unindexed_messages
from conversations.services.inbound import requeue_stale_inbound
from conversations.services.knowledge_gaps import has_unscanned_messages
from conversations.services.media import requeue_missing_media
from conversations.services.outbound import contacts_with_stalled_outbound
from conversations.services.profiles import sweep_due_profiles
from conversations.services.webhooks import SWEEP_AFTER_SECONDS, prune_old_events, requeue_due_deliveries
from tenants.scheduling import collect_for_each_tenant, periodic


@periodic(seconds=10)
def sweep_stale_inbound() -> None:
    """Invariant 4: the broker is not the source of truth; re-enqueue work stuck past its deadline."""
    requeue_stale_inbound(older_than_seconds=settings.INBOUND_SWEEP_AFTER_SECONDS)


@periodic(seconds=10)
def sweep_stalled_outbound() -> None:
    """Outbound rows nobody is delivering (their job was lost with the broker) get a delivery job."""
    for contact_id in contacts_with_stalled_outbound(older_than_seconds=settings.OUTBOUND_SENDING_TIMEOUT_SECONDS):
        enqueue_delivery(contact_id)


@periodic(seconds=30)
def sweep_due_webhooks() -> None:
    """Webhook deliveries whose job was lost with the broker get a job again (invariant 4)."""
    requeue_due_deliveries(overdue_seconds=SWEEP_AFTER_SECONDS)


@periodic(seconds=3600)
def prune_webhook_events() -> None:
    """Webhook events are kept RETENTION_DAYS (docs/API.md, "Webhooks"); older ones nothing waits for go."""
    prune_old_events()


@periodic(seconds=300)
def sweep_missing_media() -> None:
    """Customers' media whose download job was lost get a job again (invariant 4)."""
    requeue_missing_media(older_than_seconds=settings.MEDIA_SWEEP_AFTER_SECONDS)


@periodic(seconds=60)
def refresh_due_profiles() -> None:
    """Customers with humans get their WeCom profile (name, avatar) while WeCom still gives it (48 hours)."""
    sweep_due_profiles()


@periodic(seconds=60)
def collect_knowledge_gaps() -> None:
    """Unanswered questions are grouped by a worker (it may call the embeddings endpoint), and only when
    messages were processed since the last collection."""
    if has_unscanned_messages():
        enqueue_gap_collection()


@periodic(seconds=30)
def index_messages_for_search() -> None:
    """The search index follows the transcript a minute behind (conversations/search/indexing.py); the search
    matches newer messages by substring meanwhile. Sent only when a settled message waits."""
    if has_unindexed_messages():
        enqueue_message_indexing()


@periodic(seconds=settings.METRICS_HEALTH_SECONDS, per_tenant=False)
def measure_message_path() -> None:
    """The message path's health gauges for every tenant at once (docs/OBSERVABILITY.md)."""
    health = collect_for_each_tenant(message_path_health)
    INBOUND_WAITING.publish({schema: h.inbound_waiting for schema, h in health.items()})
    INBOUND_OLDEST_WAITING.publish({schema: h.inbound_oldest_waiting_seconds for schema, h in health.items()})
    OUTBOUND_ROWS.publish({(schema, state): count for schema, h in health.items()
                           for state, count in h.outbound_rows.items()})
    # From Redis, where every process keeps the breaker; a tenant whose state Redis cannot tell is left out.
    states = {schema: breaker_state(schema)["state"] for schema in health}
    BREAKER_OPEN.publish({schema: 0 if state == STATE_CLOSED else 1
                          for schema, state in states.items() if state != "unknown"})
