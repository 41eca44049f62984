"""Agent presence, kept by their open screens: every socket heartbeats; no heartbeat for 60 s is offline.

Redis hash `<schema>:presence:<user>` maps each open socket to its last heartbeat, so
an agent with two tabs stays online until both are gone, and a tab killed without a
close frame ages out. `<schema>:presence-away` holds the agents who chose "away".
"""

from __future__ import annotations

import time

from tenants.keys import redis_key
from tenants.redis import redis_client

HEARTBEAT_SECONDS = 20
OFFLINE_AFTER_SECONDS = 60
STATUSES = ("online", "away", "offline")


def _key(schema: str, user_id: int) -> str:
    return redis_key("presence", user_id, schema=schema)


def touch(*, schema: str, user_id: int, socket: str) -> None:
    key = _key(schema, user_id)
    pipe = redis_client().pipeline()
    pipe.hset(key, socket, time.time())
    pipe.expire(key, OFFLINE_AFTER_SECONDS * 2)
    pipe.execute()


def drop(*, schema: str, user_id: int, socket: str) -> None:
    redis_client().hdel(_key(schema, user_id), socket)


def set_away(*, schema: str, user_id: int, away: bool) -> None:
    key = redis_key("presence-away", schema=schema)
    (redis_client().sadd if away else redis_client().srem)(key, user_id)


def status(*, schema: str, user_id: int) -> str:
    return statuses(schema=schema, user_ids=[user_id])[user_id]


def statuses(*, schema: str, user_ids: list[int]) -> dict[int, str]:
    """"online", "away" or "offline" for each agent."""
    if not user_ids:
        return {}
    pipe = redis_client().pipeline()
    for user_id in user_ids:
        pipe.hvals(_key(schema, user_id))
    pipe.smembers(redis_key("presence-away", schema=schema))
    *beats, away = pipe.execute()
    away_ids = {int(member) for member in away}
    cutoff = time.time() - OFFLINE_AFTER_SECONDS
    result = {}
    for user_id, values in zip(user_ids, beats, strict=True):
        alive = any(float(value) > cutoff for value in values)
        result[user_id] = "offline" if not alive else ("away" if user_id in away_ids else "online")
    return result
