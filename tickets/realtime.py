"""Events for the agent screens. Built on the server, sent on commit, to tenant-scoped groups only.

Groups: `<schema>.queue` (every agent of the tenant: the waiting queue changed),
`<schema>.agent.<user>` (one agent), `<schema>.conversation.<id>` (screens watching
that conversation, joined only after an access check). `origin` is the socket that
caused the event; that socket does not get it back.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from tenants.keys import channel_group


def queue_group(schema: str) -> str:
    return channel_group("queue", schema=schema)


def agent_group(schema: str, user_id: int) -> str:
    return channel_group(f"agent.{user_id}", schema=schema)


def conversation_group(schema: str, conversation_id: int) -> str:
    return channel_group(f"conversation.{conversation_id}", schema=schema)


def publish_on_commit(group: str, event: dict, *, origin: str = "") -> None:
    message = {"type": "agent.event", "event": event, "origin": origin}
    transaction.on_commit(lambda: async_to_sync(get_channel_layer().group_send)(group, message), robust=True)


def conversation_changed(conversation_id: int, event: dict, *, origin: str = "") -> None:
    schema = connection.schema_name
    publish_on_commit(conversation_group(schema, conversation_id), {**event, "conversation": conversation_id},
                      origin=origin)


def queue_changed(*, origin: str = "", **detail) -> None:
    publish_on_commit(queue_group(connection.schema_name), {"type": "queue", **detail}, origin=origin)
