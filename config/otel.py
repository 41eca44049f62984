"""The OpenTelemetry SDK of a traced process: tracer provider, sampler, exporter, instrumentations.

Imported only when tracing is on (config/telemetry.py decides), and by the tests, which start the
same set-up with an in-memory exporter.

What leaves the process goes through `RedactingExporter`, with the log's own redaction: WeCom takes
its access token in the query string (`/cgi-bin/message/send?access_token=...`), and an HTTP span's
URL, an exception's message or a status description would otherwise carry it to the tracing backend.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.trace import Link, SpanKind, Status
from opentelemetry.util.types import Attributes

from config.logging import redact_text

# Probes and scrapes: a request span every few seconds that nobody wants to read.
EXCLUDED_URLS = "healthz,readyz,metrics"


def otlp_exporter() -> SpanExporter:
    """OTLP over HTTP (protobuf): endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables."""
    return OTLPSpanExporter()


def start_tracing(role: str, exporter: SpanExporter, *, environ: Mapping[str, str] = os.environ) -> TracerProvider:
    """The global tracer provider, exporting to `exporter` in batches, and the libraries instrumented."""
    provider = tracer_provider(role, environ=environ)
    provider.add_span_processor(BatchSpanProcessor(RedactingExporter(exporter)))
    trace.set_tracer_provider(provider)
    instrument(provider, web=role == "web", environ=environ)
    return provider


def tracer_provider(role: str, *, environ: Mapping[str, str] = os.environ) -> TracerProvider:
    """A provider named after the service (OTEL_SERVICE_NAME, default wecomdesk-<role>), sampling as
    OTEL_TRACES_SAMPLER says (default: every trace) except client spans that start no trace."""
    service = environ.get("OTEL_SERVICE_NAME", "").strip() or f"wecomdesk-{role}"
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES (deployment.environment, ...).
    resource = Resource.create({"service.name": service})
    return TracerProvider(resource=resource, sampler=NoOrphanClientSpans(_get_from_env_or_default()))


def instrument(provider: TracerProvider, *, web: bool, environ: Mapping[str, str] = os.environ) -> None:
    """Trace the libraries: Django's requests (web only), psycopg, Redis and httpx."""
    if web:
        # Inserts its middleware first in settings.MIDDLEWARE: call before the handler loads the chain.
        DjangoInstrumentor().instrument(
            tracer_provider=provider,
            excluded_urls=environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", EXCLUDED_URLS),
            response_hook=name_after_route,
        )
    # Wraps psycopg's connect: only connections opened from now on are traced (a booting process has none).
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    # Wraps httpx's transports, so the clients already built (the model's, WeCom's) are traced too.
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def name_after_route(span, request, response) -> None:
    """Name a request's span after the route it matched ("POST wecom/callback/<str:callback_id>/").

    The instrumentation names it when the request comes in, before our tenant middleware has chosen
    the tenant's URLconf, so it could only say "POST".
    """
    match = getattr(request, "resolver_match", None)
    if span.is_recording() and match is not None and match.route:
        span.update_name(f"{request.method} {match.route}")


def uninstrument() -> None:
    """Undo `instrument` (tests: the test process must not stay instrumented)."""
    for instrumentor in (DjangoInstrumentor(), PsycopgInstrumentor(), RedisInstrumentor(), HTTPXClientInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


class NoOrphanClientSpans(Sampler):
    """Drops client spans that start no trace; everything else as the configured sampler says.

    A database query, Redis command or HTTP call outside any request or job (the Dramatiq consumer
    polling Redis ten times a second, its acknowledgements, the queries of health probes) would
    each be a one-span trace: noise that would drown the traces that matter.
    """

    def __init__(self, sampler: Sampler):
        self._sampler = sampler

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state=None) -> SamplingResult:
        if kind == SpanKind.CLIENT and not trace.get_current_span(parent_context).get_span_context().is_valid:
            return SamplingResult(Decision.DROP)
        return self._sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self._sampler.get_description()}}}"


class RedactingExporter(SpanExporter):
    """Hands spans on to `exporter` with the secrets they visibly carry masked, as in the logs
    (config.logging.redact_text): attribute values, event attributes (an exception's message and
    stack trace), status descriptions."""

    def __init__(self, exporter: SpanExporter):
        self._exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._exporter.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description))
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=_redacted_attributes(span.attributes),
        events=[Event(event.name, _redacted_attributes(event.attributes), event.timestamp) for event in span.events],
        links=span.links, kind=span.kind, status=status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _redacted_attributes(attributes: Attributes) -> dict[str, Any]:
    return {key: _redacted_value(value) for key, value in (attributes or {}).items()}


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, tuple | list):
        return type(value)(redact_text(item) if isinstance(item, str) else item for item in value)
    return value
