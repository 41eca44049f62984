"""Webhooks out: the tenant's endpoints, the events we tell them about, and one delivery per event and endpoint.

Tenant schema. Lives in the `conversations` app (imported at the end of conversations/models.py), so its
tables are `conversations_webhookendpoint`, `..._webhookevent` and `..._webhookdelivery`. The writes are in
conversations/services/webhooks.py; the contract with receivers is in docs/API.md ("Webhooks").
"""

from __future__ import annotations

import json
import secrets
import uuid
from urllib.parse import urlsplit

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from redis.exceptions import RedisError

from conversations.encryption import EncryptedTextField
from tenants.keys import redis_key
from tenants.outbound_urls import OutboundURLRefused, check_outbound_url
from tenants.redis import redis_client

SECRET_PREFIX = "whsec_"
# What the active endpoints subscribe to, kept in Redis (per tenant: `<schema>:webhooks:subscribed`, a JSON list) so
# that the message path pays one GET, not a query, per event while the tenant has no endpoint (issue 16). A plain
# GET: Django's cache (key function, pickle) cost the callback view 5.7% of its CPU for the same read.
SUBSCRIPTIONS_CACHE_PARTS = ("webhooks", "subscribed")
# Forgotten whenever an endpoint changes; the expiry only bounds a lost race between a reader that queried
# just before a change and the change's own forgetting.
SUBSCRIPTIONS_CACHE_SECONDS = 60


class EventType(models.TextChoices):
    """What an endpoint may subscribe to (docs/API.md lists each payload)."""

    MESSAGE_RECEIVED = "message.received", _("a customer message was received")
    MESSAGE_ANSWERED = "message.answered", _("a reply reached WeCom")
    CONVERSATION_HANDED_OFF = "conversation.handed_off", _("a conversation was handed to humans")
    CONVERSATION_CLOSED = "conversation.closed", _("a conversation was closed")
    TICKET_CREATED = "ticket.created", _("a ticket was opened")
    TICKET_UPDATED = "ticket.updated", _("a ticket changed")
    DELIVERY_DEAD = "delivery.dead", _("an outbound message went dead")


# Sent to one endpoint on the operator's request ("send a test event"), whatever it subscribes to.
TEST_EVENT = "webhook.test"


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def webhook_url_problems(url: str) -> list[str]:
    """Why `url` may not be a webhook endpoint (empty when it may): http(s), no credentials, SSRF policy."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [str(_("Use an http:// or https:// URL with a host name."))]
    if parts.username or parts.password:
        return [str(_("No user name or password in the URL: verify our signature instead."))]
    try:  # SSRF: not a private, loopback or link-local address (unless the platform allows it)
        check_outbound_url(url)
    except OutboundURLRefused as exc:
        return [str(exc)]
    return []


class WebhookEndpoint(models.Model):
    """A URL of the tenant's integrator that receives the events it subscribes to, signed with `secret`."""

    url = models.URLField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=40, choices=EventType.choices), default=list,
                        verbose_name=_("events"))
    # Encrypted, not hashed: we need the secret itself to sign every delivery.
    secret = EncryptedTextField(_("signing secret"), default=generate_secret, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    disabled_reason = models.CharField(_("why it was disabled"), max_length=300, blank=True)
    disabled_at = models.DateTimeField(_("disabled at"), null=True, blank=True)
    # Failed attempts in a row (any delivery), and deliveries that went dead in a row: a 2xx resets both.
    consecutive_failures = models.PositiveIntegerField(_("failed attempts in a row"), default=0)
    consecutive_dead = models.PositiveIntegerField(_("dead deliveries in a row"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.description or self.url

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        forget_subscriptions()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        forget_subscriptions()
        return result

    def clean(self) -> None:
        self.url = (self.url or "").strip()
        problems = webhook_url_problems(self.url)
        if problems:
            raise ValidationError({"url": problems})
        unknown = set(self.events) - set(EventType.values)
        if unknown:
            raise ValidationError({"events": [f"Unknown events: {', '.join(sorted(unknown))}."]})


class WebhookEvent(models.Model):
    """Something that happened, written in the same transaction as its cause; `event_id` is what
    receivers deduplicate on (it stays the same across retries and re-sends)."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)  # pruned by age

    class Meta:
        ordering = ["id"]
        verbose_name = _("webhook event")

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: attempted until a 2xx, with backoff, then dead (re-sendable)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        RETRYING = "retrying", _("retrying")
        DELIVERED = "delivered", _("delivered")
        DEAD = "dead", _("dead letter")

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    last_status_code = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="one_delivery_per_event_endpoint")]
        indexes = [
            # The sweeper: due rows only (delivered and dead rows are most of the table and never swept).
            models.Index(fields=["next_attempt_at"], name="webhook_delivery_due",
                         condition=models.Q(status__in=["pending", "retrying"])),
            models.Index(fields=["endpoint", "status", "id"], name="webhook_delivery_endpoint"),
            models.Index(fields=["status", "id"], name="webhook_delivery_status"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.status})"


def subscribed_events() -> frozenset[str]:
    """The event types at least one active endpoint of the current tenant subscribes to."""
    key = redis_key(*SUBSCRIPTIONS_CACHE_PARTS)
    try:
        cached = redis_client().get(key)
    except RedisError:  # Redis may be lost at any moment: the database answers instead
        cached = None
    if cached is not None:
        return frozenset(json.loads(cached))
    events = {event for row in WebhookEndpoint.objects.filter(is_active=True).values_list("events", flat=True)
              for event in row}
    try:
        redis_client().set(key, json.dumps(sorted(events)), ex=SUBSCRIPTIONS_CACHE_SECONDS)
    except RedisError:
        pass
    return frozenset(events)


def forget_subscriptions() -> None:
    """An endpoint changed: forget the cached subscriptions now (this transaction's own emits see the
    change) and again on commit (another process may have cached the old state in between)."""
    key = redis_key(*SUBSCRIPTIONS_CACHE_PARTS)  # this tenant's, whatever schema is current at the commit
    _forget(key)
    transaction.on_commit(lambda: _forget(key), robust=True)


def _forget(key: str) -> None:
    try:
        redis_client().delete(key)
    except RedisError:
        pass
