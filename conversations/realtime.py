"""Events of a conversation for the live screens: built on the server, sent on commit, to
tenant-scoped Channels groups only.

The message path publishes what happens to a conversation (a message joined it, a delivery
changed state, a suggestion was drafted) to `<schema>.conversation.<id>`; the human side's
screens (tickets/consumers.py) join that group after an access check, and add groups of their
own (tickets/realtime.py) on top of `publish_on_commit`. `origin` is the socket that caused the
event; that socket does not get it back.
"""

from __future__ import annotations

import threading
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


class _Watched:
    """Which of a transaction's groups have sockets in them, asked of Redis once for all of them.

    Most conversations are watched by nobody: skipping their events saves the async_to_sync round trip
    (~2 ms of worker CPU each, measured by bench/pipeline.py). A round publishes several events per message;
    one pipelined ZCARD per group for the whole transaction replaces a round trip per event.
    """

    def __init__(self):
        self.groups: set[str] = set()
        self.members: dict[str, bool] | None = None  # asked at the first publish after the commit

    def has_members(self, group: str) -> bool:
        if self.members is None:
            self.members = _members(sorted(self.groups))
        return self.members.get(group, True)


# A transaction's events share one _Watched (per thread, as Django's connections are). Events registered after
# its groups were asked (the next transaction) start a new one; one whose transaction rolled back only adds
# a group or two to the next one's question.
_current = threading.local()
MAX_GROUPS_PER_QUESTION = 500


def _watched_for(group: str) -> _Watched:
    watched = getattr(_current, "watched", None)
    if watched is None or watched.members is not None or len(watched.groups) >= MAX_GROUPS_PER_QUESTION:
        watched = _current.watched = _Watched()
    watched.groups.add(group)
    return watched


def _members(groups: list[str]) -> dict[str, bool]:
    """Whether each group has any socket (channels_redis keeps a sorted set per group); {} if Redis cannot tell,
    and then every event is published (the layer will fail or deliver on its own)."""
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    try:
        # The layer's Redis is REDIS_URL's (config/settings; under Sentinel its host entry is not a URL).
        pipe = redis_client().pipeline(transaction=False)
        for group in groups:
            pipe.zcard(f"{prefix}:group:{group}")
        return {group: bool(count) for group, count in zip(groups, pipe.execute(), strict=True)}
    except redis.RedisError:
        return {}


def publish_on_commit(group: str, event: Event, *, origin: str = "") -> None:
    """Send `event` to the group's sockets once the transaction commits.

    `event` may be a function building it: it is called only if someone is watching, so
    events nobody sees cost no serialisation and no queries.
    """
    watched = _watched_for(group)

    def publish() -> None:
        if watched.has_members(group):
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
