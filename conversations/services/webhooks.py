"""Webhooks out: events written with their cause, then POSTed, signed, to the tenant's endpoints.

1. `emit()` runs inside the transaction that writes the cause (a stored message, a handoff, a ticket...):
   the event row and one delivery per active subscribed endpoint are part of that transaction, so a
   rolled-back cause emits nothing and a committed one is never lost; the deliveries are enqueued on
   commit. With no endpoint subscribed to the event it costs one cache read (models.subscribed_events).
2. `deliver_webhook()` (the job) POSTs one event to one endpoint, signed (`signature()`), holding the
   delivery's row lock across the call: a second job for the same row skips it, and a delivered row is
   never POSTed again. 2xx is delivered; anything else is retried after RETRY_DELAYS_SECONDS (full
   jitter), and after MAX_ATTEMPTS the delivery is dead.
3. An endpoint whose deliveries went dead DISABLE_AFTER_DEAD times in a row is disabled with the reason;
   the operator re-enables it (admin or API) and re-sends the dead deliveries.
4. `requeue_due_deliveries()` (the scheduler) enqueues deliveries whose job was lost with the broker;
   `prune_old_events()` removes events older than RETENTION_DAYS that nothing waits to deliver.

The receiver's side of the contract (headers, signature, retries) is in docs/API.md, "Webhooks".
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.ai.llm import http_client
from conversations.jobs import enqueue_webhook_delivery
from conversations.metrics import WEBHOOK_ATTEMPTS
from conversations.models import Contact, Conversation, InboundMessage, OutboundMessage
from conversations.webhooks.models import (
    TEST_EVENT,
    EventType,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    generate_secret,
    subscribed_events,
)

logger = structlog.get_logger("conversations.webhooks")
Status = WebhookDelivery.Status
DUE = (Status.PENDING, Status.RETRYING)

# The wait before attempt 2, 3, ... 8: each an upper bound, the real wait drawn uniformly below it ("full
# jitter", so receivers coming back from an outage are not hit by every sender at once). Together at most
# ~23.6 hours from the first attempt to the last.
RETRY_DELAYS_SECONDS = (60, 300, 30 * 60, 60 * 60, 4 * 60 * 60, 8 * 60 * 60, 10 * 60 * 60)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
MIN_RETRY_SECONDS = 1.0
# Five deliveries in a row dead (each after 8 attempts over up to a day) with no 2xx in between: the
# endpoint is disabled rather than retried forever.
DISABLE_AFTER_DEAD = 5
# A receiver should answer at once and do its work afterwards.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A job may run a little before the time its row names (clocks of the processes differ slightly).
EARLY_TOLERANCE = timedelta(seconds=2)
ERROR_EXCERPT_BYTES = 200
# A due delivery still waiting this long after its time lost its job (the scheduler's sweeper).
SWEEP_AFTER_SECONDS = 60
USER_AGENT = "WeComDesk-Webhooks/1"
# Events (with their deliveries) are kept this long; a dead one older than this is no longer re-sent.
RETENTION_DAYS = 30
PRUNE_BATCH = 1000

HEADER_EVENT = "X-WecomDesk-Event"
HEADER_EVENT_ID = "X-WecomDesk-Event-Id"
HEADER_TIMESTAMP = "X-WecomDesk-Timestamp"
HEADER_SIGNATURE = "X-WecomDesk-Signature"


class WebhookRefused(ValueError):
    """The operator's request cannot be done now; the message says why."""


# -- 1. emitting --------------------------------------------------------------------------------------

def emit(*, event: str, data: dict | Callable[[], dict]) -> WebhookEvent | None:
    """Write `event` and its deliveries inside the caller's transaction; enqueue them on commit.

    `data` may be a function that builds the payload: it is called only when an endpoint subscribes,
    so a payload that needs a query costs nothing for a tenant without webhooks.
    """
    if event not in subscribed_events():
        return None
    return _emit_subscribed(event=event, data=data)


def _emit_subscribed(*, event: str, data: dict | Callable[[], dict]) -> WebhookEvent | None:
    endpoints = list(WebhookEndpoint.objects.filter(is_active=True, events__contains=[event]))
    if not endpoints:
        return None
    return _write_event(type=event, payload=data() if callable(data) else data, endpoints=endpoints)


def _write_event(*, type: str, payload: dict, endpoints: list[WebhookEndpoint]) -> WebhookEvent:
    row = WebhookEvent.objects.create(type=type, payload=payload)
    deliveries = WebhookDelivery.objects.bulk_create([WebhookDelivery(event=row, endpoint=endpoint)
                                                     for endpoint in endpoints])
    for delivery in deliveries:
        enqueue_webhook_delivery(delivery.pk)
    return row


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def contact_data(contact: Contact) -> dict:
    return {"id": contact.pk, "external_id": contact.external_id, "open_kfid": contact.open_kfid,
            "app_id": contact.app_id}


def message_received(inbound: InboundMessage) -> dict:
    """A customer message as stored (before it has a contact row or a transcript line)."""
    return {"inbound_id": inbound.pk, "trace_id": str(inbound.trace_id), "app_id": inbound.app_id,
            "contact": {"external_id": inbound.sender, "open_kfid": inbound.open_kfid},
            "msg_type": inbound.msg_type, "text": inbound.content, "sent_at": _iso(inbound.sent_at),
            "received_at": _iso(inbound.received_at)}


def message_answered(row: OutboundMessage) -> dict:
    """The last part of a reply reached WeCom: the whole reply, who wrote it, and what it answers."""
    text = row.message.text if row.message_id else row.content
    return {"message_id": row.message_id, "conversation_id": row.conversation_id, "contact": contact_data(row.contact),
            "author": row.author, "text": text, "parts": row.parts_total, "in_reply_to": row.inbound_id,
            "trace_id": str(row.trace_id) if row.trace_id else None, "sent_at": _iso(row.sent_at)}


def delivery_dead(row: OutboundMessage) -> dict:
    """An outbound ledger row went dead (re-send it with POST /api/dead-letters/resend/)."""
    return {"outbound_id": row.pk, "message_id": row.message_id, "conversation_id": row.conversation_id,
            "contact": contact_data(row.contact), "author": row.author, "text": row.content, "part": row.part,
            "parts_total": row.parts_total, "errcode": row.last_errcode, "error": row.last_error,
            "attempts": row.attempts, "trace_id": str(row.trace_id) if row.trace_id else None}


def conversation_data(conversation: Conversation) -> dict:
    return {"conversation_id": conversation.pk, "contact": contact_data(conversation.contact),
            "state": conversation.state, "agent_id": conversation.agent_id,
            "started_at": _iso(conversation.started_at), "closed_at": _iso(conversation.closed_at)}


def emit_outbound_outcomes(rows: list[OutboundMessage]) -> None:
    """message.answered for replies whose last part was sent; delivery.dead for rows that went dead.
    One look at the subscriptions for the whole round of sends, not one per row."""
    subscribed = subscribed_events()
    if EventType.MESSAGE_ANSWERED not in subscribed and EventType.DELIVERY_DEAD not in subscribed:
        return
    for row in rows:
        if row.status == OutboundMessage.Status.SENT and row.part == row.parts_total:
            if EventType.MESSAGE_ANSWERED in subscribed:
                _emit_subscribed(event=EventType.MESSAGE_ANSWERED, data=lambda row=row: message_answered(row))
        elif row.status == OutboundMessage.Status.DEAD and EventType.DELIVERY_DEAD in subscribed:
            _emit_subscribed(event=EventType.DELIVERY_DEAD, data=lambda row=row: delivery_dead(row))


# -- 2. delivering ------------------------------------------------------------------------------------

def envelope_body(event: WebhookEvent) -> bytes:
    """The POST body: the same bytes for every attempt of the event (only the timestamp header changes)."""
    envelope = {"id": str(event.event_id), "type": event.type, "created_at": _iso(event.created_at),
                "tenant": connection.schema_name, "data": event.payload}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the endpoint's secret."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True, kw_only=True)
class AttemptResult:
    status_code: int | None  # None: no HTTP answer (refused, timeout, connection error)
    error: str  # "" when delivered

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post_event(*, endpoint: WebhookEndpoint, event: WebhookEvent) -> AttemptResult:
    """One signed POST through the guarded client: no redirect followed, every new connection to a checked
    address (tenants/outbound_urls.py), so a URL re-pointed at a private address after it was saved fails."""
    body = envelope_body(event)
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               HEADER_EVENT: event.type, HEADER_EVENT_ID: str(event.event_id), HEADER_TIMESTAMP: timestamp,
               HEADER_SIGNATURE: signature(secret=endpoint.secret, timestamp=timestamp, body=body)}
    try:
        with http_client().stream("POST", endpoint.url, content=body, headers=headers, timeout=TIMEOUT) as response:
            if 200 <= response.status_code < 300:
                return AttemptResult(status_code=response.status_code, error="")
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= ERROR_EXCERPT_BYTES:
                    break
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return AttemptResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:300])
    shown = excerpt[:ERROR_EXCERPT_BYTES].decode(errors="replace").strip()
    if 300 <= response.status_code < 400:
        shown = f"redirect to {response.headers.get('location', '?')} (redirects are not followed)"
    return AttemptResult(status_code=response.status_code, error=f"HTTP {response.status_code}: {shown}"[:300])


def deliver_webhook(*, delivery_id: int) -> None:
    """Attempt one delivery that is due. Safe to run twice: the row stays locked across the POST, a second
    job skips a locked row, and only a pending or retrying row that is due is POSTed."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update(of=("self",), skip_locked=True)
                    .select_related("event", "endpoint").filter(pk=delivery_id).first())
        if delivery is None or delivery.status not in DUE:
            return
        if delivery.next_attempt_at > timezone.now() + EARLY_TOLERANCE:
            return  # a duplicate job; the one for the row's own time comes later (or the sweeper does)
        endpoint = delivery.endpoint
        if not endpoint.is_active:
            _finish(delivery, Status.DEAD, error=f"the endpoint is disabled: {endpoint.disabled_reason}"[:300])
            return
        result = post_event(endpoint=endpoint, event=delivery.event)
        delivery.attempts += 1
        delivery.last_status_code = result.status_code
        log = logger.bind(tenant=connection.schema_name, delivery=delivery.pk, endpoint=endpoint.pk,
                          event=delivery.event.type, attempt=delivery.attempts, status_code=result.status_code)
        if result.delivered:
            WEBHOOK_ATTEMPTS.labels(tenant=connection.schema_name, outcome="delivered").inc()
            log.info("webhook.delivered")
            _finish(delivery, Status.DELIVERED, error="")
            WebhookEndpoint.objects.filter(pk=endpoint.pk).exclude(consecutive_failures=0, consecutive_dead=0) \
                .update(consecutive_failures=0, consecutive_dead=0)
            return
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
        if delivery.attempts >= MAX_ATTEMPTS:
            WEBHOOK_ATTEMPTS.labels(tenant=connection.schema_name, outcome="dead").inc()
            log.warning("webhook.dead", error=result.error)
            _finish(delivery, Status.DEAD, error=result.error)
            _count_dead(endpoint.pk)
            return
        delay = retry_delay(delivery.attempts)
        WEBHOOK_ATTEMPTS.labels(tenant=connection.schema_name, outcome="retrying").inc()
        log.info("webhook.retrying", error=result.error, retry_in=round(delay, 1))
        delivery.status = Status.RETRYING
        delivery.last_error = result.error
        delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        delivery.save(update_fields=["status", "attempts", "last_status_code", "last_error", "next_attempt_at",
                                     "updated_at"])
        enqueue_webhook_delivery(delivery.pk, delay_seconds=delay)


def retry_delay(failed_attempts: int) -> float:
    """Seconds before the next attempt after `failed_attempts` failures: full jitter under the schedule's cap."""
    cap = RETRY_DELAYS_SECONDS[min(failed_attempts, len(RETRY_DELAYS_SECONDS)) - 1]
    return max(random.uniform(0, cap), MIN_RETRY_SECONDS)  # noqa: S311 - jitter, not security


def _finish(delivery: WebhookDelivery, status: WebhookDelivery.Status, *, error: str) -> None:
    delivery.status = status
    delivery.last_error = error
    if status == Status.DELIVERED:
        delivery.delivered_at = timezone.now()
    delivery.save(update_fields=["status", "attempts", "last_status_code", "last_error", "delivered_at",
                                 "updated_at"])


def _count_dead(endpoint_id: int) -> None:
    """One more delivery dead in a row; the DISABLE_AFTER_DEAD-th disables the endpoint."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_id)
    endpoint.consecutive_dead += 1
    endpoint.save(update_fields=["consecutive_dead", "updated_at"])
    if endpoint.is_active and endpoint.consecutive_dead >= DISABLE_AFTER_DEAD:
        last_error = (WebhookDelivery.objects.filter(endpoint=endpoint, status=Status.DEAD).order_by("-id")
                      .values_list("last_error", flat=True).first())
        disable_endpoint(endpoint=endpoint, reason=f"{endpoint.consecutive_dead} deliveries in a row failed every "
                                                   f"attempt (the last: {last_error})")


# -- 3. the operator's actions (admin and API) ---------------------------------------------------------

def create_endpoint(*, url: str, events: list[str], description: str = "", is_active: bool = True) -> WebhookEndpoint:
    """A new endpoint with a generated secret (the caller shows `endpoint.secret` to the operator once)."""
    endpoint = WebhookEndpoint(url=url, events=sorted(set(events)), description=description, is_active=is_active)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def update_endpoint(*, endpoint: WebhookEndpoint, **changes) -> WebhookEndpoint:
    """Change url, description, events or is_active; turning it on again clears why it was disabled."""
    with transaction.atomic():
        was_active = endpoint.is_active
        for name, value in changes.items():
            setattr(endpoint, name, sorted(set(value)) if name == "events" else value)
        endpoint.full_clean()
        if endpoint.is_active and not was_active:
            _clear_disabled(endpoint)
        elif not endpoint.is_active and was_active:
            endpoint.disabled_reason, endpoint.disabled_at = "disabled by an operator", timezone.now()
        endpoint.save()
    return endpoint


def enable_endpoint(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Deliver to it again; its dead deliveries stay dead until re-sent."""
    return update_endpoint(endpoint=endpoint, is_active=True)


def disable_endpoint(*, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    """No new deliveries; waiting ones go dead when their job runs (re-send them after enabling it)."""
    endpoint.is_active = False
    endpoint.disabled_reason = reason[:300]
    endpoint.disabled_at = timezone.now()
    endpoint.save(update_fields=["is_active", "disabled_reason", "disabled_at", "updated_at"])
    logger.warning("webhook.endpoint_disabled", tenant=connection.schema_name, endpoint=endpoint.pk,
                   reason=endpoint.disabled_reason)
    return endpoint


def _clear_disabled(endpoint: WebhookEndpoint) -> None:
    endpoint.disabled_reason, endpoint.disabled_at = "", None
    endpoint.consecutive_failures = endpoint.consecutive_dead = 0


def rotate_secret(*, endpoint: WebhookEndpoint) -> str:
    """A new signing secret, used from the next attempt on (the caller shows it to the operator)."""
    endpoint.secret = generate_secret()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint.secret


def delete_endpoint(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its deliveries go with it (events stay: other endpoints may have them)


def send_test_event(*, endpoint: WebhookEndpoint) -> WebhookEvent:
    """A `webhook.test` event to this endpoint only, whatever it subscribes to."""
    if not endpoint.is_active:
        raise WebhookRefused(_("The endpoint is disabled: enable it first."))
    with transaction.atomic():
        return _write_event(type=TEST_EVENT, endpoints=[endpoint], payload={
            "endpoint_id": endpoint.pk, "message": "A test event sent from WeCom Desk."})


def resend_dead_deliveries(*, ids) -> tuple[int, list[str]]:
    """Attempt dead deliveries again from the first attempt (same event id, so receivers can deduplicate);
    refuse rows that are not dead (a delivered event is never sent again) or whose endpoint is disabled."""
    resent, refused = 0, []
    with transaction.atomic():
        for delivery in (WebhookDelivery.objects.select_for_update(of=("self",)).select_related("endpoint")
                         .filter(pk__in=ids).order_by("id")):
            if delivery.status != Status.DEAD:
                refused.append(f"#{delivery.pk} is {delivery.status}, not dead")
                continue
            if not delivery.endpoint.is_active:
                refused.append(f"#{delivery.pk}: its endpoint is disabled; enable it first")
                continue
            delivery.status = Status.PENDING
            delivery.attempts = 0
            delivery.next_attempt_at = timezone.now()
            delivery.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
            enqueue_webhook_delivery(delivery.pk)
            resent += 1
    return resent, refused


# -- 4. the sweeper -----------------------------------------------------------------------------------

def requeue_due_deliveries(*, overdue_seconds: int, limit: int = 500) -> int:
    """Deliveries due for longer than `overdue_seconds` lost their job (broker loss): enqueue them again.
    Their time is moved to now, so a row is swept at most once per `overdue_seconds`."""
    now = timezone.now()
    with transaction.atomic():
        overdue = list(WebhookDelivery.objects.select_for_update(skip_locked=True)
                       .filter(status__in=DUE, next_attempt_at__lt=now - timedelta(seconds=overdue_seconds))
                       .order_by("next_attempt_at")[:limit])
        for delivery in overdue:
            delivery.next_attempt_at = now
            enqueue_webhook_delivery(delivery.pk)
        WebhookDelivery.objects.bulk_update(overdue, ["next_attempt_at"])
    return len(overdue)


def prune_old_events(*, older_than_days: int = RETENTION_DAYS) -> int:
    """Delete events older than `older_than_days` (with their deliveries) whose every delivery is done:
    delivered or dead. A delivery still pending or retrying keeps its event. In batches, so one run never
    holds many rows locked."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    old = (WebhookEvent.objects.filter(created_at__lt=cutoff)
           .exclude(deliveries__status__in=DUE).order_by("id").values_list("pk", flat=True)[:PRUNE_BATCH])
    deleted, _by_model = WebhookEvent.objects.filter(pk__in=list(old)).delete()
    return deleted
