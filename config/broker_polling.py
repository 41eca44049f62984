"""How often an idle worker polls each Redis queue, and how soon a dead worker's jobs go back to theirs.

Dramatiq's Redis consumer polls its queue with back-off up to the worker timeout (`dramatiq_worker_timeout`, 100 ms
here: the agent screens' one second, config/settings/base.py). A worker consumes about fifteen queues (each actor's
queue and its delay queue), so it ran about 140 polls a second per process, a Lua script each: about a seventh of
the worker's CPU while it drained a backlog (bench/pipeline.py --profile). Only a few queues have someone waiting
on the other end: a customer (inbound and outbound with their delay queues: a claimer's hand-over to another
process, a paced send; kf_sync) or an agent (ai's suggested replies). The others (their retries waiting out a
back-off, media downloads, knowledge indexing, webhooks) are polled every SLOW_POLL_MS, which adds at most that
to work nobody watches. The urgent queues are woken when a message arrives (config/broker_wakeups.py): idle, they
too are polled only every SLOW_POLL_MS, as a safety net.

RabbitMQ pushes messages: nothing to pace there.
"""

from __future__ import annotations

import threading
import time

from dramatiq.brokers.redis import RedisBroker

from config import env
from config.broker_wakeups import WakeableRedisConsumer, Wakeups

# A customer or an agent waits on these (a queue's delay queue is "<queue>.DQ").
URGENT_QUEUES = frozenset(env.get_list("WORKER_URGENT_QUEUES",
                                        ["inbound", "inbound.DQ", "outbound", "outbound.DQ", "kf_sync", "ai"]))
SLOW_POLL_MS = env.get_int("WORKER_SLOW_POLL_MS", 1000)


class PacedRedisBroker(RedisBroker):
    def __init__(self, **options):
        super().__init__(**options)
        self.wakeups = Wakeups(self.client, self.namespace)
        # Dramatiq gives a dead worker's unacknowledged messages back to a queue only in "maintenance", which runs
        # on a random share of the commands on that queue (0.1 % by default): at ten polls a second, a killed
        # worker's jobs waited some 100 s past its heartbeat timeout; at a woken queue's one poll a second, 17
        # minutes. So each process also maintains each queue it fetches from once per half heartbeat timeout.
        self._maintenance_every_seconds = self.heartbeat_timeout / 2000
        self._maintained_at: dict[str, float] = {}
        self._fetching = threading.local()

    def consume(self, queue_name, prefetch=1, timeout=5000):
        """`timeout`: the worker's pace (`dramatiq_worker_timeout`)."""
        idle_poll_ms = max(timeout, SLOW_POLL_MS)
        if queue_name not in URGENT_QUEUES:
            return super().consume(queue_name, prefetch, idle_poll_ms)
        return WakeableRedisConsumer(self, queue_name, prefetch, busy_poll_ms=timeout, idle_poll_ms=idle_poll_ms,
                                     wakeups=self.wakeups)

    def close(self):
        self.wakeups.close()
        super().close()

    def do_fetch(self, queue_name, *args):
        now = time.monotonic()
        due = now - self._maintained_at.get(queue_name, 0.0) >= self._maintenance_every_seconds
        if due:
            self._maintained_at[queue_name] = now
        self._fetching.maintain = due
        try:
            return self._dispatch("fetch")(queue_name, *args)
        finally:
            self._fetching.maintain = False

    def _should_do_maintenance(self, command):
        # Dramatiq asks this inside its dispatch, which does not say for which queue: do_fetch above tells it.
        return 1 if getattr(self._fetching, "maintain", False) else super()._should_do_maintenance(command)

    def do_enqueue(self, queue_name, *args):
        # Dramatiq dispatches its do_* commands by name (RedisBroker.__getattr__); this one also wakes the queue.
        queued = self._dispatch("enqueue")(queue_name, *args)
        if queue_name in URGENT_QUEUES:
            self.wakeups.publish(queue_name)
        return queued
