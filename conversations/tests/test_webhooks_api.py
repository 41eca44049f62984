"""The webhooks API: endpoints (secret on create and rotation only), deliveries with filters, re-send of
dead ones, the scope, and a second tenant that sees and changes nothing of the first."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.services.api_keys import create_api_key
from conversations.services.webhooks import create_endpoint, emit
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint
from testing.accounts import api_client
from testing.broker import flush_test_broker

pytestmark = pytest.mark.django_db
BASE = "/t/alpha/api"
Status = WebhookDelivery.Status


@pytest.fixture(autouse=True)
def _empty_broker():
    flush_test_broker()
    yield
    flush_test_broker()


def test_create_returns_the_secret_once_and_reads_never_show_it(api_keys, webhook_receiver):
    api = api_client(api_keys["alpha"])
    url = webhook_receiver().url
    created = api.post(f"{BASE}/webhook-endpoints/", {"url": url, "events": ["ticket.created", "message.received",
                                                                             "ticket.created"],
                                                       "description": "CRM"}, content_type="application/json")
    assert created.status_code == 201, created.json()
    body = created.json()
    with schema_context("alpha"):
        endpoint = WebhookEndpoint.objects.get()
    assert body["secret"] == endpoint.secret and body["secret"].startswith("whsec_")
    assert body["events"] == ["message.received", "ticket.created"] and body["is_active"] is True
    listed = api.get(f"{BASE}/webhook-endpoints/").json()
    assert [item["id"] for item in listed["results"]] == [endpoint.pk]
    assert "secret" not in listed["results"][0]
    assert "secret" not in api.get(f"{BASE}/webhook-endpoints/{endpoint.pk}/").json()
    rotated = api.post(f"{BASE}/webhook-endpoints/{endpoint.pk}/rotate-secret/", content_type="application/json").json()
    with schema_context("alpha"):
        assert rotated == {"secret": WebhookEndpoint.objects.get().secret} and rotated["secret"] != body["secret"]


def test_invalid_endpoints_are_400_with_every_problem(api_keys, private_urls_refused):
    api = api_client(api_keys["alpha"])
    response = api.post(f"{BASE}/webhook-endpoints/", {"url": "http://127.0.0.1/hooks", "events": ["nope"]},
                        content_type="application/json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "loopback" in errors["url"][0] and set(errors) == {"url", "events"}
    assert api.post(f"{BASE}/webhook-endpoints/", {"url": "https://example.com/hooks", "events": []},
                    content_type="application/json").json()["errors"]["events"]
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.count() == 0


def test_update_disable_and_re_enable_through_is_active(api_keys, webhook_receiver):
    api = api_client(api_keys["alpha"])
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])
        endpoint.is_active, endpoint.disabled_reason, endpoint.consecutive_dead = False, "5 deliveries ...", 5
        endpoint.save()
    response = api.patch(f"{BASE}/webhook-endpoints/{endpoint.pk}/", {"is_active": True, "description": "new"},
                         content_type="application/json")
    assert response.status_code == 200, response.json()
    assert (response.json()["is_active"], response.json()["disabled_reason"], response.json()["consecutive_dead"],
            response.json()["description"]) == (True, "", 0, "new")
    response = api.patch(f"{BASE}/webhook-endpoints/{endpoint.pk}/", {"is_active": False},
                         content_type="application/json")
    assert response.json()["disabled_reason"] == "disabled by an operator"
    test = api.post(f"{BASE}/webhook-endpoints/{endpoint.pk}/test/", content_type="application/json")
    assert (test.status_code, test.json()["code"]) == (409, "endpoint_disabled")
    assert api.delete(f"{BASE}/webhook-endpoints/{endpoint.pk}/").status_code == 204
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.count() == 0


def test_a_test_event_is_queued_for_the_endpoint(api_keys, webhook_receiver):
    api = api_client(api_keys["alpha"])
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])
    response = api.post(f"{BASE}/webhook-endpoints/{endpoint.pk}/test/", content_type="application/json")
    assert response.status_code == 202
    delivery = api.get(f"{BASE}/webhook-deliveries/{response.json()['delivery_id']}/").json()
    assert (delivery["event_type"], delivery["event_id"], delivery["status"], delivery["endpoint"]) == (
        "webhook.test", response.json()["event_id"], "pending", endpoint.pk)
    assert delivery["payload"]["endpoint_id"] == endpoint.pk


def test_deliveries_by_status_endpoint_type_and_time_and_resend_of_dead_ones(api_keys, webhook_receiver):
    api = api_client(api_keys["alpha"])
    with schema_context("alpha"):
        first = create_endpoint(url=webhook_receiver().url, events=list(EventType.values))
        second = create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])
        emit(event=EventType.TICKET_CREATED, data={"ticket_id": 1})
        emit(event=EventType.MESSAGE_RECEIVED, data={"inbound_id": 1})
        dead = WebhookDelivery.objects.get(endpoint=first, event__type="ticket.created")
        delivered = WebhookDelivery.objects.get(endpoint=first, event__type="message.received")
        WebhookDelivery.objects.filter(pk=dead.pk).update(status=Status.DEAD, attempts=8, last_error="HTTP 500: no")
        WebhookDelivery.objects.filter(pk=delivered.pk).update(status=Status.DELIVERED, attempts=1,
                                                                delivered_at=timezone.now())

    def ids(params):
        response = api.get(f"{BASE}/webhook-deliveries/", params)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert ids({"status": "dead"}) == [dead.pk]
    with schema_context("alpha"):
        second_ids = list(WebhookDelivery.objects.filter(endpoint=second).values_list("pk", flat=True))
    assert ids({"endpoint": second.pk}) == second_ids and len(second_ids) == 1
    assert sorted(ids({"event_type": "message.received"})) == [delivered.pk]
    assert ids({"created_after": "2000-01-01T00:00:00+08:00", "ordering": "id"}) == sorted(ids({}))
    assert ids({"created_before": "2000-01-01T00:00:00+08:00"}) == []
    assert api.get(f"{BASE}/webhook-deliveries/", {"status": "lost"}).status_code == 400
    assert api.get(f"{BASE}/webhook-deliveries/", {"endpoint": "x"}).status_code == 400

    refused = api.post(f"{BASE}/webhook-deliveries/resend/", {"ids": [delivered.pk, 999999]},
                       content_type="application/json")
    assert (refused.status_code, refused.json()) == (409, {"resent": 0, "refused": [
        f"#{delivered.pk} is delivered, not dead", "#999999 not found"]})
    resent = api.post(f"{BASE}/webhook-deliveries/resend/", {"ids": [dead.pk]}, content_type="application/json")
    assert (resent.status_code, resent.json()) == (200, {"resent": 1, "refused": []})
    with schema_context("alpha"):
        dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (Status.PENDING, 0)


def test_a_second_tenant_sees_and_changes_nothing(api_keys, webhook_receiver):
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=list(EventType.values))
        emit(event=EventType.TICKET_CREATED, data={})
        delivery = WebhookDelivery.objects.get()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=Status.DEAD)
    beta = api_client(api_keys["beta"])
    assert beta.get("/t/beta/api/webhook-endpoints/").json()["count"] == 0
    assert beta.get("/t/beta/api/webhook-deliveries/").json()["count"] == 0
    assert beta.get(f"/t/beta/api/webhook-endpoints/{endpoint.pk}/").status_code == 404
    assert beta.get(f"/t/beta/api/webhook-deliveries/{delivery.pk}/").status_code == 404
    assert beta.patch(f"/t/beta/api/webhook-endpoints/{endpoint.pk}/", {"is_active": False},
                      content_type="application/json").status_code == 404
    assert beta.post(f"/t/beta/api/webhook-endpoints/{endpoint.pk}/rotate-secret/",
                     content_type="application/json").status_code == 404
    assert beta.delete(f"/t/beta/api/webhook-endpoints/{endpoint.pk}/").status_code == 404
    assert beta.post("/t/beta/api/webhook-deliveries/resend/", {"ids": [delivery.pk]},
                     content_type="application/json").status_code == 409
    # alpha's key is unknown in beta
    assert api_client(api_keys["alpha"]).get("/t/beta/api/webhook-endpoints/").status_code == 401
    with schema_context("alpha"):
        endpoint.refresh_from_db()
        assert endpoint.is_active and WebhookDelivery.objects.get().status == Status.DEAD


def test_the_webhooks_scope(tenant_a):
    with schema_context("alpha"):
        _, reader = create_api_key(name="reader", scopes=["webhooks:read"])
        _, other = create_api_key(name="other", scopes=["tickets:write"])
    assert api_client(reader).get(f"{BASE}/webhook-endpoints/").status_code == 200
    assert api_client(reader).get(f"{BASE}/webhook-deliveries/").status_code == 200
    assert api_client(reader).post(f"{BASE}/webhook-endpoints/", {"url": "https://example.com", "events": [
        "ticket.created"]}, content_type="application/json").status_code == 403
    assert api_client(other).get(f"{BASE}/webhook-endpoints/").status_code == 403
