"""OpenTelemetry tracing for one process: off unless an OTLP endpoint is configured.

`configure(role)` runs once per process, at its boot: the web in config/asgi.py, each Dramatiq
worker process through `WorkerTelemetry` (Dramatiq's own boot hook). With
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, it starts the SDK
(config/otel.py: the tracer provider exporting over OTLP/HTTP, and the instrumentation of Django,
psycopg, Redis and httpx). Without an endpoint it does nothing at all: the SDK is not even
imported, no library is patched, and the API calls of tenants/telemetry.py cost next to nothing.

Everything else follows the standard OTEL_* variables (docs/OBSERVABILITY.md, "Traces").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

import dramatiq

ROLES = ("web", "worker")
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_lock = threading.Lock()
_decided = False
_provider = None  # the SDK's TracerProvider once started


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """An OTLP endpoint is set and the SDK is not disabled (OTEL_SDK_DISABLED=true)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def configure(role: str, *, environ: Mapping[str, str] = os.environ):
    """Set up tracing for this process, once: the SDK's tracer provider, or None when tracing is off.
    Later calls return the first answer."""
    global _decided, _provider
    if role not in ROLES:
        raise ValueError(f"unknown process role {role!r}; one of {ROLES}")
    with _lock:
        if not _decided:
            if tracing_wanted(environ):
                # Only now: the SDK, the exporter and the instrumentations cost ~0.5 s of imports.
                from config import otel  # noqa: PLC0415

                _provider = otel.start_tracing(role, otel.otlp_exporter(), environ=environ)
            _decided = True
        return _provider


class WorkerTelemetry(dramatiq.Middleware):
    """Sets up tracing in each Dramatiq worker process as it boots (the web process builds the same
    broker to enqueue, but never boots a worker)."""

    def before_worker_boot(self, broker, worker):
        configure("worker")
