"""Waiting in tests: for a condition (`wait_until`) and for the message pipeline to have nothing left to do
(`wait_until_idle`), so that "nothing else happened" is asserted after the fact instead of after a sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django_tenants.utils import schema_context

from conversations.models import InboundMessage, OutboundMessage
from testing.broker import queued_messages

# The test tenants of the root conftest (testing.fixtures.TEST_TENANTS); a test names fewer when it uses fewer.
DEFAULT_SCHEMAS = ("alpha", "beta")
# Outbound rows somebody still has to send: a row in any other status is final (sent, dead, cancelled).
OUTBOUND_WAITING = (OutboundMessage.Status.PENDING, OutboundMessage.Status.RETRYING, OutboundMessage.Status.SENDING)


def wait_until(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05,
               message: str | Callable[[], str] = "condition"):
    """Poll `predicate` until it returns something truthy, and return that; fail after `timeout` seconds.

    `message` (a string, or a function called only on failure) says what was awaited.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = message() if callable(message) else message
    raise AssertionError(f"timed out after {timeout}s waiting for {detail}")


@dataclass(frozen=True)
class PipelineState:
    """What is still to do: rows waiting per schema, messages not yet acknowledged per Dramatiq queue."""

    inbound_pending: dict[str, int]
    outbound_waiting: dict[str, int]
    queued: dict[str, int]

    @property
    def idle(self) -> bool:
        return not any(self.inbound_pending.values()) and not any(self.outbound_waiting.values()) \
            and not any(self.queued.values())

    def __str__(self) -> str:
        busy = {"inbound pending": self.inbound_pending, "outbound waiting": self.outbound_waiting,
                "queued": self.queued}
        return "; ".join(f"{name} {({k: v for k, v in counts.items() if v})}" for name, counts in busy.items())


def pipeline_state(*, schemas: Iterable[str] = DEFAULT_SCHEMAS, queues: Iterable[str] | None = None) -> PipelineState:
    # Queues first, rows second: a job that finished in between has already written its rows, and any
    # job it enqueued is committed with them, so a snapshot never misses work that moved in between.
    queued = queued_messages(queues)
    inbound, outbound = {}, {}
    for schema in schemas:
        with schema_context(schema):
            inbound[schema] = InboundMessage.objects.filter(status=InboundMessage.Status.PENDING).count()
            outbound[schema] = OutboundMessage.objects.filter(status__in=OUTBOUND_WAITING).count()
    return PipelineState(inbound_pending=inbound, outbound_waiting=outbound, queued=queued)


def wait_until_idle(*, schemas: Iterable[str] = DEFAULT_SCHEMAS, queues: Iterable[str] | None = None,
                    timeout: float = 30, interval: float = 0.1, settle: int = 3,
                    message: str | Callable[[], str] = "") -> PipelineState:
    """Wait until the message pipeline has nothing left to do, then return its (idle) state.

    Idle: in every schema of `schemas`, no inbound row is pending and no outbound row is waiting
    (pending, retrying or sending), and every queue of the test broker (`queues`, default all
    declared ones) is empty. It must hold for `settle` polls in a row: the rows and the queues are
    read one after the other, and a job scheduled by the sweeper may start between two polls.
    Use it before asserting that nothing else arrived (an extra delivery, a second answer).
    """
    schemas = tuple(schemas)
    queues = tuple(queues) if queues is not None else None
    last: list[PipelineState] = []
    streak = 0

    def settled() -> PipelineState | None:
        nonlocal streak
        state = pipeline_state(schemas=schemas, queues=queues)
        last[:] = [state]
        streak = streak + 1 if state.idle else 0
        return state if streak >= settle else None

    def why() -> str:
        detail = message() if callable(message) else message
        return f"the pipeline to be idle: {last[0] if last else 'never read'}" + (f"\n{detail}" if detail else "")

    return wait_until(settled, timeout=timeout, interval=interval, message=why)
