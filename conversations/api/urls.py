"""The answering side's REST routes. config/api_urls.py assembles them with every other app's into the
tenant API (one router, one schema); this module imports no other app."""

from django.urls import path

from conversations.api.audit import AuditLogViewSet
from conversations.api.contacts import ContactViewSet
from conversations.api.conversations import ConversationViewSet
from conversations.api.inbound import InboundMessageViewSet
from conversations.api.views import DeadLetterViewSet, DeskSettingsViewSet, FallbackScriptViewSet, MessageTraceView
from conversations.api.webhooks import WebhookDeliveryViewSet, WebhookEndpointViewSet
from conversations.api.wecom_apps import WeComAppViewSet

# (prefix, viewset, basename) for the tenant API's router.
routes = [
    ("dead-letters", DeadLetterViewSet, "dead-letter"),
    ("fallback-scripts", FallbackScriptViewSet, "fallback-script"),
    ("desk-settings", DeskSettingsViewSet, "desk-settings"),
    ("contacts", ContactViewSet, "contact"),
    ("conversations", ConversationViewSet, "conversation"),
    ("inbound-messages", InboundMessageViewSet, "inbound-message"),
    ("wecom-apps", WeComAppViewSet, "wecom-app"),
    ("audit-log", AuditLogViewSet, "audit-log"),
    ("webhook-endpoints", WebhookEndpointViewSet, "webhook-endpoint"),
    ("webhook-deliveries", WebhookDeliveryViewSet, "webhook-delivery"),
]
urlpatterns = [
    path("messages/<str:id>/trace/", MessageTraceView.as_view(), name="message-trace"),
]
