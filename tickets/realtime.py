"""Events for the agent screens. Built on the server, sent on commit, to tenant-scoped groups only.

Groups: `<schema>.queue` (every agent of the tenant: the waiting queue changed),
`<schema>.agent.<user>` (one agent), `<schema>.conversation.<id>` (screens watching
that conversation, joined only after an access check). `origin` is the socket that
caused the event; that socket does not get it back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction

from tenants.keys import channel_group


def queue_group(schema: str) -> str:
    return channel_group("queue", schema=schema)


def agent_group(schema: str, user_id: int) -> str:
    return channel_group(f"agent.{user_id}", schema=schema)


def conversation_group(schema: str, conversation_id: int) -> str:
    return channel_group(f"conversation.{conversation_id}", schema=schema)


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"][0])


def _has_members(group: str) -> bool:
    """Whether any socket is in the group (channels_redis keeps a sorted set per group).

    Most conversations are watched by nobody: skipping their events saves the
    async_to_sync round trip (~2 ms of worker CPU each, measured by bench/pipeline.py).
    """
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    try:
        return bool(_redis().zcard(f"{prefix}:group:{group}"))
    except redis.RedisError:
        return True  # cannot tell: publish (the layer will fail or deliver on its own)


Event = dict | Callable[[], dict]


def publish_on_commit(group: str, event: Event, *, origin: str = "") -> None:
    """Send `event` to the group's sockets once the transaction commits.

    `event` may be a function building it: it is called only if someone is watching, so
    events nobody sees cost no serialisation and no queries.
    """

    def publish() -> None:
        if _has_members(group):
            body = event() if callable(event) else event
            async_to_sync(get_channel_layer().group_send)(group, {"type": "agent.event", "event": body,
                                                                  "origin": origin})

    transaction.on_commit(publish, robust=True)


def conversation_changed(conversation_id: int, event: Event, *, origin: str = "") -> None:
    schema = connection.schema_name

    def with_conversation() -> dict:
        return {**(event() if callable(event) else event), "conversation": conversation_id}

    publish_on_commit(conversation_group(schema, conversation_id), with_conversation, origin=origin)


def queue_changed(*, origin: str = "", **detail) -> None:
    publish_on_commit(queue_group(connection.schema_name), {"type": "queue", **detail}, origin=origin)
