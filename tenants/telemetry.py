"""OpenTelemetry across our own boundaries: the trace context in Dramatiq messages, and our span attributes.

Only the OpenTelemetry API is used here: until a process sets up the SDK (config/telemetry.py, when
OTEL_EXPORTER_OTLP_ENDPOINT is set) every call below works on non-recording spans and costs next to
nothing. The libraries (Django, psycopg, Redis, httpx) are traced by their instrumentation packages;
this module covers what they cannot know:

1. `carry_trace_context`: the current W3C trace context (`traceparent`, `tracestate`) into the
   options of a Dramatiq message, beside the tenant schema (tenants/dramatiq.py), so a job continues
   the trace of the request or job that enqueued it (the worker's side, one CONSUMER span per
   job: tenants/dramatiq_tracing.py).
2. `annotate_span` and `message_span`: the tenant schema and our domain trace id
   (`InboundMessage.trace_id`, the id of the trace timeline) on the spans of the message path, so a
   trace found by either id leads to the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection
from opentelemetry import propagate, trace

TENANT_ATTRIBUTE = "wecomdesk.tenant"
TRACE_ID_ATTRIBUTE = "wecomdesk.trace_id"
# The keys of a W3C trace context; the propagator writes them (and "baggage", when there is some).
TRACEPARENT_OPTION = "traceparent"
TRACER_NAME = "wecomdesk"


def carry_trace_context(options: dict) -> None:
    """Record the current trace context in a message's options, unless they carry one already.

    Job.send_on_commit calls this when the service asks for the job, not when the transaction
    commits: the job belongs to the span that asked for it. A message re-enqueued by Dramatiq
    itself (a retry, a delayed message coming due) keeps the context it was first sent with.
    """
    if TRACEPARENT_OPTION not in options:
        propagate.inject(options)


def annotate_span(*, trace_id: uuid.UUID | str | None = None, **attributes) -> None:
    """Put the current tenant schema, our domain trace id and `attributes` (wecomdesk.<name>) on the
    current span (the callback's request span, a job's span). A no-op while tracing is off."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(_attributes(trace_id, attributes))


@contextmanager
def message_span(name: str, *, trace_id: uuid.UUID | str | None = None, **attributes) -> Iterator[None]:
    """A span of one message's work inside a job that handles many (answering one customer message,
    sending one outbound row), with the tenant schema and our domain trace id; the model's or
    WeCom's HTTP span becomes its child. Exceptions are recorded on it and passed on."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(name, attributes=_attributes(trace_id, attributes)):
        yield


def _attributes(trace_id, attributes: dict) -> dict:
    values = {TENANT_ATTRIBUTE: connection.schema_name}
    if trace_id:
        values[TRACE_ID_ATTRIBUTE] = str(trace_id)
    for name, value in attributes.items():
        if value is not None:
            values[f"wecomdesk.{name}"] = value
    return values
