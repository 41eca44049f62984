"""Waking a worker's Redis consumers when a message arrives on a queue someone waits on.

Dramatiq's Redis consumer only polls: a message enqueued on an idle queue waited for the consumer's next poll,
0-100 ms at our pace, once for the answering job and again for the send (bench/pipeline.py's "stored →
retrieval starts"), and every idle worker process ran some 90 polls a second of Lua just to look (an idle worker
of 2 processes took 8.7% of a core; 2.6% now, docs/BENCHMARKS.md). Here, enqueueing on an urgent queue
(config/broker_polling.py) also PUBLISHes the queue's name on `<namespace>:wake:<queue>`; each worker process
keeps one thread subscribed to those channels, which wakes that queue's consumers in the process, and they fetch
at once. An idle consumer that nothing wakes still
polls every SLOW_POLL_MS: the safety net for a publish lost while the subscription reconnects, or for a message
that reaches a queue without an enqueue (Redis requeueing a dead worker's messages).

A consumer clears its wake-up before it fetches and waits on it after an empty fetch, so a message enqueued
after the fetch ends the wait and none is missed between the two. A consumer that holds messages (running, or
delayed ones it hands over when their time comes, or one whose prefetch is full) never waits longer than the
worker's own pace, as before; an ack that frees a full prefetch wakes it too.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict

import redis
import structlog
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff

logger = structlog.get_logger("config.broker_wakeups")

# How long the listener's get_message blocks before it looks again (it only returns to notice a closed socket).
LISTEN_SECONDS = 1.0
# The longest pause before the listener subscribes again after losing Redis.
RESUBSCRIBE_MAX_MS = 5000


class Wakeups:
    """One broker's wake-up channels: publishing a queue's wake-up, and, in each process that consumes, the thread
    that listens and the consumers it wakes."""

    def __init__(self, client: redis.Redis, namespace: str):
        self._client = client
        self._prefix = f"{namespace}:wake:"
        self._lock = threading.Lock()
        self._consumers: dict[str, set[threading.Event]] = defaultdict(set)
        self._listener: threading.Thread | None = None
        self._listener_pid: int | None = None
        self._closed = threading.Event()
        # True while the subscription is confirmed: every publish from then on reaches this process.
        self.listening = False
        self.subscriptions = 0  # how often this process's listener has (re)subscribed

    def publish(self, queue_name: str) -> None:
        """Wake `queue_name`'s consumers everywhere. The message is already queued: a failed publish costs only
        latency (the consumers' safety-net poll finds it), so it is logged, not raised into the enqueuer."""
        try:
            self._client.publish(self._prefix + queue_name, b"")
        except redis.RedisError as error:
            logger.warning("dramatiq.wakeup_not_published", queue=queue_name, error=repr(error))

    def register(self, queue_name: str) -> threading.Event:
        """The event a consumer of `queue_name` in this process waits on; starts this process's listener."""
        woken = threading.Event()
        with self._lock:
            self._consumers[queue_name].add(woken)
            if self._listener is None or self._listener_pid != os.getpid() or not self._listener.is_alive():
                # A forked worker process inherits no threads: it listens for itself.
                self.listening = False
                self._listener = threading.Thread(target=self._listen, name="dramatiq-wakeups", daemon=True)
                self._listener_pid = os.getpid()
                self._listener.start()
        return woken

    def close(self) -> None:
        """Stop this process's listener (within LISTEN_SECONDS); the broker closes as its worker shuts down."""
        self._closed.set()

    def unregister(self, queue_name: str, woken: threading.Event) -> None:
        with self._lock:
            self._consumers[queue_name].discard(woken)

    def _wake(self, queue_name: str) -> None:
        with self._lock:
            events = list(self._consumers.get(queue_name, ()))
        for woken in events:
            woken.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = [woken for waiting in self._consumers.values() for woken in waiting]
        for woken in events:
            woken.set()

    def _listen(self) -> None:
        failures = 0
        while not self._closed.is_set():
            pubsub = self._client.pubsub()
            try:
                pubsub.psubscribe(self._prefix + "*")
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self.listening, failures = True, 0
                        self.subscriptions += 1
                        # Whatever was published before the subscription took hold is fetched now.
                        self._wake_all()
                    elif message["type"] == "pmessage":
                        self._wake(message["channel"].decode()[len(self._prefix):])
            # Broad on purpose: this thread is the process's only listener, and if it died the consumers would
            # believe they are listened for and poll only at the safety net's pace.
            except Exception as error:  # noqa: BLE001
                if self._closed.is_set():
                    break  # the broker closed its connections under us
                self.listening = False
                self._wake_all()  # the waiting consumers go back to the worker's pace until we listen again
                failures, backoff_ms = compute_backoff(failures, factor=100, max_backoff=RESUBSCRIBE_MAX_MS)
                logger.warning("dramatiq.wakeups_lost", error=repr(error), retry_ms=backoff_ms)
                self._closed.wait(backoff_ms / 1000)
            finally:
                pubsub.close()
        self.listening = False


class WakeableRedisConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, waiting on its queue's wake-up instead of sleeping between polls. It extends a
    private class of the pinned Dramatiq (requirements.txt); config/tests/test_broker_wakeups.py holds it to this."""

    def __init__(self, broker, queue_name: str, prefetch: int, *, busy_poll_ms: int, idle_poll_ms: int,
                 wakeups: Wakeups):
        # A timeout of 0 makes Dramatiq's consumer return at once after an empty fetch: the wait is ours (below).
        super().__init__(broker, queue_name, prefetch, 0)
        self.busy_poll_ms = busy_poll_ms
        self.idle_poll_ms = idle_poll_ms
        self._wakeups = wakeups
        self._woken = wakeups.register(queue_name)
        self._full = False

    def __next__(self):
        if not self.message_cache:
            self._woken.clear()  # before the fetch: a message enqueued after it ends the wait below
        self._full = self.outstanding_message_count >= self.prefetch
        message = super().__next__()
        if message is None:
            self._woken.wait(self.wait_ms() / 1000)
        return message

    def wait_ms(self) -> int:
        """How long to wait for a wake-up after an empty fetch (or a full prefetch)."""
        idle = self.outstanding_message_count == 0 and self._wakeups.listening
        return self.idle_poll_ms if idle else self.busy_poll_ms

    def ack(self, message):
        try:
            super().ack(message)
        finally:
            self._made_room()

    def nack(self, message):
        try:
            super().nack(message)
        finally:
            self._made_room()

    def _made_room(self):
        if self._full:
            self._woken.set()

    def close(self):
        self._wakeups.unregister(self.queue_name, self._woken)
        super().close()
