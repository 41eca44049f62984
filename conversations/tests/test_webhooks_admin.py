"""Webhooks in the tenant admin: an endpoint created with its secret shown once (masked afterwards), rotation,
enable/disable, a test event, the SSRF check on save, deliveries by status and the re-send of dead ones."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django_tenants.utils import schema_context

from conversations.encryption import mask
from conversations.models import AuditLogEntry
from conversations.services.webhooks import create_endpoint, emit
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from testing.accounts import staff_client
from testing.broker import flush_test_broker

pytestmark = pytest.mark.django_db
ENDPOINTS = "/t/alpha/admin/conversations/webhookendpoint/"
DELIVERIES = "/t/alpha/admin/conversations/webhookdelivery/"
Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _empty_broker():
    flush_test_broker()
    yield
    flush_test_broker()


def shown(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_an_endpoint_is_created_with_its_secret_shown_once_then_masked(admin_client, webhook_receiver):
    url = webhook_receiver().url
    response = admin_client.post(f"{ENDPOINTS}add/", {"url": url, "description": "CRM", "is_active": "on",
                                                      "events": ["ticket.created", "message.received"]}, follow=True)
    assert response.redirect_chain[-1] == (ENDPOINTS, 302)
    with schema_context("alpha"):
        endpoint = WebhookEndpoint.objects.get()
        assert AuditLogEntry.objects.filter(action="webhook_endpoint.create").count() == 1
    assert endpoint.events == ["message.received", "ticket.created"]
    assert [message for message in shown(response) if endpoint.secret in message] == [
        f"已创建 Webhook 端点。签名密钥仅此一次显示：{endpoint.secret}"]  # the admin speaks zh-hans first
    page = admin_client.get(f"{ENDPOINTS}{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page and mask(endpoint.secret) in page


def test_a_private_url_is_refused_when_saved(admin_client, private_urls_refused):
    response = admin_client.post(f"{ENDPOINTS}add/", {"url": "http://169.254.169.254/latest", "is_active": "on",
                                                      "events": ["ticket.created"]})
    assert response.status_code == 200 and "link-local" in response.content.decode()
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.count() == 0


def test_rotate_disable_enable_and_test_actions(admin_client, webhook_receiver):
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])
    old = endpoint.secret

    def act(action):
        return admin_client.post(ENDPOINTS, {"action": action, "_selected_action": [endpoint.pk]}, follow=True)

    [message] = shown(act("rotate_secrets"))
    with schema_context("alpha"):
        endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.secret in message
    act("disable")
    with schema_context("alpha"):
        endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled_reason) == (False, "由 kb-admin@alpha.test 停用")
    assert "端点已停用" in " ".join(shown(act("send_test_event")))  # the service's reason
    act("enable")
    with schema_context("alpha"):
        endpoint.refresh_from_db()
        assert (endpoint.is_active, endpoint.disabled_reason) == (True, "")
    assert re.search(r"测试事件 [0-9a-f-]{36} 已排队", " ".join(shown(act("send_test_event"))))
    with schema_context("alpha"):
        assert WebhookDelivery.objects.get().event.type == "webhook.test"
        assert sorted(AuditLogEntry.objects.filter(action__startswith="webhook_endpoint.")
                      .values_list("action", flat=True)) == [
            "webhook_endpoint.disable", "webhook_endpoint.enable", "webhook_endpoint.rotate_secret"]


def test_deliveries_by_status_and_resend_of_dead_ones(admin_client, webhook_receiver):
    with schema_context("alpha"):
        create_endpoint(url=webhook_receiver().url, events=list(EventType.values))
        emit(event=EventType.TICKET_CREATED, data={"ticket_id": 1})
        emit(event=EventType.TICKET_UPDATED, data={"ticket_id": 1})
        dead, delivered = WebhookDelivery.objects.order_by("id")
        WebhookDelivery.objects.filter(pk=dead.pk).update(status=Status.DEAD, attempts=8, last_error="HTTP 500: x")
        WebhookDelivery.objects.filter(pk=delivered.pk).update(status=Status.DELIVERED, attempts=1)
    listing = admin_client.get(DELIVERIES, {"status__exact": "dead"}).content.decode()
    assert "HTTP 500: x" in listing and f"/{delivered.pk}/change/" not in listing
    page = admin_client.get(f"{DELIVERIES}{dead.pk}/change/").content.decode()
    assert "ticket.created" in page and "&quot;ticket_id&quot;: 1" in page
    response = admin_client.post(DELIVERIES, {"action": "resend", "_selected_action": [dead.pk, delivered.pk]},
                                 follow=True)
    messages = shown(response)
    assert messages == ["正在重新发送 1 个投递。", f"已拒绝：#{delivered.pk} is delivered, not dead"]
    with schema_context("alpha"):
        assert WebhookDelivery.objects.get(pk=dead.pk).status == Status.PENDING
        assert AuditLogEntry.objects.get(action="webhook_deliveries.resend").detail["resent"] == 1


def test_the_other_tenants_admin_shows_none_of_it(admin_client, tenant_b, webhook_receiver):
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=list(EventType.values))
    beta = staff_client("beta")
    listing = beta.get("/t/beta/admin/conversations/webhookendpoint/")
    assert listing.status_code == 200 and endpoint.url not in listing.content.decode()
    assert beta.get(f"/t/beta/admin/conversations/webhookendpoint/{endpoint.pk}/change/").status_code == 302
