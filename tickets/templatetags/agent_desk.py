"""Tags of the agent screens' base template (templates/agent/base.html)."""

from __future__ import annotations

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def websocket_base_url() -> str:
    """Where agent.js opens its socket (settings.WEBSOCKET_BASE_URL): "" for the page's own origin, ":<port>" for
    the page's host name on another port (`make run`), or an origin such as "wss://ws.desk.example.com"."""
    return settings.WEBSOCKET_BASE_URL
