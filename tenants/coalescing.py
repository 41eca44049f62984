"""At most one waiting job per tenant and purpose: a stored message asks for "answer this tenant's backlog"
instead of a job of its own (docs/DESIGN_RULES.md, the path of a message, step 3).

A mark in Redis (`<schema>:job-waiting:<actor>`) says "a job for this is on its way". Asking sets it with NX
and publishes only when it was not set, so a burst of stored messages costs one job. The job's runner takes the
mark (`take`) before it reads the backlog: whatever committed before the take is read, and whatever commits after
it finds the mark gone and asks again. So no message is left behind as long as the job with the mark runs.

When it does not (the broker lost it, a worker died before taking the mark), the mark expires after
MARK_SECONDS and the scheduler's sweeper enqueues again (`force`) what stayed pending. Redis unreachable: the
job is published anyway, a job too many rather than one too few.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError

from tenants.keys import redis_key
from tenants.redis import redis_client

# Long enough that a job waiting behind a busy queue keeps a burst coalesced; short next to the sweeper's
# INBOUND_SWEEP_AFTER_SECONDS, so a lost job costs the sweeper's delay and no more.
MARK_SECONDS = 30

logger = structlog.get_logger("tenants.coalescing")


def mark_key(schema: str, actor_name: str) -> str:
    return redis_key("job-waiting", actor_name, schema=schema)


def ask(schema: str, actor_name: str) -> bool:
    """Set the tenant's mark for `actor_name`; True when the caller must publish the job (nobody had)."""
    try:
        return bool(redis_client().set(mark_key(schema, actor_name), b"1", nx=True, ex=MARK_SECONDS))
    except RedisError as error:
        logger.warning("coalescing.mark_unavailable", actor=actor_name, error=repr(error))
        return True


def force(schema: str, actor_name: str) -> bool:
    """Set the mark whatever it was; always True: the sweeper publishes regardless, the job the mark stood for
    being lost."""
    try:
        redis_client().set(mark_key(schema, actor_name), b"1", ex=MARK_SECONDS)
    except RedisError as error:
        logger.warning("coalescing.mark_unavailable", actor=actor_name, error=repr(error))
    return True


def take(schema: str, actor_name: str) -> None:
    """The job is about to read its backlog: what is stored from now on asks for a job of its own."""
    try:
        redis_client().delete(mark_key(schema, actor_name))
    except RedisError as error:
        # Left set, the mark expires by itself; what commits meanwhile waits for that or for the sweeper.
        logger.warning("coalescing.mark_unavailable", actor=actor_name, error=repr(error))
