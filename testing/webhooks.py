"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 in a thread, answering with scripted
statuses, that keeps what it received and checks signatures the way docs/API.md tells integrators to."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLAY_WINDOW_SECONDS = 300


def verify_signature(*, secret: str, headers: dict[str, str], body: bytes, now: float | None = None) -> bool:
    """The receiver's check, as documented: HMAC-SHA256 of "<timestamp>.<body>", compared in constant time,
    and a timestamp within five minutes of now (an old request replayed is refused)."""
    timestamp = headers.get("X-WecomDesk-Timestamp", "")
    given = headers.get("X-WecomDesk-Signature", "")
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event_type(self) -> str:
        return self.headers.get("X-WecomDesk-Event", "")


class WebhookReceiver:
    """`statuses`: the answers to the first requests in order, then `default_status` for the rest; each after
    `delay_seconds`."""

    def __init__(self, *, statuses: list[int] | None = None, default_status: int = 200, delay_seconds: float = 0):
        self.statuses = list(statuses or [])
        self.default_status = default_status
        self.delay_seconds = delay_seconds  # a slow receiver: each request is answered this late
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.received.append(Received(path=self.path, headers=dict(self.headers.items()), body=body))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
                time.sleep(receiver.delay_seconds)  # paces the answer (a slow receiver), not a wait for an outcome
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def events(self, event_type: str | None = None) -> list[Received]:
        with self._lock:
            return [item for item in self.received if event_type is None or item.event_type == event_type]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the webhook receiver did not stop"
