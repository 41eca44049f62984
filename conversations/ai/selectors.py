"""Reads of the tenant's AI provider (current schema)."""

from __future__ import annotations

from conversations.ai.models import AIProvider


def get_ai_provider() -> AIProvider | None:
    """The tenant's provider, enabled or not; None when none is configured."""
    return AIProvider.objects.order_by("pk").first()


def get_enabled_ai_provider() -> AIProvider | None:
    """The provider the pipeline may call: configured and enabled."""
    return AIProvider.objects.filter(enabled=True).order_by("pk").first()
