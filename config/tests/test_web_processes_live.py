"""The web tier as `make run` starts it (platform/Procfile.dev): gunicorn serves plain HTTP through config.wsgi, uvicorn
the WebSocket routes through config.asgi, each on its own port and with its own metrics directory. A signed WeCom
callback is stored through gunicorn; the agent page it serves tells agent.js to open its socket on uvicorn's port,
where the same session cookie is accepted from the page's origin, and a real browser's screen goes live. On SIGTERM
gunicorn finishes the callback it is reading before it exits (docs/DEPLOYMENT.md, "Graceful shutdown")."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlsplit

import httpx
import pytest
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth import get_user_model
from django.test import override_settings
from django_tenants.utils import schema_context
from websockets.sync.client import connect as ws_connect

from conversations.models import InboundMessage
from conversations.tests.test_metrics_live import scrape, total
from testing.accounts import login_cookie
from testing.broker import flush_test_broker
from testing.browser import expect
from testing.factories import AgentProfileFactory
from testing.processes import ROOT, LiveProcess, free_port, live_env
from testing.waiting import wait_until
from testing.wecom import sender_for
from tickets.tests.test_browser_agent import add_session, new_page
from wecom_sandbox.callbacks import text_message

AGENT_ID = 5151


def procfile_dev_command(role: str) -> str:
    for line in (ROOT / "platform" / "Procfile.dev").read_text().splitlines():
        if line.startswith(f"{role}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {role} in platform/Procfile.dev")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def web_tier(tenants_world, tmp_path):
    """web (gunicorn, 2 threads) on one port and websocket (uvicorn) on the next one, as Procfile.dev starts them."""
    web_port, ws_port = free_port(), free_port()
    env = live_env(HOST="127.0.0.1", PORT=str(web_port), WS_PORT=str(ws_port), WEB_THREADS="2",
                   WEB_GRACEFUL_SECONDS="10", METRICS_DIR=str(tmp_path / "metrics"),
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for inherited in ("PROMETHEUS_MULTIPROC_DIR", "WEBSOCKET_BASE_URL"):
        env.pop(inherited, None)
    processes = {role: LiveProcess(role, ["bash", "-c", "exec " + procfile_dev_command(role)], tmp_path, env)
                 for role in ("web", "websocket")}

    def output() -> str:
        return "\n".join(f"--- {name}\n{process.output()[-2000:]}" for name, process in processes.items())

    try:
        for port in (web_port, ws_port):
            wait_until(lambda port=port: answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, message=output)
        yield {"web": f"http://127.0.0.1:{web_port}", "ws_port": ws_port, "processes": processes, "output": output}
    finally:
        for process in processes.values():
            process.stop()
        flush_test_broker()  # the jobs the stored callbacks enqueued: no worker ran them


@pytest.fixture
def agent(committed_db):
    with schema_context("alpha"):
        profile = AgentProfileFactory(user__username="split-agent")
    yield profile
    with schema_context("alpha"):
        get_user_model().objects.filter(pk=profile.user_id).delete()


@pytest.mark.live
def test_gunicorn_stores_a_callback_and_the_agent_page_opens_its_socket_on_uvicorn(web_tier, committed_app, agent):
    web, ws_port = web_tier["web"], web_tier["ws_port"]
    # The web is gunicorn's master (exec all the way from the Procfile line), the websocket uvicorn.
    web_command = Path(f"/proc/{web_tier['processes']['web'].proc.pid}/cmdline").read_bytes().split(b"\0")
    assert web_command[1:3] == [b"-m", b"gunicorn"] and b"config.wsgi" in web_command

    app = committed_app("alpha", agent_id=AGENT_ID)
    sender = sender_for(app, f"{web}/t/alpha/wecom/callback/{app.callback_id}/")
    assert sender.send_text(from_user="split-customer", content="through WSGI").delivered
    with schema_context("alpha"):
        assert list(InboundMessage.objects.filter(app=app).values_list("sender", "content")) == [
            ("split-customer", "through WSGI")]

    # The page, from gunicorn, names uvicorn's port for the socket (WEBSOCKET_BASE_URL=":<WS_PORT>").
    cookie = login_cookie("alpha", "split-agent")
    page = httpx.get(f"{web}/t/alpha/agent/", cookies={"sessionid": cookie}, timeout=10)
    assert page.status_code == 200, page.text[:500]
    config = json.loads(re.search(r'<script type="application/json" id="agent-config">(.*?)</script>', page.text,
                                  re.DOTALL)[1])
    assert (config["wsBase"], config["ws"]) == (f":{ws_port}", "/t/alpha/ws/agent/")

    # What agent.js then does: the same host name on that port, with the page's origin and the session cookie.
    with ws_connect(f"ws://127.0.0.1:{ws_port}{config['ws']}", origin=web,
                    additional_headers={"Cookie": f"sessionid={cookie}"}, open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
    assert hello["type"] == "hello" and hello["socket"]

    # Each process serves its own metrics directory: the callback was counted by gunicorn's worker only.
    web_metrics = scrape(urlsplit(web).port)
    assert total(web_metrics, "wecomdesk_inbound_stage_total", tenant="alpha", stage="received") == 1
    assert total(scrape(ws_port), "wecomdesk_inbound_stage_total", tenant="alpha", stage="received") == 0


@pytest.mark.live
def test_gunicorn_finishes_the_callback_it_is_reading_when_told_to_stop(web_tier, committed_app):
    web, web_process = web_tier["web"], web_tier["processes"]["web"]
    app = committed_app("alpha", agent_id=AGENT_ID)
    prepared = sender_for(app, f"{web}/t/alpha/wecom/callback/{app.callback_id}/").prepare(
        text_message(corp_id=app.corp_id, agent_id=app.agent_id, from_user="in-flight", content="mid-shutdown"))
    target = urlsplit(prepared.url)
    body = prepared.body
    head = (f"POST {target.path}?{target.query} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()

    with socket.create_connection((target.hostname, target.port), timeout=20) as conn:
        # The request reaches Django, which waits for the rest of the body, when the stop comes.
        conn.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # for gunicorn to hand the connection to a thread; nothing is asserted from the wait
        web_process.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "Handling signal: term" in web_process.output(), timeout=10, message=web_tier["output"])
        assert web_process.proc.poll() is None  # the master waits for the request in hand
        conn.sendall(body[len(body) // 2:])
        response = b""
        while chunk := conn.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 200 "), response[:300]
    assert web_process.proc.wait(timeout=15) == 0, web_tier["output"]()
    with schema_context("alpha"):
        assert list(InboundMessage.objects.filter(app=app).values_list("sender", "content")) == [
            ("in-flight", "mid-shutdown")]


@pytest.mark.live
def test_in_a_browser_the_page_from_gunicorn_goes_live_on_uvicorns_socket(browser, web_tier, agent):
    """What a `make run` user sees: one address in the address bar, the agent screen live."""
    context, page = new_page(browser, locale="en")
    sockets: list[str] = []
    try:
        page.on("websocket", lambda ws: sockets.append(ws.url))
        add_session(context, web_tier["web"], "alpha", "split-agent")
        page.goto(f"{web_tier['web']}/t/alpha/agent/")
        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    finally:
        context.close()
    assert sockets == [f"ws://127.0.0.1:{web_tier['ws_port']}/t/alpha/ws/agent/"]


@override_settings(ALLOWED_HOSTS=["localhost", ".localhost"])
def test_the_socket_accepts_the_pages_origin_on_another_port_and_refuses_a_foreign_one():
    """Channels compares the Origin's host name with ALLOWED_HOSTS and ignores its port: the page served on
    :8000 may open its socket on :8001 (`make run`), a page of another site may not."""
    validator = AllowedHostsOriginValidator(lambda scope, receive, send: None)
    assert validator.valid_origin(urlparse("http://localhost:8000"))
    assert validator.valid_origin(urlparse("http://demo.localhost:8000"))
    assert not validator.valid_origin(urlparse("http://evil.example:8000"))
