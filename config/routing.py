"""WebSocket routes (paths are relative to the tenant: /ws/... or /t/<slug>/ws/...)."""

from django.urls import path

from conversations.consumers import StaffEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", StaffEventsConsumer.as_asgi()),
]
