"""Outbound URL safety (SSRF): URLs a tenant gives us (the AI provider's base URL, webhooks later) may not
reach private, loopback, link-local, multicast, reserved or unspecified addresses.

Two checks, both off when the platform setting ALLOW_PRIVATE_OUTBOUND_URLS is on (local and test settings,
whose model and sandbox listen on 127.0.0.1; never in production):

- `check_outbound_url(url)` when a URL is saved: the host is resolved (an IP literal needs no network) and
  every address it resolves to must be public. Resolving is what defeats the decimal, octal and short forms
  (`2130706433`, `0177.1`): the resolver reads them as 127.0.0.1, and so do we.
- `guarded_transport()` when a request is made: an httpx transport whose connections are opened only to an
  address checked right then (the one it connects to, so a name that resolved publicly when saved and to
  127.0.0.1 now, DNS rebinding, is refused too). It follows no redirect by itself; clients built on it keep
  `follow_redirects=False`, and any redirect a caller follows is a new connection, checked again.

Resolutions are cached briefly (DNS_CACHE_SECONDS) so the check costs one lookup per host and minute, not
one per request; keep-alive connections are not checked again.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

DNS_CACHE_SECONDS = 30.0
DNS_CACHE_MAX_HOSTS = 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundURLRefused(ValueError):
    """The URL may not be called: its host is not public, does not resolve, or the URL is malformed."""


def private_outbound_allowed() -> bool:
    return bool(getattr(settings, "ALLOW_PRIVATE_OUTBOUND_URLS", False))


def address_problem(address: IPAddress) -> str | None:
    """Why `address` may not be called ("loopback", "private", ...), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 2002:7f00:1:: (6to4) carry an IPv4 address that the stack may really reach.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return address_problem(embedded)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 2001:db8::/32 (documentation)
        return "not public"
    return None


def check_outbound_url(url: str) -> None:
    """Raise OutboundURLRefused unless `url` is http(s) with a host whose every address is public."""
    if private_outbound_allowed():
        return
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OutboundURLRefused(f"Not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundURLRefused("Use an http:// or https:// URL with a host name.")
    public_addresses(parts.hostname, port)


def public_addresses(host: str, port: int) -> list[str]:
    """The addresses of `host`, all public; OutboundURLRefused naming the first that is not."""
    addresses = _resolve(host, port)
    for address in addresses:
        problem = address_problem(ipaddress.ip_address(address))
        if problem:
            shown = host if host == address else f"{host} resolves to {address}, which"
            raise OutboundURLRefused(
                f"{shown} is a {problem} address; outbound calls go to public addresses only "
                "(the platform setting ALLOW_PRIVATE_OUTBOUND_URLS allows others).")
    return addresses


_cache: dict[tuple[str, int], tuple[float, list[str]]] = {}
_cache_lock = threading.Lock()


def _resolve(host: str, port: int) -> list[str]:
    host = host.strip("[]").lower()
    try:  # an IP literal in its canonical form: no lookup, works without a network
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    key, now = (host, port), time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached and cached[0] > now:
        return cached[1]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundURLRefused(f"Cannot resolve the host {host}: {exc}.") from None
    # Drop an IPv6 zone ("fe80::1%eth0"): the address alone decides.
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise OutboundURLRefused(f"The host {host} has no address.")
    with _cache_lock:
        if len(_cache) >= DNS_CACHE_MAX_HOSTS:
            _cache.clear()
        _cache[key] = (now + DNS_CACHE_SECONDS, addresses)
    return addresses


def clear_dns_cache() -> None:
    with _cache_lock:
        _cache.clear()


class _GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to a checked public address (the one it connects to)."""

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if not private_outbound_allowed():
            try:
                host = public_addresses(host, port)[0]  # TLS still verifies the name: httpcore passes it as SNI
            except OutboundURLRefused as exc:
                # httpx turns this into httpx.ConnectError, which every caller already handles.
                raise httpcore.ConnectError(f"refused by the outbound URL policy: {exc}") from None
        return self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                       socket_options=socket_options)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.ConnectError("refused by the outbound URL policy: no Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the address check on every new connection."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # httpx 0.28 takes no network backend; its pool keeps the default one here (httpcore 1.x).
        self._pool._network_backend = _GuardedBackend(self._pool._network_backend)


def guarded_transport(**kwargs) -> httpx.HTTPTransport:
    """An httpx transport for calls to URLs tenants gave us (kwargs as httpx.HTTPTransport's)."""
    return GuardedTransport(**kwargs)
