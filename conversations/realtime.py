"""Pushing events to the live screens of one tenant's staff (Channels groups per schema)."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from tenants.keys import channel_group

STAFF_GROUP = "staff"


def staff_group(schema: str) -> str:
    return channel_group(STAFF_GROUP, schema=schema)


def publish_staff_event_on_commit(*, event: dict) -> None:
    """Send `event` to every open staff screen of the current tenant once the transaction commits."""
    group = staff_group(connection.schema_name)
    transaction.on_commit(
        lambda: async_to_sync(get_channel_layer().group_send)(group, {"type": "staff.event", "event": event})
    )
