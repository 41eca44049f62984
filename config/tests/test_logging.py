"""Logs as production writes them: one JSON object a line from every logger, with the context of the
entry point, the OpenTelemetry span when there is one, and never a secret.

The secrets are this run's own (random) WeCom corp secret, callback Token and EncodingAESKey, the AI
provider's key, a REST API key and the access token the sandbox hands out; the flows are real: an
encrypted callback, an answer from the sandbox's model, deliveries through the sandbox (one of them
failing), REST calls, and lines that name a URL with its access_token.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
from django.test import Client
from django_tenants.utils import schema_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from config.logging import REDACTED, redact_secrets, redact_text
from conversations.ai.breaker import reset_breaker
from conversations.ai.models import AIProvider
from conversations.models import ApiKey, InboundMessage
from conversations.services.answering import answer_pending
from conversations.services.api_keys import create_api_key
from conversations.wecom.client import WeComClient
from testing.factories import AIProviderFactory, WeComAppFactory
from testing.logs import parse_json_lines, production_json_logs
from testing.processes import ROOT, LiveProcess, free_port, live_env
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import callback_path, relative
from wecom_sandbox.callbacks import CallbackSender, text_message

LOG_CORP = "wwlogs7e3a0b19c24d"
LOG_AGENT = 1000777
CUSTOMER = "wangwu"
UNREACHABLE_USER = 81013  # WeCom: user, department and tag all invalid (a permanent error)
# Dramatiq's own format, for the processes that never load Django: the supervisor and its forks.
DRAMATIQ_OWN_PROCESSES = re.compile(r"\[[^]]+\] \[PID \d+\] \[\w+\] \[dramatiq\.(MainProcess|ForkProcess\(\d+\))\] ")


# -- redaction, the processor itself -----------------------------------------------------------------


def test_secret_keys_are_masked_wherever_they_sit_in_an_event():
    event = {"event": "wecom.call", "corp_secret": "s1", "headers": {"Authorization": "Bearer abcdefgh",
             "X-Api-Key": "k1", "Accept": "application/json"}, "app": {"encoding_aes_key": "a1", "agent_id": 7},
             "calls": [{"access_token": "t1", "path": "message/send"}], "provider_api_key": "k2",
             "natural_key": "msg:42", "usage_total_tokens": 31, "_record": None}
    redacted = redact_secrets(None, "info", event)
    assert redacted == {
        "event": "wecom.call", "corp_secret": REDACTED,
        "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "application/json"},
        "app": {"encoding_aes_key": REDACTED, "agent_id": 7},
        "calls": [{"access_token": REDACTED, "path": "message/send"}], "provider_api_key": REDACTED,
        "natural_key": "msg:42", "usage_total_tokens": 31, "_record": None}


@pytest.mark.parametrize(("text", "expected"), [
    ("GET https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=S3cr-et_1 \"HTTP/1.1 200 OK\"",
     "GET https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1&corpsecret=[REDACTED] \"HTTP/1.1 200 OK\""),
    ("Client error '404 Not Found' for url 'http://h/cgi-bin/message/send?access_token=AbC.123&debug=1'",
     "Client error '404 Not Found' for url 'http://h/cgi-bin/message/send?access_token=[REDACTED]&debug=1'"),
    ("https://generativelanguage.example/v1/models?key=AIzaSyXYZ", "https://generativelanguage.example/v1/models"
     "?key=[REDACTED]"),
    ('{"errcode":0,"access_token":"tok-1","expires_in":7200}',
     '{"errcode":0,"access_token":"[REDACTED]","expires_in":7200}'),
    ("{'secret': 'abc', 'agent_id': 7}", "{'secret': '[REDACTED]', 'agent_id': 7}"),
    ("Authorization: Bearer sk-live-123456", "Authorization: Bearer [REDACTED]"),
    ("Authorization: Api-Key wd_ab12cd_secretpart", "Authorization: Api-Key [REDACTED]"),
    ("Cookie: sessionid=xyz123; csrftoken=abc456", "Cookie: sessionid=[REDACTED]; csrftoken=[REDACTED]"),
    # Not secrets: keys and words that only end like one.
    ("stored natural_key=msg:42 idempotency_key=inbound:7:1 max_tokens=512",
     "stored natural_key=msg:42 idempotency_key=inbound:7:1 max_tokens=512"),
])
def test_secrets_inside_text_are_masked(text, expected):
    assert redact_text(text) == expected


# -- OpenTelemetry ---------------------------------------------------------------------------------------


def test_lines_logged_inside_a_span_name_its_trace_and_span_ids():
    span = NonRecordingSpan(SpanContext(trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736, span_id=0x00F067AA0BA902B7,
                                        is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)))
    with production_json_logs() as logs:
        with trace.use_span(span):
            structlog.get_logger("tests").info("inside.span")
            logging.getLogger("tests.stdlib").warning("inside the span too")
        structlog.get_logger("tests").info("outside.span")
    inside, stdlib, outside = logs.lines()
    for line in (inside, stdlib):
        assert (line["otel_trace_id"], line["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    assert "otel_trace_id" not in outside and "span_id" not in outside


# -- the secrets of a real flow ----------------------------------------------------------------------------


def _aes_key() -> str:
    """A random EncodingAESKey: 43 characters of base64 without '+' or '/' (as the WeCom console makes)."""
    while True:
        key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
        if key.isalnum():
            return key


@dataclass(frozen=True)
class Secrets:
    corp_secret: str
    callback_token: str
    aes_key: str
    model_key: str

    @classmethod
    def new(cls) -> Secrets:
        return cls(corp_secret="cs" + secrets.token_hex(16), callback_token="tk" + secrets.token_hex(12),
                   aes_key=_aes_key(), model_key="sk-" + secrets.token_hex(16))


def _assert_no_secret(text: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        assert len(value) >= 16, f"{name} is too short to prove anything"
        assert value not in text, f"the {name} appears in the logs"


def _callback_sender(keys: Secrets, url: str, **kwargs) -> CallbackSender:
    return CallbackSender(url=url, token=keys.callback_token, encoding_aes_key=keys.aes_key, receive_id=LOG_CORP,
                          agent_id=LOG_AGENT, **kwargs)


@pytest.fixture
def keys() -> Secrets:
    return Secrets.new()


@pytest.fixture
def secret_app(tenant_a, sandbox, keys):
    """Alpha's app on a corp of the sandbox that knows only this run's secrets, with the model behind it."""
    sandbox.create_corp(LOG_CORP, apps=[{"agent_id": LOG_AGENT, "secret": keys.corp_secret}])
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory(corp_id=LOG_CORP, agent_id=LOG_AGENT, secret=keys.corp_secret,
                              token=keys.callback_token, encoding_aes_key=keys.aes_key)
        AIProviderFactory(base_url=sandbox.model_base_url, api_key=keys.model_key, timeout_seconds=2,
                          breaker_fail_max=5)
        yield app
        reset_breaker("alpha")


@pytest.mark.django_db
def test_a_real_flow_logs_json_with_its_context_and_none_of_its_secrets(secret_app, keys, sandbox, sandbox_server):
    with schema_context("alpha"):
        _, api_key = create_api_key(name="logs")
    sender = _callback_sender(keys, "http://testserver" + callback_path(secret_app, "alpha"))

    with production_json_logs() as logs:
        logging.getLogger("httpx").setLevel(logging.INFO)  # an operator debugging: every request URL
        # An encrypted callback, stored by the view.
        prepared = sender.prepare(text_message(corp_id=LOG_CORP, agent_id=LOG_AGENT, from_user=CUSTOMER,
                                               content="你好"))
        stored = Client().post(relative(prepared.url), data=prepared.body, content_type="text/xml",
                               HTTP_X_REQUEST_ID="edge-callback-1")
        with schema_context("alpha"):
            # Answered by the model and delivered through the sandbox (gettoken, then message/send).
            assert answer_pending() is None
            token = WeComClient(secret_app).access_token()
            # A model that refuses the key, and a send WeCom refuses for good.
            sandbox.model_fail_next(kind="http_error", status=401)
            sandbox.inject_fault("message/send", corp_id=LOG_CORP, errcode=UNREACHABLE_USER)
            _customer_writes_again(sender)
            assert answer_pending() is None
            # The REST API with the key, and with a wrong one.
            good = Client().get("/t/alpha/api/dead-letters/", HTTP_AUTHORIZATION=f"Api-Key {api_key}")
            bad = Client().get("/t/alpha/api/dead-letters/", HTTP_AUTHORIZATION=f"Api-Key {api_key}x")
            # Lines that name a URL with the token, as a careless call site or a library would write them.
            send_url = f"{sandbox_server}/cgi-bin/message/send?access_token={token}&debug=1"
            structlog.get_logger("conversations.wecom").warning("wecom.call_failed", url=send_url,
                                                                 params={"access_token": token})
            try:
                httpx.Response(502, request=httpx.Request("POST", send_url)).raise_for_status()
            except httpx.HTTPStatusError:
                logging.getLogger("conversations.wecom.http").exception("WeCom answered %s", "502")
            WeComClient(secret_app).forget_token(token)

    assert stored.status_code == 200 and (good.status_code, bad.status_code) == (200, 401)
    assert len(sandbox.received_texts(CUSTOMER, corp_id=LOG_CORP)) == 1  # the second send was refused
    _assert_no_secret(logs.text(), {"corp secret": keys.corp_secret, "callback Token": keys.callback_token,
                                    "EncodingAESKey": keys.aes_key, "model key": keys.model_key,
                                    "API key": api_key, "access token": token})
    lines = logs.lines()  # every line is one JSON object
    text = logs.text()
    assert "corpsecret=[REDACTED]" in text  # httpx's gettoken line was there, masked
    assert "access_token=[REDACTED]" in text
    [call_failed] = logs.events("wecom.call_failed")
    assert call_failed["params"] == {"access_token": REDACTED}
    [http_error] = [line for line in lines if line["logger"] == "conversations.wecom.http"]
    assert "access_token=[REDACTED]" in http_error["exception"]

    with schema_context("alpha"):
        first = InboundMessage.objects.filter(app=secret_app).order_by("id").first()
    received = [line for line in logs.events("trace.received") if line["trace_id"] == str(first.trace_id)]
    assert [(line["request_id"], line["tenant"]) for line in received] == [("edge-callback-1", "alpha")]
    failed_model = logs.events("ai.llm.failed")
    assert failed_model and all(line["tenant"] == "alpha" and line["trace_id"] for line in failed_model)
    [dead] = logs.events("trace.dead")
    assert (dead["errcode"], dead["tenant"]) == (UNREACHABLE_USER, "alpha")
    with schema_context("alpha"):
        ApiKey.objects.all().delete()


def _customer_writes_again(sender: CallbackSender) -> None:
    prepared = sender.prepare(text_message(corp_id=LOG_CORP, agent_id=LOG_AGENT, from_user=CUSTOMER,
                                           content="怎么开发票"))
    assert Client().post(relative(prepared.url), data=prepared.body, content_type="text/xml").status_code == 200


# -- the production processes ------------------------------------------------------------------------------


def _procfile_command(role: str) -> str:
    for line in (ROOT / "platform" / "Procfile").read_text().splitlines():
        if line.startswith(f"{role}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {role} in platform/Procfile")


def _json_lines_of_worker(output: str) -> list[dict]:
    """The worker's log lines: JSON from its worker processes. Plain text comes only from where none of
    our code runs: rundramatiq's banner (` * Discovered tasks module: ...`, on stdout), and the few
    lines of Dramatiq's supervisor and of its fork processes (booting, stopping), which never load Django."""
    plain = [line for line in output.splitlines() if line.strip() and not line.startswith("{")]
    assert all(line.startswith(" * ") or DRAMATIQ_OWN_PROCESSES.match(line) for line in plain), plain
    return parse_json_lines("\n".join(line for line in output.splitlines() if line.startswith("{")))


@pytest.fixture
def secret_app_committed(committed_app, sandbox, keys):
    sandbox.create_corp(LOG_CORP, apps=[{"agent_id": LOG_AGENT, "secret": keys.corp_secret}])
    app = committed_app("alpha", corp_id=LOG_CORP, agent_id=LOG_AGENT, secret=keys.corp_secret,
                        token=keys.callback_token, encoding_aes_key=keys.aes_key)
    with schema_context("alpha"):
        reset_breaker("alpha")
        AIProviderFactory(base_url=sandbox.model_base_url, api_key=keys.model_key, timeout_seconds=2)
        _, api_key = create_api_key(name="logs")
    yield app, api_key
    with schema_context("alpha"):
        AIProvider.objects.all().delete()
        ApiKey.objects.all().delete()
        reset_breaker("alpha")


@pytest.mark.live
def test_the_procfile_web_and_a_worker_write_json_with_context_and_no_secrets(
        secret_app_committed, keys, sandbox, sandbox_server, start_worker, tmp_path):
    app, api_key = secret_app_committed
    port = free_port()
    env = live_env(HOST="127.0.0.1", PORT=str(port), LOG_FORMAT="json", METRICS_DIR=str(tmp_path / "metrics"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    web = LiveProcess("web", ["bash", "-c", "exec " + _procfile_command("web")], tmp_path, env)
    worker = start_worker("inbound", "outbound", LOG_FORMAT="json", TEST_WECOM_API_BASE=sandbox_server)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), timeout=30, message=lambda: web.output()[-3000:])
        with socket.create_connection(("127.0.0.1", port)) as raw:  # gunicorn itself complains, as JSON
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
        with httpx.Client(headers={"X-Request-ID": "edge-live-1"}) as client:
            sender = _callback_sender(keys, f"{base}/t/alpha/wecom/callback/{app.callback_id}/", client=client)
            assert sender.send_text(from_user=CUSTOMER, content="你好").delivered
        wait_until(lambda: sandbox.received_texts(CUSTOMER, corp_id=LOG_CORP), timeout=30,
                   message=lambda: worker.output()[-3000:])
        assert httpx.get(f"{base}/t/alpha/api/dead-letters/", headers={"Authorization": f"Api-Key {api_key}"},
                         timeout=5).status_code == 200
        wait_until_idle(schemas=["alpha"], queues=["inbound", "outbound"])
        with schema_context("alpha"):
            token = WeComClient(app).access_token()
            inbound = InboundMessage.objects.get(app=app)
    finally:
        web.stop()

    web_lines = parse_json_lines(web.output())  # every line of the web, gunicorn's own (its master's too) included
    worker_lines = _json_lines_of_worker(worker.output())
    _assert_no_secret(web.output() + worker.output(), {
        "corp secret": keys.corp_secret, "callback Token": keys.callback_token, "EncodingAESKey": keys.aes_key,
        "model key": keys.model_key, "API key": api_key, "access token": token})

    assert any(line["logger"] == "gunicorn.error" and line["event"].startswith("Booting worker with pid")
               for line in web_lines)
    assert [line["level"] for line in web_lines if line["event"].startswith("Invalid request from ip=127.0.0.1")] == [
        "warning"]
    [received] = [line for line in web_lines if line["event"] == "trace.received"]
    assert (received["request_id"], received["tenant"], received["trace_id"]) == (
        "edge-live-1", "alpha", str(inbound.trace_id))
    # The job the callback enqueued carries the callback's trace id; so do its model call and its send.
    job_lines = [line for line in worker_lines if line.get("actor") == "conversations.answer_backlog"]
    assert job_lines and all((line["tenant"], line["trace_id"]) == ("alpha", str(inbound.trace_id))
                             and line["job_id"] for line in job_lines)
    assert {"ai.llm.answered", "wecom.token_refreshed", "trace.sent"} <= {line["event"] for line in job_lines}


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
