"""The worker's side of tracing: one CONSUMER span per Dramatiq job, continuing the enqueuer's trace.

The trace context travels in the message options (tenants.telemetry.carry_trace_context, called
by Job.send_on_commit and, for anything else enqueued, by `before_enqueue` here). The span is named
after the actor, carries the queue, message id, tenant schema and retry count, records the
exception the actor raised, and is the current span while the actor runs, so the database,
Redis and HTTP spans of the job are its children. Only the OpenTelemetry API: with tracing off
(config/telemetry.py) the spans do not record.
"""

from __future__ import annotations

import threading

import dramatiq
from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tenants.dramatiq import SCHEMA_OPTION
from tenants.telemetry import TENANT_ATTRIBUTE, TRACER_NAME, carry_trace_context


class DramatiqTracing(dramatiq.Middleware):
    """Trace context on enqueue, one CONSUMER span per processed message.

    Listed first in DRAMATIQ_BROKER["MIDDLEWARE"]: its span is open before the tenant middleware
    looks the tenant up (that query is part of the job) and, since Dramatiq runs the `after_*`
    hooks in reverse order, it ends last. A message the tenant middleware rejects still has its
    span, with the reason as an error.
    """

    def __init__(self):
        # The span and context token of the message a worker thread is processing: a thread
        # processes one message at a time, from before_process_message to after_*.
        self._current = threading.local()

    def before_enqueue(self, broker, message, delay):
        carry_trace_context(message.options)

    def before_process_message(self, broker, message):
        parent = propagate.extract(message.options)
        span = trace.get_tracer(TRACER_NAME).start_span(
            message.actor_name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.destination.name": message.queue_name,
                "messaging.message.id": message.message_id,
                "messaging.dramatiq.retries": message.options.get("retries", 0),
                TENANT_ATTRIBUTE: message.options.get(SCHEMA_OPTION) or "",
            },
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        self._current.job = (message.message_id, span, token)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._end(message, exception)

    def after_skip_message(self, broker, message):
        # Skipped: the tenant middleware refused it (no schema, unknown or suspended tenant).
        self._end(message, getattr(message, "_exception", None))

    def _end(self, message, exception: BaseException | None) -> None:
        job = getattr(self._current, "job", None)
        if job is None or job[0] != message.message_id:
            return
        self._current.job = None
        _, span, token = job
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        span.end()
        context.detach(token)
