"""The agent screens' own groups: `<schema>.queue` (every agent of the tenant: the waiting queue
changed) and `<schema>.agent.<user>` (one agent: an offer). Conversation events, and publishing
on commit, belong to the message path (conversations/realtime.py).
"""

from __future__ import annotations

from django.db import connection

from conversations.realtime import publish_on_commit
from tenants.keys import channel_group


def queue_group(schema: str) -> str:
    return channel_group("queue", schema=schema)


def agent_group(schema: str, user_id: int) -> str:
    return channel_group(f"agent.{user_id}", schema=schema)


def queue_changed(*, origin: str = "", **detail) -> None:
    publish_on_commit(queue_group(connection.schema_name), {"type": "queue", **detail}, origin=origin)


def offer_to_agent(*, user_id: int, conversation_id: int, ticket_id: int) -> None:
    publish_on_commit(agent_group(connection.schema_name, user_id),
                      {"type": "offer", "conversation": conversation_id, "ticket": ticket_id})
