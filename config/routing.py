"""WebSocket routes (paths are relative to the tenant: /ws/... or /t/<slug>/ws/...)."""

from django.urls import path

from tickets.consumers import AgentConsumer

websocket_urlpatterns = [
    path("ws/agent/", AgentConsumer.as_asgi()),
]
