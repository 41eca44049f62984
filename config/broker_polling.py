"""How often an idle worker polls each Redis queue.

Dramatiq's Redis consumer polls its queue with back-off up to the worker timeout (`dramatiq_worker_timeout`, 100 ms
here: the agent screens' one second, config/settings/base.py). A worker consumes about fifteen queues (each actor's
queue and its delay queue), so it ran about 140 polls a second per process, a Lua script each: about a seventh of
the worker's CPU while it drained a backlog (bench/pipeline.py --profile). Only a few queues have someone waiting
on the other end: a customer (inbound and outbound with their delay queues: a claimer's hand-over to another
process, a paced send; kf_sync) or an agent (ai's suggested replies). The others (their retries waiting out a
back-off, media downloads, knowledge indexing, webhooks) are polled every SLOW_POLL_MS, which adds at most that
to work nobody watches.

RabbitMQ pushes messages: nothing to pace there.
"""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker

from config import env

# A customer or an agent waits on these (a queue's delay queue is "<queue>.DQ").
URGENT_QUEUES = frozenset(env.get_list("WORKER_URGENT_QUEUES",
                                        ["inbound", "inbound.DQ", "outbound", "outbound.DQ", "kf_sync", "ai"]))
SLOW_POLL_MS = env.get_int("WORKER_SLOW_POLL_MS", 1000)


def poll_ms(queue_name: str, timeout: int) -> int:
    """The longest pause between two polls of an idle `queue_name` (`timeout`: the worker's)."""
    return timeout if queue_name in URGENT_QUEUES else max(timeout, SLOW_POLL_MS)


class PacedRedisBroker(RedisBroker):
    def consume(self, queue_name, prefetch=1, timeout=5000):
        return super().consume(queue_name, prefetch, poll_ms(queue_name, timeout))
