"""The test Dramatiq broker (Redis, namespace "dramatiq-test"): what is queued, without a worker.

Dramatiq's Redis broker keeps a message in `<namespace>:<queue>.msgs` (and a delayed one in
`<queue>.DQ.msgs`) from enqueue until a worker acknowledges it after the actor returned, so a job
that is running counts as queued, and so does one of a killed worker until the broker gives it to
another (after its heartbeat timeout).

Queues are found in Redis, not in `broker.get_declared_queues()`: services enqueue by actor name
(tenants.dramatiq.Job), so the test process often never declares the queues its jobs go to, and
Dramatiq's own `flush_all()` would leave them alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import dramatiq
from dramatiq.brokers.redis import RedisBroker


def _redis_broker() -> RedisBroker:
    broker = dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        raise NotImplementedError(f"testing.broker reads Redis queues; the test broker is {type(broker).__name__}")
    return broker


def queue_names() -> set[str]:
    """Every queue that holds or held a message in the test namespace (dead-letter queues excepted)."""
    broker = _redis_broker()
    prefix, suffix = f"{broker.namespace}:", ".msgs"
    names = set()
    for key in broker.client.scan_iter(match=f"{prefix}*{suffix}"):
        name = key.decode()[len(prefix):-len(suffix)]
        if not name.endswith(".XQ"):
            names.add(name.removesuffix(".DQ"))
    return names | broker.get_declared_queues()


def queued_messages(queues: Iterable[str] | None = None) -> dict[str, int]:
    """Messages of each queue (default: all of them) not yet acknowledged: waiting, delayed or running."""
    broker = _redis_broker()
    names = sorted(queues if queues is not None else queue_names())
    pipe = broker.client.pipeline(transaction=False)
    for name in names:
        pipe.hlen(f"{broker.namespace}:{name}.msgs")
        pipe.hlen(f"{broker.namespace}:{name}.DQ.msgs")
    counts = pipe.execute()
    return {name: counts[2 * i] + counts[2 * i + 1] for i, name in enumerate(names)}


def queued_jobs(queue: str, *, actor_name: str | None = None) -> list[dramatiq.Message]:
    """The messages waiting on `queue` (delayed ones included), oldest first; only `actor_name`'s if given."""
    broker = _redis_broker()
    raw = [*broker.client.hvals(f"{broker.namespace}:{queue}.msgs"),
           *broker.client.hvals(f"{broker.namespace}:{queue}.DQ.msgs")]
    messages = sorted((dramatiq.Message.decode(data) for data in raw), key=lambda message: message.message_timestamp)
    return [message for message in messages if actor_name is None or message.actor_name == actor_name]


def flush_test_broker() -> None:
    """Drop every message of the test namespace: queues, delayed and dead-lettered ones, acks, heartbeats.

    Only while no worker runs (a worker's heartbeat and unacknowledged messages go too).
    """
    broker = _redis_broker()
    keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*"))
    for start in range(0, len(keys), 500):
        broker.client.delete(*keys[start:start + 500])
