"""Events of a conversation for the live screens: built on the server, sent on commit, to
tenant-scoped Channels groups only.

The message path publishes what happens to a conversation (a message joined it, a delivery
changed state, a suggestion was drafted) to `<schema>.conversation.<id>`; the human side's
screens (tickets/consumers.py) join that group after an access check, and add groups of their
own (tickets/realtime.py) on top of `publish_on_commit`. `origin` is the socket that caused the
event; that socket does not get it back.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction

from tenants.keys import channel_group
from tenants.redis import redis_client

Event = dict | Callable[[], dict]


def conversation_group(schema: str, conversation_id: int) -> str:
    return channel_group(f"conversation.{conversation_id}", schema=schema)


def _has_members(group: str) -> bool:
    """Whether any socket is in the group (channels_redis keeps a sorted set per group).

    Most conversations are watched by nobody: skipping their events saves the
    async_to_sync round trip (~2 ms of worker CPU each, measured by bench/pipeline.py).
    """
    layer = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    try:
        # The layer's Redis is REDIS_URL's (config/settings; under Sentinel its host entry is not a URL).
        return bool(redis_client().zcard(f"{layer['prefix']}:group:{group}"))
    except redis.RedisError:
        return True  # cannot tell: publish (the layer will fail or deliver on its own)


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
    """Tell the screens watching this conversation (of the current tenant) about `event`."""
    schema = connection.schema_name

    def with_conversation() -> dict:
        return {**(event() if callable(event) else event), "conversation": conversation_id}

    publish_on_commit(conversation_group(schema, conversation_id), with_conversation, origin=origin)
