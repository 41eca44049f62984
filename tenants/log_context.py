"""What every log line says about where it comes from: bound at each entry point, cleared after it.

The fields live in structlog's contextvars, merged into every event, structlog's and the standard
library's alike (config/logging.py). Each entry point opens a fresh scope and closes it when its
unit of work ends, so nothing of one request or job leaks into the next:

- HTTP: `RequestLogContextMiddleware` binds request_id (the caller's X-Request-ID when sane, else a
  new one, echoed in the response), method and path; tenants/middleware.py adds the tenant once
  it has resolved it.
- WebSocket: tenants/websocket.py opens `entry_scope` with tenant, connection_id, user_id, path.
- Dramatiq: `LogContextMiddleware` binds job_id (the message id), actor, queue, retries and the
  trace_id the enqueuer had bound (carried in the message options); tenants/dramatiq.py adds the tenant.
- Scheduler: tenants/scheduling.py binds periodic_job, job_id and tenant per job per tenant.
- Commands: `LoggedCommand` binds the command and the tenant it was given.

Inside a unit of work, code that handles one message binds its trace_id with `bound(trace_id=...)`
(restored when the block ends).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dramatiq
from django.core.management.base import BaseCommand
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars, get_contextvars

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is kept only if it is short and plain: it ends up in every log line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# The message option that carries the enqueuer's trace_id to the job.
TRACE_OPTION = "trace_id"


@contextmanager
def entry_scope(**fields) -> Iterator[None]:
    """A fresh log context with `fields` for one unit of work; what was bound before is back afterwards."""
    outer = get_contextvars()
    clear_contextvars()
    bind_contextvars(**{k: v for k, v in fields.items() if v is not None})
    try:
        yield
    finally:
        clear_contextvars()
        bind_contextvars(**outer)


def bound(**fields):
    """structlog's `bound_contextvars` for the fields that have a value (ids as strings): a message
    without a trace id leaves the job's own in place."""
    return bound_contextvars(**{k: str(v) if isinstance(v, uuid.UUID) else v
                                for k, v in fields.items() if v is not None})


def new_id() -> str:
    return uuid.uuid4().hex


def request_id_from(header: str | None) -> str:
    return header if header and _SANE_REQUEST_ID.fullmatch(header) else new_id()


class RequestLogContextMiddleware:
    """HTTP entry point: request_id, method and path on every line logged while the request runs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        with entry_scope(request_id=request.request_id, method=request.method, path=request.path):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


def enqueue_options() -> dict[str, str]:
    """Message options that carry the current trace_id to the job (empty when none is bound)."""
    trace_id = get_contextvars().get(TRACE_OPTION)
    return {TRACE_OPTION: str(trace_id)} if trace_id else {}


class LogContextMiddleware(dramatiq.Middleware):
    """Dramatiq entry point. Listed before the tenant middleware: its context is bound before that
    one logs a refusal, and cleared after the tenant middleware is done with the message."""

    def before_enqueue(self, broker, message, delay):
        for option, value in enqueue_options().items():
            message.options.setdefault(option, value)

    def before_process_message(self, broker, message):
        clear_contextvars()  # a worker thread runs one job after another
        fields = {"job_id": message.message_id, "actor": message.actor_name, "queue": message.queue_name,
                  "retries": message.options.get("retries", 0)}
        if trace_id := message.options.get(TRACE_OPTION):
            fields[TRACE_OPTION] = trace_id
        bind_contextvars(**fields)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        clear_contextvars()

    def after_skip_message(self, broker, message):
        clear_contextvars()


class LoggedCommand(BaseCommand):
    """A management command whose log lines carry its name, and the tenant when it was given one
    (a `tenant` argument, or the `slug` of `tenants suspend|activate|create`)."""

    def execute(self, *args, **options):
        command = type(self).__module__.rsplit(".", 1)[-1]
        tenant = options.get("tenant") or options.get("slug")
        with entry_scope(command=command, tenant=tenant if isinstance(tenant, str) else None):
            return super().execute(*args, **options)
