"""Run I/O-bound calls (model requests, WeCom sends) side by side, in the caller's tenant schema.

A round of the answer pipeline asks the model for many customers at once; a model that takes
seconds per answer must not make them wait for each other. The calls run on one thread pool
per process. Each pool thread has its own database connection object (Django's are
thread-local), so the caller's tenant is set on it before every call: anything keyed by
`connection.schema_name` (Redis keys, metrics, log lines) stays in the tenant, and the
tenant's name is at hand for prompts. Each call also runs in a copy of the caller's context
variables, so its log lines carry the caller's log context (job, tenant) and OpenTelemetry's
current span is the caller's. Functions run
here should not query the database (a query would open a connection per pool thread).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import cache
from typing import TypeVar

from django.conf import settings
from django.db import connection

T = TypeVar("T")
R = TypeVar("R")


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.IO_CONCURRENCY, thread_name_prefix="tenant-io")


def map_in_tenant(func: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """[func(item) for item in items], concurrently, each call in the current tenant.

    `func` should catch what it expects to fail: the first exception it lets through is raised here. Under
    when_waiting_long(), a wait past its threshold lends what the caller holds (see there).
    """
    slow = _when_waiting_long.get()
    if len(items) <= 1 and slow is None:  # nothing to overlap: skip the thread hop
        return [func(item) for item in items]
    tenant = connection.tenant

    def in_schema(item: T) -> R:
        connection.set_tenant(tenant)  # this thread's connection object: no query
        _when_waiting_long.set(None)  # the caller's, not this thread's
        return func(item)

    # One copy per call: a context cannot be entered by two threads at once.
    futures = [_pool().submit(contextvars.copy_context().run, in_schema, item) for item in items]
    if slow is not None:
        seconds, lend = slow
        if wait(futures, timeout=seconds).not_done:
            give_back = lend()
            try:
                wait(futures)
            finally:
                give_back()
    return [future.result() for future in futures]


_when_waiting_long: contextvars.ContextVar[tuple[float, Callable[[], Callable[[], None]]] | None] = (
    contextvars.ContextVar("when_waiting_long", default=None))


@contextmanager
def when_waiting_long(seconds: float, lend: Callable[[], Callable[[], None]]) -> Iterator[None]:
    """In the block, a map_in_tenant() still waiting after `seconds` calls lend() and, once its calls are done,
    the function lend() returned: an answering claimer lends its slot to another while a slow model thinks."""
    token = _when_waiting_long.set((seconds, lend))
    try:
        yield
    finally:
        _when_waiting_long.reset(token)
