"""gunicorn's settings for the `web` role (plain HTTP through config/wsgi.py), read from the environment:

    python -m config.metrics_launcher web gunicorn -c python:config.gunicorn config.wsgi

    HOST, PORT              where to listen (127.0.0.1:8000; the image's entrypoint says 0.0.0.0)
    WEB_WORKERS             worker processes (1: on Kubernetes a pod is one process and the HPA adds pods)
    WEB_THREADS             threads per worker (8), each serving one request at a time; stay at or under the
                            database pool's DB_POOL_MAX_SIZE (10) so a thread never waits for a connection
    WEB_GRACEFUL_SECONDS    on SIGTERM, how long in-flight requests have to finish (20, as uvicorn's
                            --timeout-graceful-shutdown in the same role before; Kubernetes gives 25 of its 35)
    LOG_LEVEL, LOG_FORMAT   as Django's (config/settings): gunicorn's own lines go through the same formatter

gthread workers: a request blocks its thread, not the process, and the master's heartbeat check does not
kill a worker whose thread waits on the database. No access log (uvicorn ran with --no-access-log too):
django-prometheus counts requests and the structured request lines say what matters.

Imports nothing of Django: the master reads this module, and the workers set Django up after the fork.
"""

from __future__ import annotations

import os

from gunicorn import glogging
from prometheus_client import multiprocess

from config.logging import configure_logging

bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "1"))
threads = int(os.environ.get("WEB_THREADS", "8"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_SECONDS", "20"))
# A worker whose main loop is silent this long is killed and replaced (its threads may still be busy: gthread
# keeps the heartbeat from the main thread).
timeout = 30
# Behind a load balancer that keeps connections open: longer than gunicorn's 2 s, shorter than common
# balancers' idle timeouts (60 s), so the balancer never sends on a connection we just closed.
keepalive = 5
accesslog = None
# The workers' heartbeat files (touched at least once a second): in memory where there is /dev/shm, as gunicorn
# advises for containers, whose disk-backed /tmp can stall a touch long enough for the master to kill the worker.
_SHARED_MEMORY = "/dev/shm"  # noqa: S108 - gunicorn makes the file with mkstemp and unlinks it at once
if os.path.isdir(_SHARED_MEMORY):
    worker_tmp_dir = _SHARED_MEMORY
# gunicorn's control socket (gunicornc) would be $HOME/.gunicorn/gunicorn.ctl: one path shared by every
# gunicorn of the user (tests side by side, bench runs) and a home directory a container may not have.
control_socket_disable = True

_log_format = os.environ.get("LOG_FORMAT") or (
    "json" if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".production") else "console")
_log_level = os.environ.get("LOG_LEVEL", "INFO")
# The master's own lines (booting, worker exits, timeouts) as structured as the application's: gunicorn's
# loggers without handlers of their own, through the root's. Django applies its LOGGING again in each worker.
logconfig_dict = configure_logging(level=_log_level, fmt=_log_format)
logconfig_dict["loggers"].update({
    "gunicorn.error": {"handlers": [], "propagate": True, "level": _log_level},
    "gunicorn.access": {"handlers": [], "propagate": True, "level": _log_level},
})


class Logger(glogging.Logger):
    """gunicorn's logger, with the access log on only when `accesslog` asks for it: gunicorn turns it on for
    any logconfig_dict, and formats a line per request even when nothing would write it."""

    @property
    def access_log_enabled(self) -> bool:
        return self.cfg.accesslog is not None


logger_class = Logger


def child_exit(server, worker):
    """A worker is gone (stopped, crashed, killed): prometheus_client's files of its live gauges go with it, or
    /metrics would keep adding the dead pid's values. Counters and histograms stay (the totals do not shrink)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
