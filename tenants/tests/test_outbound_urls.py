"""Outbound URL safety: with ALLOW_PRIVATE_OUTBOUND_URLS off, URLs that reach private, loopback, link-local,
multicast, reserved or unspecified addresses are refused when saved and when connecting; public ones pass."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest

from tenants.outbound_urls import OutboundURLRefused, check_outbound_url, clear_dns_cache, guarded_transport


@pytest.mark.parametrize(("url", "kind"), [
    ("http://127.0.0.1:8000/v1", "loopback"),
    ("http://10.1.2.3/v1", "private"),
    ("http://192.168.0.10/v1", "private"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::1]/v1", "loopback"),
    ("http://[::ffff:127.0.0.1]/v1", "loopback"),
    ("http://[::ffff:10.0.0.1]/v1", "private"),
    ("http://[fe80::1]/v1", "link-local"),
    ("http://[fd00::1]/v1", "private"),
    ("http://0.0.0.0/v1", "unspecified"),
    ("http://224.0.0.1/v1", "multicast"),
    ("http://240.0.0.1/v1", "reserved"),
    ("http://100.64.0.1/v1", "not public"),
    ("http://localhost:8000/v1", "loopback"),      # a name: refused for what it resolves to
    ("http://2130706433/v1", "loopback"),          # 127.0.0.1 written as one decimal number
    ("http://0177.0.0.1/v1", "loopback"),          # ... in octal
    ("http://127.1/v1", "loopback"),               # ... in the short form
])
def test_private_addresses_are_refused(private_urls_refused, url, kind):
    with pytest.raises(OutboundURLRefused, match=f"is a {kind} address"):
        check_outbound_url(url)


@pytest.mark.parametrize("url", ["https://8.8.8.8/v1", "http://1.1.1.1:8080/v1", "https://[2606:4700:4700::1111]/v1"])
def test_public_ip_literals_are_accepted_without_a_lookup(private_urls_refused, url, monkeypatch):
    def no_dns(*args, **kwargs):
        raise AssertionError("an IP literal needs no DNS")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    check_outbound_url(url)  # no exception


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "http:///v1", "http://[::1/v1", "http://8.8.8.8:99999/"])
def test_malformed_urls_are_refused(private_urls_refused, url):
    with pytest.raises(OutboundURLRefused):
        check_outbound_url(url)


def test_a_name_with_any_private_address_is_refused(private_urls_refused, monkeypatch):
    """DNS is outside our world: an answer with one public and one private address is faked."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, **kw: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))])
    with pytest.raises(OutboundURLRefused, match="llm.example.com resolves to 10.0.0.7, which is a private"):
        check_outbound_url("https://llm.example.com/v1")


def test_the_setting_allows_private_addresses(settings):
    settings.ALLOW_PRIVATE_OUTBOUND_URLS = True
    check_outbound_url("http://127.0.0.1:8000/v1")
    check_outbound_url("http://169.254.169.254/")


@pytest.fixture
def local_http_server():
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_transport_refuses_to_connect_to_a_private_address(private_urls_refused, local_http_server):
    with httpx.Client(transport=guarded_transport()) as client:
        with pytest.raises(httpx.ConnectError, match="refused by the outbound URL policy: 127.0.0.1 is a loopback"):
            client.get(local_http_server)


def test_the_transport_checks_the_address_it_connects_to(private_urls_refused, local_http_server, monkeypatch):
    """A name that was public when the URL was saved and resolves to loopback now (DNS rebinding) is refused."""
    answers = iter([("93.184.215.14",), ("127.0.0.1",)])
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, **kw: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers)[0], port))])
    port = int(local_http_server.rsplit(":", 1)[1])
    check_outbound_url(f"http://rebind.example.com:{port}/")
    clear_dns_cache()  # the short cache has expired by the time of the request
    with httpx.Client(transport=guarded_transport()) as client:
        with pytest.raises(httpx.ConnectError, match="rebind.example.com resolves to 127.0.0.1, which is a loopback"):
            client.get(f"http://rebind.example.com:{port}/")


def test_the_transport_connects_when_the_setting_allows(settings, local_http_server):
    settings.ALLOW_PRIVATE_OUTBOUND_URLS = True
    with httpx.Client(transport=guarded_transport()) as client:
        assert client.get(local_http_server).text == "ok"


def test_the_transport_connects_to_the_checked_public_address(private_urls_refused, local_http_server, monkeypatch):
    """The connection goes to the address that was checked: here the name resolves 'publicly' (a faked answer),
    and the inner connect is pointed at our local server to show it receives exactly that address."""
    seen, real_getaddrinfo = [], socket.getaddrinfo

    def fake_dns(host, port, *args, **kwargs):
        if host == "public.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    transport = guarded_transport()
    inner = transport._pool._network_backend._inner

    def connect_tcp(host, port, **kwargs):
        seen.append(host)
        return type(inner).connect_tcp(inner, "127.0.0.1", int(local_http_server.rsplit(":", 1)[1]), **kwargs)

    monkeypatch.setattr(inner, "connect_tcp", connect_tcp)
    with httpx.Client(transport=transport) as client:
        assert client.get("http://public.example.com/").text == "ok"
    assert seen == ["93.184.215.14"]
