"""A worker that is shutting down (SIGTERM: a rollout, a node drain, `docker stop`) lets long jobs stop between
two units of work instead of running to their end: Dramatiq waits for the jobs in hand only until the grace
period (`WORKER_SHUTDOWN_MS`), and a job cut off by SIGKILL after it repeats its work elsewhere (safely, but
late). A job that sees `worker_stopping()` commits what it finished, releases its locks and re-enqueues the rest
for the next worker (docs/DEPLOYMENT.md, "Graceful shutdown")."""

from __future__ import annotations

import threading

import dramatiq

_stopping = threading.Event()


def worker_stopping() -> bool:
    return _stopping.is_set()


class DrainOnShutdown(dramatiq.Middleware):
    """Dramatiq emits this before it stops the worker threads (settings.DRAMATIQ_BROKER's middleware)."""

    def before_worker_shutdown(self, broker, worker):
        _stopping.set()
