"""HTTP front of the WeCom sandbox: /cgi-bin/ to the simulated APIs, /v1/ to the fake model, /sandbox/ to control."""

from __future__ import annotations

import json
import logging
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from wecom_sandbox import api, control, media, model
from wecom_sandbox.state import SandboxState

logger = logging.getLogger("wecom_sandbox")

MAX_BODY_BYTES = 2 * 1024 * 1024


class SandboxServer(ThreadingHTTPServer):
    """A threaded HTTP server holding one SandboxState; stop() works from any other thread."""

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a worker's burst of concurrent model calls and sends
    # got connections reset, which no real API server does.
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], state: SandboxState | None = None):
        super().__init__(address, SandboxRequestHandler)
        self.state = state or SandboxState()
        self.model = model.ModelState()  # the OpenAI-compatible fake model under /v1/

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop serve_forever() (running in another thread) and release the socket."""
        self.shutdown()
        self.server_close()


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API; every response sets Content-Length
    # Headers and body go out in separate writes; with Nagle on, keep-alive clients wait ~40 ms each.
    disable_nagle_algorithm = True

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def log_message(self, format, *args):  # noqa: A002 - signature fixed by BaseHTTPRequestHandler
        logger.debug("sandbox.http %s", format % args)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        # media/upload carries files up to WeCom's 20 MB; everything else is small JSON.
        raw = self._read_body(media.MAX_UPLOAD_BODY_BYTES if url.path == "/cgi-bin/media/upload" else MAX_BODY_BYTES)
        if raw is None:
            return
        if url.path.startswith("/cgi-bin/"):
            self._wecom_api(url.path.removeprefix("/cgi-bin/"), query, raw)
        elif url.path.startswith("/v1/"):
            self._model_api(url.path, raw)
        elif url.path.startswith("/sandbox/"):
            self._control(url.path.removeprefix("/sandbox/").rstrip("/"), query, raw)
        else:
            self._send_json(404, {"detail": "not found"})

    def _read_body(self, limit: int) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self._send_json(413, {"detail": "body too large"})
            return None
        return self.rfile.read(length) if length else b""

    def _wecom_api(self, path: str, query: dict, raw: bytes) -> None:
        if path not in api.PATHS and path not in media.PATHS:
            self._send_json(404, {"errcode": 404, "errmsg": f"unknown api {path}"})
            return
        state = self.server.state
        corp_id = api.corp_of_request(state, path, query)
        fault = state.take_fault(path, corp_id)
        if fault and fault.delay:
            time.sleep(fault.delay)  # outside the lock: a slow answer must not stall other calls
        if fault and fault.http_status:
            state.log_call(
                path=path, corp_id=corp_id, http_status=fault.http_status, errcode=None, fault=True
            )
            self._send(fault.http_status, b"sandbox injected failure", "text/plain")
            return
        if fault and fault.errcode is not None:
            payload = api.error(fault.errcode, "injected fault")
        elif path in media.PATHS:
            payload = media.handle(state, path, query, raw, self.headers.get("Content-Type", ""))
        else:
            payload = api.handle(state, path, query, _json_object(raw))
        if isinstance(payload, media.MediaFile):  # media/get: the bytes themselves
            state.log_call(path=path, corp_id=corp_id, http_status=200, errcode=None, fault=bool(fault))
            disposition = f"attachment; filename*=UTF-8''{quote(payload.filename)}"
            self._send(200, payload.content, payload.content_type, {"Content-Disposition": disposition},
                       charset=False)
            return
        state.log_call(
            path=path, corp_id=corp_id, http_status=200, errcode=payload.get("errcode"), fault=bool(fault)
        )
        self._send_json(200, payload)

    def _model_api(self, path: str, raw: bytes) -> None:
        reply = model.handle(self.server.model, self.command, path, self.headers, raw)
        if reply.delay:
            time.sleep(reply.delay)  # outside the lock, like WeCom API faults
        if reply.disconnect:
            self.close_connection = True  # no answer at all: the client sees the connection dropped
            return
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _control(self, path: str, query: dict, raw: bytes) -> None:
        target = self.server.state
        handler = control.ROUTES.get((self.command, path))
        if path.startswith("model/"):
            handler, target = model.ROUTES.get((self.command, path)), self.server.model
        elif (self.command, path) == ("POST", "reset"):
            self.server.model.reset()  # a sandbox reset forgets the fake model's settings and calls too
        if handler is None:
            self._send_json(404, {"detail": f"no control endpoint {self.command} /sandbox/{path}"})
            return
        body = _json_object(raw) if raw else {}
        if body is None:
            self._send_json(400, {"detail": "body must be a JSON object"})
            return
        try:
            status, payload = handler(target, query, body)
        except (control.BadRequest, KeyError, TypeError, ValueError) as exc:
            status, payload = 400, {"detail": str(exc) or type(exc).__name__}
        self._send_json(status, payload)

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None,
              *, charset: bool = True) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8" if charset else content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout beat an injected delay); nothing left to tell it.
            self.close_connection = True


def _json_object(raw: bytes) -> dict | None:
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def create_server(
    host: str = "127.0.0.1", port: int = 8090, state: SandboxState | None = None
) -> SandboxServer:
    """Bind (port 0 picks a free port) without serving yet; call serve_forever() or use start_sandbox()."""
    return SandboxServer((host, port), state)
