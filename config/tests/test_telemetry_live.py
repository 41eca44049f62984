"""Tracing across real processes: a uvicorn web process and a Dramatiq worker, each exporting over
OTLP/HTTP to a receiver in this process, put the callback, the job and the send to WeCom in one trace."""

from __future__ import annotations

import gzip
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django_tenants.utils import schema_context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from conversations.ai.models import AIProvider
from conversations.models import InboundMessage
from testing.factories import APP_SECRET, AIProviderFactory
from testing.processes import LiveProcess, free_port, live_env
from testing.vectors import CORP_ID
from testing.waiting import wait_until
from testing.wecom import sender_for

pytestmark = pytest.mark.live
AGENT_ID = 7171


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    span: Span

    def attribute(self, key: str):
        for pair in self.span.attributes:
            if pair.key == key:
                return getattr(pair.value, pair.value.WhichOneof("value"))
        return None


class OtlpReceiver:
    """What an OpenTelemetry collector's OTLP/HTTP traces endpoint does, minus the forwarding: decode and keep."""

    def __init__(self):
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.keep(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def keep(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(pair.value.string_value for pair in resource_spans.resource.attributes
                           if pair.key == "service.name")
            with self._lock:
                self.spans += [ReceivedSpan(service, span) for scope in resource_spans.scope_spans
                               for span in scope.spans]

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def traced_web(otlp, tenants_world, tmp_path):
    """A uvicorn web process of its own (the session's runs without tracing), exporting to the receiver."""
    port = free_port()
    web = LiveProcess("web-traced", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                                     "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                      tmp_path, live_env(**tracing_env(otlp)))
    url = f"http://127.0.0.1:{port}"

    def ready():
        assert web.proc.poll() is None, f"web server exited:\n{web.output()}"
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30, message="the traced web server")
    yield url, web
    web.stop()


def tracing_env(otlp: OtlpReceiver) -> dict[str, str]:
    # Batches leave every 100 ms instead of every 5 s, so the test waits less.
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


@pytest.fixture
def answering_app(committed_app, sandbox, fake_model, clean_breakers):
    app = committed_app("alpha", agent_id=AGENT_ID)
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET}])
    with schema_context("alpha"):
        provider = AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=5)
    yield app
    with schema_context("alpha"):
        AIProvider.objects.filter(pk=provider.pk).delete()


def test_the_web_and_the_worker_process_export_one_trace_over_otlp(answering_app, otlp, traced_web, sandbox,
                                                                    sandbox_server, start_worker):
    web_url, web = traced_web
    worker = start_worker("inbound", "outbound", TEST_WECOM_API_BASE=sandbox_server, **tracing_env(otlp))
    sender = sender_for(answering_app, f"{web_url}/t/alpha/wecom/callback/{answering_app.callback_id}/")

    assert sender.send_text(from_user="zhangsan", content="你好").delivered
    wait_until(lambda: sandbox.received_texts("zhangsan"), timeout=30, message=lambda: worker.output()[-3000:])

    def one_trace() -> tuple[ReceivedSpan, ReceivedSpan, ReceivedSpan] | None:
        """The callback's span, the job's and the send's, once all three are exported."""
        spans = otlp.received()
        callbacks = [s for s in spans if s.span.kind == Span.SPAN_KIND_SERVER
                     and s.span.name == "POST wecom/callback/<str:callback_id>/"]
        jobs = [s for s in spans if s.span.name == "conversations.answer_backlog"]
        sends = [s for s in spans if s.span.kind == Span.SPAN_KIND_CLIENT
                 and "/cgi-bin/message/send" in str(s.attribute("http.url") or s.attribute("url.full"))]
        return (callbacks[0], jobs[0], sends[0]) if callbacks and jobs and sends else None

    callback, job, send = wait_until(one_trace, timeout=20,
                                     message=lambda: f"the spans\n{web.output()}\n{worker.output()[-3000:]}")
    spans = otlp.received()
    assert len({s.span.trace_id for s in spans if s.span.kind == Span.SPAN_KIND_SERVER}) == 1  # one callback
    assert job.span.trace_id == send.span.trace_id == callback.span.trace_id
    in_trace = [s for s in spans if s.span.trace_id == callback.span.trace_id]

    assert callback.service == "wecomdesk-web"
    assert {job.service, send.service} == {"wecomdesk-worker"}
    assert job.span.kind == Span.SPAN_KIND_CONSUMER
    assert "access_token=[REDACTED]" in str(send.attribute("http.url") or send.attribute("url.full"))
    assert job.span.parent_span_id == callback.span.span_id  # the worker continued the web's span
    assert job.attribute("wecomdesk.tenant") == "alpha" and callback.attribute("wecomdesk.tenant") == "alpha"
    with schema_context("alpha"):
        inbound = InboundMessage.objects.get(app=answering_app)
    assert callback.attribute("wecomdesk.trace_id") == str(inbound.trace_id)
    assert {s.attribute("db.system") for s in in_trace if s.service == "wecomdesk-web"} >= {"postgresql", "redis"}
    assert {s.attribute("db.system") for s in in_trace if s.service == "wecomdesk-worker"} >= {"postgresql", "redis"}
