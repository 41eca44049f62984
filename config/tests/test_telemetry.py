"""OpenTelemetry tracing: one trace from WeCom's callback through the worker's jobs to the model and to
WeCom's send endpoint; the trace context in the Dramatiq message options; nothing at all without an
endpoint.

The traced tests start the same SDK set-up as a traced process (config/otel.py), exporting to the
SDK's in-memory exporter, and run the jobs with a real Dramatiq worker inside the test process,
against the test broker, the WeCom sandbox and its fake model over HTTP.
"""

from __future__ import annotations

import uuid

import dramatiq
import httpx
import psycopg
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

import conversations.actors  # noqa: F401 - declares the actors the in-process worker runs
from config import otel, telemetry
from conversations.ai.models import AIProvider
from conversations.models import InboundMessage
from tenants.dramatiq import SCHEMA_OPTION
from tenants.telemetry import TENANT_ATTRIBUTE, TRACE_ID_ATTRIBUTE
from tenants.tests.probe.actors import add_note
from tenants.tests.probe.models import Note
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import APP_SECRET, AIProviderFactory
from testing.vectors import AGENT_ID, CORP_ID
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import callback_path, relative, sender_for
from wecom_sandbox.callbacks import text_message

QUEUES = ("inbound", "outbound")
BETA_CORP_ID = "ww0123456789abcdef"  # beta's app in a corp of its own, so WeCom's faults can aim at alpha's


@pytest.fixture
def spans():
    """The SDK as a traced web process sets it up, exporting to memory; undone afterwards, so no
    other test runs instrumented."""
    exporter = InMemorySpanExporter()
    provider = otel.tracer_provider("web")
    provider.add_span_processor(SimpleSpanProcessor(otel.RedactingExporter(exporter)))
    trace.set_tracer_provider(provider)
    # psycopg is traced from `connect` on: pooled connections opened before would not be.
    connection.close()
    connection.close_pool()
    otel.instrument(provider, web=True)
    yield exporter
    otel.uninstrument()
    provider.shutdown()
    connection.close()
    connection.close_pool()
    # The API lets a process set its provider once; OpenTelemetry's own test utilities reset it like this.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def broker():
    flush_test_broker()
    yield dramatiq.get_broker()
    flush_test_broker()


@pytest.fixture
def answering(committed_app, sandbox, fake_model, clean_breakers, settings):
    """alpha's and beta's committed apps (the sandbox's corp and agent), each tenant asking the fake model."""
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.05  # a send WeCom refused is tried again within ~0.1 s
    sandbox.create_corp(BETA_CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET}])
    apps = {"alpha": committed_app("alpha"), "beta": committed_app("beta", corp_id=BETA_CORP_ID)}
    for schema in apps:
        with schema_context(schema):
            AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=5)
    yield apps
    for schema in apps:
        with schema_context(schema):
            AIProvider.objects.all().delete()


def customer_writes(app, schema: str, *, user: str, text: str) -> InboundMessage:
    """WeCom's encrypted callback for `user`'s text, through Django's test client; the stored row."""
    sender = sender_for(app, f"http://testserver{callback_path(app, schema)}")
    prepared = sender.prepare(text_message(corp_id=app.corp_id, agent_id=app.agent_id, from_user=user, content=text))
    response = Client().post(relative(prepared.url), data=prepared.body, content_type="text/xml")
    assert response.status_code == 200, response.content
    with schema_context(schema):
        return InboundMessage.objects.get(app=app, sender=user)


def run_worker_until_idle(sandbox, users: list[str]) -> None:
    """A real Dramatiq worker in this process, until every user got an answer and nothing is left to do."""
    worker = dramatiq.Worker(dramatiq.get_broker(), queues=set(QUEUES), worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_until(lambda: all(sandbox.received_texts(user) for user in users), timeout=30,
                   message=lambda: f"answers for {users}: {sandbox.deliveries()}")
        wait_until_idle(schemas=["alpha", "beta"], queues=QUEUES)
    finally:
        worker.stop()


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span's parents up to the root of its trace, nearest first."""
    chain = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        chain.append(span)
    return chain


def tenants_named(spans: list[ReadableSpan]) -> set[str]:
    return {span.attributes[TENANT_ATTRIBUTE] for span in spans if TENANT_ATTRIBUTE in span.attributes}


def exported_strings(spans: list[ReadableSpan]) -> list[str]:
    """Every string value of the spans' attributes, their events' attributes and statuses."""
    values = []
    for span in spans:
        for attributes in [span.attributes, *(event.attributes for event in span.events)]:
            values += [str(value) for value in attributes.values()]
        values.append(span.status.description or "")
    return values


def url_of(span: ReadableSpan) -> str:
    # The old and the stable HTTP semantic conventions name it differently.
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


def test_one_trace_spans_the_callback_the_jobs_and_the_calls_to_the_model_and_to_wecom(
        answering, spans, sandbox, broker):
    # WeCom refuses the first send as busy (-1): the answer then goes out from a delivery job.
    sandbox.inject_fault("/cgi-bin/message/send", corp_id=CORP_ID, errcode=-1, count=1)
    alpha_message = customer_writes(answering["alpha"], "alpha", user="zhangsan", text="你好，请问几点营业？")
    beta_message = customer_writes(answering["beta"], "beta", user="lisi", text="退货怎么办？")

    run_worker_until_idle(sandbox, ["zhangsan", "lisi"])

    finished = spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in finished}
    callbacks = {span.attributes.get(TENANT_ATTRIBUTE): span for span in finished
                 if span.kind == SpanKind.SERVER and span.name == "POST wecom/callback/<str:callback_id>/"}
    assert set(callbacks) == {"alpha", "beta"}
    assert callbacks["alpha"].attributes[TRACE_ID_ATTRIBUTE] == str(alpha_message.trace_id)
    assert callbacks["beta"].attributes[TRACE_ID_ATTRIBUTE] == str(beta_message.trace_id)
    assert callbacks["alpha"].context.trace_id != callbacks["beta"].context.trace_id

    alpha_trace = [span for span in finished if span.context.trace_id == callbacks["alpha"].context.trace_id]
    jobs = [span for span in alpha_trace if span.kind == SpanKind.CONSUMER]
    [processing] = [job for job in jobs if job.name == "conversations.answer_backlog"]
    deliveries = [job for job in jobs if job.name == "conversations.deliver_outbound"]
    assert deliveries and len(jobs) == 1 + len(deliveries), [job.name for job in jobs]
    # web -> worker: the job continues the request's span; the delivery jobs continue the processing job's.
    assert processing.parent.span_id == callbacks["alpha"].context.span_id
    assert all(processing in ancestors(delivery, by_id) for delivery in deliveries)
    assert processing.attributes[TENANT_ATTRIBUTE] == "alpha"
    assert processing.attributes["messaging.destination.name"] == "inbound"
    assert {delivery.attributes["messaging.destination.name"] for delivery in deliveries} == {"outbound"}

    # worker -> the model: the HTTP call is a child of the question's span, which names the message.
    model_calls = [span for span in alpha_trace if span.kind == SpanKind.CLIENT
                   and url_of(span).endswith("/v1/chat/completions")]
    assert len(model_calls) == 1
    question = by_id[model_calls[0].parent.span_id]
    assert question.name == "conversations.ask_model"
    assert question.attributes[TRACE_ID_ATTRIBUTE] == str(alpha_message.trace_id)
    assert processing in ancestors(model_calls[0], by_id)

    # worker -> WeCom: the refused send under the processing job, the one that went out under a delivery job.
    sends = [span for span in alpha_trace if span.kind == SpanKind.CLIENT
             and "/cgi-bin/message/send" in url_of(span)]
    in_delivery = [send for send in sends if set(deliveries) & set(ancestors(send, by_id))]
    assert in_delivery and len(in_delivery) < len(sends)  # the refused attempt is the processing job's own
    assert all(processing in ancestors(send, by_id) for send in sends)
    # WeCom's access token is in the send's query string: it never leaves the process.
    assert all("access_token=[REDACTED]" in url_of(send) for send in sends)
    assert not [value for value in exported_strings(finished) if "sbxtok" in value]  # the sandbox's tokens
    for send in sends:
        row_span = by_id[send.parent.span_id]
        assert row_span.name == "conversations.send_outbound"
        assert row_span.attributes[TRACE_ID_ATTRIBUTE] == str(alpha_message.trace_id)

    # The database and Redis of the same trace: the request's and the jobs' queries and commands.
    systems = {span.attributes.get("db.system") or span.attributes.get("db.system.name") for span in alpha_trace}
    assert {"postgresql", "redis"} <= systems

    # Tenants never share a trace: every span of alpha's trace that names a tenant names alpha, and beta's beta.
    beta_trace = [span for span in finished if span.context.trace_id == callbacks["beta"].context.trace_id]
    assert tenants_named(alpha_trace) == {"alpha"} and tenants_named(beta_trace) == {"beta"}
    beta_jobs = [span.name for span in beta_trace if span.kind == SpanKind.CONSUMER]
    assert beta_jobs.count("conversations.answer_backlog") == 1
    # Every job belongs to one of the two traces, and no client span (polling, acks) starts a trace of its own.
    assert {span.context.trace_id for span in finished if span.kind == SpanKind.CONSUMER} \
        == {callbacks["alpha"].context.trace_id, callbacks["beta"].context.trace_id}
    assert [span.name for span in finished if span.kind == SpanKind.CLIENT and span.parent is None] == []


def test_the_enqueued_job_carries_the_trace_context_of_the_request(answering, spans, broker):
    customer_writes(answering["alpha"], "alpha", user="zhangsan", text="你好")

    [job] = queued_jobs("inbound", actor_name="conversations.answer_backlog")
    [callback] = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    version, trace_id, parent_id, flags = job.options["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 0x01  # W3C trace context, sampled
    assert int(trace_id, 16) == callback.context.trace_id
    assert int(parent_id, 16) == callback.context.span_id
    assert job.options[SCHEMA_OPTION] == "alpha"


def test_a_job_the_tenant_middleware_refuses_has_its_span_with_the_reason(spans, broker, committed_db):
    marker = uuid.uuid4().hex[:8]
    with schema_context("alpha"):
        add_note.send(f"{marker}-alpha")
    add_note.send_with_options(args=(f"{marker}-nosuch",), **{SCHEMA_OPTION: "nosuch"})
    worker = dramatiq.Worker(dramatiq.get_broker(), queues={"probe"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        jobs = wait_until(lambda: len(consumer_spans(spans)) == 2 and consumer_spans(spans), timeout=20,
                          message="two probe jobs")
    finally:
        worker.stop()
        with schema_context("alpha"):
            Note.objects.filter(text__startswith=marker).delete()

    by_tenant = {job.attributes[TENANT_ATTRIBUTE]: job for job in jobs}
    assert {job.name for job in jobs} == {"probe.add_note"}
    assert by_tenant["alpha"].status.status_code == StatusCode.UNSET
    assert by_tenant["nosuch"].status.status_code == StatusCode.ERROR
    assert "unknown tenant schema" in by_tenant["nosuch"].status.description
    # The tenant lookup is part of the job: its query is a child of the job's span.
    queries = [span for span in spans.get_finished_spans() if span.attributes.get("db.system") == "postgresql"]
    assert any(query.parent.span_id == by_tenant["nosuch"].context.span_id for query in queries)


def consumer_spans(exporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == SpanKind.CONSUMER]


def test_without_tracing_the_job_carries_no_trace_context(answering, broker):
    customer_writes(answering["alpha"], "alpha", user="zhangsan", text="你好")

    [job] = queued_jobs("inbound", actor_name="conversations.answer_backlog")
    assert "traceparent" not in job.options
    assert job.options[SCHEMA_OPTION] == "alpha"


def test_without_an_endpoint_nothing_is_set_up(monkeypatch):
    monkeypatch.setattr(telemetry, "_decided", False)
    libraries = (psycopg.connect, psycopg.Connection.connect, redis.Redis.execute_command,
                 httpx.HTTPTransport.handle_request)
    middleware = list(django_settings.MIDDLEWARE)
    provider = trace.get_tracer_provider()

    assert telemetry.configure("web", environ={"OTEL_SERVICE_NAME": "wecomdesk-web"}) is None
    assert telemetry.configure("worker", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None

    # The first answer holds for the process, and it changed nothing: no provider, no patched library.
    assert trace.get_tracer_provider() is provider
    assert isinstance(provider, trace.ProxyTracerProvider)
    assert (psycopg.connect, psycopg.Connection.connect, redis.Redis.execute_command,
            httpx.HTTPTransport.handle_request) == libraries
    assert list(django_settings.MIDDLEWARE) == middleware
    assert not [name for name in middleware if name.startswith("opentelemetry")]  # the traced tests undid theirs


@pytest.mark.parametrize(("environ", "wanted"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_wanted_only_with_an_endpoint(environ, wanted):
    assert telemetry.tracing_wanted(environ) is wanted


def test_an_unknown_process_role_is_refused():
    with pytest.raises(ValueError, match="unknown process role"):
        telemetry.configure("scheduler")
