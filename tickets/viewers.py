"""Who else has a conversation open now (collision detection on the conversation screen, docs/AGENTS.md).

Redis hash `<schema>:viewers:<conversation>` maps each socket watching the conversation to its agent and
last heartbeat, so two tabs of one agent count once and a tab killed without a close frame ages out
(VIEWER_TTL_SECONDS: two missed heartbeats). Only sockets that passed the conversation's access check
(tickets/consumers.py) are ever written here, and the list goes only to the conversation's own group,
which is joined after the same check: an agent never learns about a conversation they cannot see.

Typing is not stored: a throttled event to the same group, which screens show for a few seconds.
"""

from __future__ import annotations

import json
import time

from tenants.keys import redis_key
from tenants.redis import redis_client
from tickets.presence import HEARTBEAT_SECONDS

VIEWER_TTL_SECONDS = HEARTBEAT_SECONDS * 2 + 5
TYPING_MIN_INTERVAL_SECONDS = 1.0  # a socket's typing events are passed on at most this often


def _key(schema: str, conversation_id: int) -> str:
    return redis_key("viewers", conversation_id, schema=schema)


def join(*, schema: str, conversation_id: int, socket: str, user_id: int, name: str, now: float | None = None) -> None:
    """The socket opened (or still has open) the conversation: refreshes its heartbeat too."""
    key = _key(schema, conversation_id)
    pipe = redis_client().pipeline()
    pipe.hset(key, socket, json.dumps({"user": user_id, "name": name, "at": now or time.time()}))
    pipe.expire(key, VIEWER_TTL_SECONDS * 2)
    pipe.execute()


def leave(*, schema: str, conversation_id: int, socket: str) -> None:
    redis_client().hdel(_key(schema, conversation_id), socket)


def viewers(*, schema: str, conversation_id: int, now: float | None = None) -> tuple[list[dict], bool]:
    """The agents viewing the conversation ([{user, name}], one per agent, by name), and whether sockets that
    stopped heartbeating were dropped just now (their screens' peers should be told)."""
    key = _key(schema, conversation_id)
    cutoff = (now or time.time()) - VIEWER_TTL_SECONDS
    alive, stale = {}, []
    for socket, raw in redis_client().hgetall(key).items():
        try:
            entry = json.loads(raw)
        except ValueError:
            stale.append(socket)
            continue
        if float(entry.get("at", 0)) < cutoff:
            stale.append(socket)
        else:
            alive[int(entry["user"])] = str(entry.get("name", ""))
    if stale:
        redis_client().hdel(key, *stale)
    return sorted(({"user": user, "name": name} for user, name in alive.items()),
                  key=lambda viewer: (viewer["name"], viewer["user"])), bool(stale)
