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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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

    `func` should catch what it expects to fail: the first exception it lets through is raised here.
    """
    if len(items) <= 1:  # nothing to overlap: skip the thread hop
        return [func(item) for item in items]
    tenant = connection.tenant

    def in_schema(item: T) -> R:
        connection.set_tenant(tenant)  # this thread's connection object: no query
        return func(item)

    # One copy per call: a context cannot be entered by two threads at once.
    contexts = [contextvars.copy_context() for _ in items]
    return list(_pool().map(lambda context, item: context.run(in_schema, item), contexts, items))
